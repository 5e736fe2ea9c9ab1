"""Loading specs: YAML, `base:` inheritance, `--set` overrides, one-line errors.

Every problem becomes one line ``FILE: yaml.path: what is wrong; what is allowed`` collected in a
:class:`~scm_bench.errors.SpecError`; the CLI prints them and exits with code 2.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scm_bench.errors import SpecError
from scm_bench.safe_files import read_text_bounded
from scm_bench.safe_yaml import YamlLoadError, load_yaml
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.bases import find_base
from scm_bench.spec.paths import format_errors, set_dotted


def read_yaml(path: Path) -> dict:
    """A YAML mapping from a file, or SpecError naming the file and the problem."""
    if not path.is_file():
        raise SpecError(
            [f"{path}: {'is a directory, not a spec file' if path.is_dir() else 'file not found'}"]
        )
    try:
        data = load_yaml(read_text_bounded(path, str(path)), str(path))
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not a text file (YAML must be UTF-8)"]) from None
    except YamlLoadError as exc:  # syntax, duplicate keys, alias bombs, tags: one line
        raise SpecError([str(exc)]) from None
    if data is None:
        raise SpecError([f"{path}: file is empty; a spec needs at least `name:`"])
    if not isinstance(data, dict):
        raise SpecError([f"{path}: top level must be a mapping of keys, got {type(data).__name__}"])
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; nested mappings merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The spec at ``path`` merged over its chain of ``base:`` files."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise SpecError([f"{seen[-1]}: base: cyclic base chain: {chain}"])
    data = read_yaml(path)
    base = data.get("base")
    if base is None:
        return data
    if not isinstance(base, str):
        raise SpecError([f"{path}: base: must be a file path, got {base!r}"])
    base_path = find_base(base, path)
    merged = deep_merge(resolve_bases(base_path, (*seen, path)), data)
    merged["base"] = base
    return merged


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """``--set path=value`` items as {path: value} (values parsed as YAML, else kept as text)."""
    out = {}
    for item in sets:
        if "=" not in item:
            raise SpecError([f"--set {item}: expected path=value, e.g. train.steps=100"])
        path, raw = item.split("=", 1)
        try:
            out[path] = load_yaml(raw, f"--set {path}")
        except YamlLoadError:
            out[path] = raw
    return out


def load_spec(path: str | Path, sets: dict[str, Any] | None = None) -> AblationSpec:
    """Read, merge bases, apply spec-level overrides (``seeds``, ``axes.X``...) and validate.

    Trial settings are overridden on the typed trial instead (``spec.load_trials``).
    """
    path = Path(path)
    data = resolve_bases(path)
    for key, value in (sets or {}).items():
        set_dotted(data, key, value, f"--set {key}")
    try:
        return AblationSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_errors(err, str(path), AblationSpec)) from None

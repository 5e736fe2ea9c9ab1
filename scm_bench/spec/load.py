"""Loading specs: YAML, `base:` inheritance, `--set` overrides, one-line errors.

Every problem becomes one line ``FILE: yaml.path: what is wrong; what is allowed`` collected in a
:class:`SpecError`; the CLI prints them and exits with code 2.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scm_bench.errors import did_you_mean
from scm_bench.spec.ablation import AblationSpec


class SpecError(Exception):
    """User-fixable problems with a spec, one line each."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the field at ``loc`` (for listing allowed keys)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return model
        model = ann
    return model


def format_errors(
    err: ValidationError, where: str, model: type[BaseModel], prefix: str = ""
) -> list[str]:
    """One line per pydantic error: path, bad value, what is allowed, near-match suggestion."""
    lines = []
    for e in err.errors():
        loc = e["loc"]
        path = prefix + ".".join(str(p) for p in loc)
        bad = e.get("input")
        if e["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields)
            msg = f"unknown key{did_you_mean(loc[-1], allowed)}; allowed: {', '.join(allowed)}"
        elif e["type"] == "literal_error":
            allowed = e["ctx"]["expected"]
            msg = f"{bad!r} is not allowed; allowed: {allowed}"
            options = [a.strip(" '") for a in allowed.replace(" or ", ",").split(",")]
            msg += did_you_mean(bad, options)
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = f"{e['msg']} (got {bad!r})" if bad is not None else e["msg"]
        lines.append(f"{where}: {path}: {msg}")
    return lines


def read_yaml(path: Path) -> dict:
    """A YAML mapping from a file, or SpecError naming the file and the problem."""
    if not path.is_file():
        raise SpecError(
            [f"{path}: {'is a directory, not a spec file' if path.is_dir() else 'file not found'}"]
        )
    try:
        data = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not a text file (YAML must be UTF-8)"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError([f"{path}: YAML syntax error{at}: {problem}"]) from None
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
    base_path = path.parent / base
    if not base_path.is_file():
        raise SpecError([f"{path}: base: file not found: {base_path}"])
    merged = deep_merge(resolve_bases(base_path, (*seen, path)), data)
    merged["base"] = base
    return merged


def set_path(data: dict, dotted: str, value: Any) -> None:
    """data[a][b][c] = value for 'a.b.c', creating mappings on the way."""
    *heads, last = dotted.split(".")
    node = data
    for h in heads:
        node = node.setdefault(h, {})
        if not isinstance(node, dict):
            raise SpecError([f"--set {dotted}: {h} is not a mapping"])
    node[last] = value


def apply_sets(data: dict, sets: list[str]) -> dict:
    """Apply ``--set path=value`` overrides (values parsed as YAML). A path not starting with a
    top-level spec key is taken inside ``trial:`` (``train.steps=50`` == ``trial.train.steps=50``).
    """
    data = copy.deepcopy(data)
    for item in sets:
        if "=" not in item:
            raise SpecError([f"--set {item}: expected path=value, e.g. train.steps=100"])
        path, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if path.split(".")[0] not in AblationSpec.model_fields:
            path = "trial." + path
        set_path(data, path, value)
    return data


def load_spec(path: str | Path, sets: list[str] = ()) -> AblationSpec:
    """Read, merge bases, apply overrides and validate an ablation spec (trials checked too)."""
    from scm_bench.spec.expand import expand  # validates every trial

    path = Path(path)
    data = apply_sets(resolve_bases(path), list(sets))
    try:
        spec = AblationSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_errors(err, str(path), AblationSpec)) from None
    expand(spec, where=str(path))
    return spec

"""The bundled ablation specs, by name: `scm-bench run tangent_norm` from any directory.

They live in the repository's ``ablations/`` folder, beside the package, and are found there
when scm-bench is installed from a checkout (``pip install -e .``, the README's set-up). A
wheel cannot carry them (package data stays inside the package, and a base spec names its
base by a relative path), so with a non-editable install a spec is named by its file path.
"""

from __future__ import annotations

from pathlib import Path

from scm_bench.errors import SpecError, did_you_mean
from scm_bench.spec.bases import ABLATIONS
from scm_bench.spec.load import read_yaml

PAPER = "paper"  # ablations/paper/: the paper-scale presets, named paper/<stem>


def bundled() -> dict[str, Path]:
    """Name -> file of every bundled ablation (``ablations/*.yaml``, and the paper-scale presets
    ``ablations/paper/*.yaml`` as ``paper/<stem>``; bases are not listed)."""
    if not ABLATIONS.is_dir():
        return {}
    specs = {p.stem: p for p in sorted(ABLATIONS.glob("*.yaml"))}
    return specs | {f"{PAPER}/{p.stem}": p for p in sorted((ABLATIONS / PAPER).glob("*.yaml"))}


def descriptions() -> list[tuple[str, str]]:
    """(name, one-line description) of every bundled ablation, for ``scm-bench ls``."""
    out = []
    for name, path in bundled().items():
        try:
            text = str(read_yaml(path).get("description", ""))
        except SpecError as err:
            text = f"(unreadable: {err.lines[0]})"
        out.append((name, " ".join(text.split())))
    return out


def find_spec(spec: str | Path) -> Path:
    """A spec file path as given, or the bundled ablation a bare name (``warmup``) names."""
    path = Path(spec)
    specs = bundled()
    if not path.is_file() and str(spec) in specs:
        return specs[str(spec)]
    if path.is_file() or len(path.parts) != 1 or path.suffix in (".yaml", ".yml"):
        return path  # a path: loading reports a missing file itself
    known = f"bundled: {', '.join(specs)}" if specs else f"no bundled ablations in {ABLATIONS}"
    raise SpecError(
        [f"{spec}: no such spec file and no bundled ablation of that name"
         f"{did_you_mean(spec, specs)}; {known}"]
    )  # fmt: skip

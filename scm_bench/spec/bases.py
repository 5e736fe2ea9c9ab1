"""Where a spec's ``base:`` is found: beside the spec first, then among the bundled bases.

``base: grid``, ``base: base/grid`` and ``base: base/grid.yaml`` all name the bundled
``ablations/base/grid.yaml`` from any folder, unless the spec's own folder has a file of
that name (a user's base wins over a bundled one).
"""

from __future__ import annotations

from pathlib import Path

from scm_bench.errors import SpecError, did_you_mean

ABLATIONS = Path(__file__).resolve().parents[2] / "ablations"  # <repo>/ablations
BASES = ABLATIONS / "base"


def bundled_bases() -> dict[str, Path]:
    """Name -> file of every bundled base (``ablations/base/*.yaml``)."""
    return {p.stem: p for p in sorted(BASES.glob("*.yaml"))} if BASES.is_dir() else {}


def _spellings(base: str) -> list[str]:
    """``base`` as written, then with ``.yaml`` added when it has no YAML suffix."""
    return [base] if base.endswith((".yaml", ".yml")) else [base, f"{base}.yaml"]


def find_base(base: str, spec_file: Path) -> Path:
    """The file ``base:`` names: relative to the spec's folder, else a bundled base (by name or
    by its path under ``ablations/``); SpecError listing the candidates when neither exists."""
    folder = spec_file.parent
    tried = [folder / s for s in _spellings(base)]
    if Path(base).is_absolute() or base.startswith("."):
        roots = []  # an explicit path: only the spec's folder
    else:
        roots = [ABLATIONS, BASES]
    tried += [root / s for root in roots for s in _spellings(base)]
    for path in tried:
        if path.is_file():
            return path
    names = bundled_bases()
    known = f"bundled bases: {', '.join(names)}" if names else "no bundled bases installed"
    hint = did_you_mean(Path(base).stem, names)
    raise SpecError(
        [f"{spec_file}: base: {base!r} is neither a file beside the spec ({folder}) nor a "
         f"bundled base{hint}; {known}"]
    )  # fmt: skip

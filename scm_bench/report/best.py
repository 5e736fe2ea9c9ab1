"""The "Best parameters" section of a search's report, from the run's ``best.json``
(written by ``runner/search.py``: the best finished proposal and Optuna's importances)."""

from __future__ import annotations

from pathlib import Path

from scm_bench.report.format import num
from scm_bench.safe_files import read_json_or_none

BEST_COLUMNS = ["parameter", "best value", "importance"]


def search_label(params: dict) -> str:
    """A search proposal's variant name: 'path=value,...' (floats to 4 significant digits)."""
    return ",".join(f"{p}={v:.4g}" if isinstance(v, float) else f"{p}={v}"
                    for p, v in params.items())  # fmt: skip


def best_section(run_dir: Path) -> dict | None:
    """{metric, mode, value, variant, finished, rows, note} of a search, or None for a run that
    is not one (no best.json). ``rows``: one per searched parameter, its best value and its
    importance, most important first."""
    best, _ = read_json_or_none(Path(run_dir) / "best.json")
    if not isinstance(best, dict) or "params" not in best:
        return None
    params, imp = best.get("params") or {}, best.get("importances") or {}
    order = sorted(params, key=lambda p: -imp.get(p, float("-inf")))
    rows = [[p, num(params[p]) if isinstance(params[p], float) else str(params[p]),
             num(imp[p], ".3f") if p in imp else "–"] for p in order]  # fmt: skip
    note = (
        "Importance: Optuna's fANOVA parameter importances over the finished proposals (they sum "
        "to 1; a larger share explains more of the metric's variation)."
        if imp
        else "No importances: Optuna needs two finished proposals with different values."
    )
    return {
        "metric": best.get("metric"),
        "mode": "lowest" if best.get("mode") == "min" else "highest",
        "value": num(best.get("value")),
        "variant": search_label(params) if params else "–",
        "finished": best.get("finished"),
        "rows": rows,
        "note": note,
    }


def markdown_rows(section: dict) -> list[list[str]]:
    """The section's rows for a Markdown table: parameter paths as code."""
    return [[f"`{r[0]}`", *r[1:]] for r in section["rows"]]

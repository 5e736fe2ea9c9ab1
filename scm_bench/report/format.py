"""Numbers to text: table cells, header facts and failure rows, for Markdown and for HTML.

Every cell is formatted once by :func:`metric_cell`; only the markup differs between the two
flavours (``**bold**`` and ``\\*`` in Markdown, ``<strong>`` in escaped HTML).
"""

from __future__ import annotations

import math

import pandas as pd
from markupsafe import Markup, escape

from scm_bench import rundir
from scm_bench.metrics import FLOOR, UNIFORM
from scm_bench.report.table import KIND_ORDER, MetricInfo
from scm_bench.spec.expand import yaml_text

KIND_TITLES = {
    "sample": "Sample quality",
    "ratio": "Student / teacher (sample metric ratios)",
    "mechanism": "Mechanism probes (fixed weights: end of training; _at<step>: every variant at "
    "that step, _at0 the shared initial weights)",
    "stability": "Stability",
    "cost": "Cost (timings on a possibly shared machine: descriptive)",
    "other": "Other columns (metric not registered: direction unknown)",
}
REFERENCE_TITLES = {FLOOR: "floor: real vs real data", UNIFORM: "uniform over the data's box"}
TESTED = "†"
LEGEND = (
    "Value: the metric's registered aggregate over seeds (mean unless named in the header) and "
    "the 95% t-interval of the mean, kept inside the metric's bounds (positive metrics: an "
    "interval of log values, so it never reaches below zero); (n=k): only k seeds have a value. "
    "Seeds counted: ok trials; for stability metrics ok and diverged trials; failed trials never. "
    "↑/↓: higher/lower is better (?: no direction, descriptive or not registered). Bold: best "
    "variant. Δ: difference from the baseline variant, descriptive: no cell is tested here; "
    f"{TESTED} marks a cell a primary claim tests (its verdict is in the Verdicts table). "
    "Diverged rate: diverged / finished (ok + diverged + failed) trials. Floor: the metric "
    "between two disjoint halves of the real reference data at the sample size of the trials; "
    "uniform: a sampler uniform over the data's bounding box."
)


def num(x, spec: str = ".4g") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def header(info: MetricInfo) -> str:
    agg = "" if info.aggregate == "mean" else f" ({info.aggregate})"
    return f"{info.column} {info.arrow}{agg}"


def metric_cell(row: pd.Series, info: MetricInfo, html: bool, tested: bool = False) -> str:
    """'1.234 [1.18, 1.29], Δ +0.1' with the best value in bold (and † when a claim tests it)."""
    col = info.column
    n = int(row[f"{col}.n"])
    if n == 0:
        return "–"
    text = num(row[f"{col}.value"])
    lo, hi = row[f"{col}.ci_low"], row[f"{col}.ci_high"]
    if info.aggregate == "mean" and math.isfinite(lo) and math.isfinite(hi):
        text += f" [{num(lo, '.3g')}, {num(hi, '.3g')}]"
    if row[f"{col}.best"]:
        text = f"<strong>{text}</strong>" if html else f"**{text}**"
    if n != sum(row[status] for status in info.counted):
        text += f" (n={n})"
    if math.isfinite(row[f"{col}.diff"]):
        text += f", Δ {num(row[f'{col}.diff'], '+.3g')}"
    text += TESTED if tested else ""
    return Markup(text) if html else text


def variant_cell(row: pd.Series, html: bool) -> str:
    name = row["variant"] + (" (baseline)" if row["baseline"] else "")
    return escape(name) if html else md_text(name)


def display_tables(
    table: pd.DataFrame,
    infos: list[MetricInfo],
    html: bool,
    refs: dict | None = None,
    tested: set | None = None,
) -> list[dict]:
    """Display tables {title, columns, rows}: the main table (one row per variant: trial
    counts, diverged rate, sample metrics; then the reference rows ``refs[(row, metric)]``),
    then one table per other metric kind with one row per metric and one column per variant
    (these kinds have many columns, e.g. per t-bin). ``tested``: (variant, column) pairs a
    primary claim tests."""
    refs, tested = refs or {}, tested or set()
    sample = [i for i in infos if i.kind == "sample"]
    columns = ["variant", "ok / trials", "diverged rate"] + [header(i) for i in sample]
    rows = []
    for _, r in table.iterrows():
        rate = f"{num(100 * r['diverged_rate'], '.0f')}% ({r['diverged']})"
        rate = rate if math.isfinite(r["diverged_rate"]) else "–"
        counts = f"{r[rundir.OK]} / {r['trials']}"
        cells = [metric_cell(r, i, html, (r["variant"], i.column) in tested) for i in sample]
        rows.append([variant_cell(r, html), counts, rate] + cells)
    for ref, title in REFERENCE_TITLES.items():
        values = [refs.get((ref, i.base), math.nan) for i in sample]
        if any(math.isfinite(v) for v in values):
            label = f"<em>{escape(title)}</em>" if html else f"*{title}*"
            rows.append([Markup(label) if html else label, "–", "–"] + [num(v) for v in values])
    out = [{"title": KIND_TITLES["sample"], "columns": columns, "rows": rows}]
    for kind in KIND_ORDER[1:]:
        group = [i for i in infos if i.kind == kind]
        if not group:
            continue
        variants = [r for _, r in table.iterrows()]
        columns = ["metric"] + [variant_cell(r, html) for r in variants]
        cell = lambda r, i: metric_cell(r, i, html, (r["variant"], i.column) in tested)
        rows = [[header(i)] + [cell(r, i) for r in variants] for i in group]
        out.append({"title": KIND_TITLES[kind], "columns": columns, "rows": rows})
    return out


def noise_rows(table: pd.DataFrame, infos: list[MetricInfo]) -> list[list[str]]:
    """Per sample-metric column: the spread over seeds (median over variants of the SD) beside
    the evaluation noise of one value (mean bootstrap SD), both also relative to the mean."""
    rows = []
    for i in (i for i in infos if i.kind == "sample"):
        mean = table[f"{i.column}.mean"].abs().median()
        seed_sd, eval_sd = table[f"{i.column}.sd"].median(), table[f"{i.column}.evalsd"].mean()
        if not (math.isfinite(seed_sd) or math.isfinite(eval_sd)):
            continue
        ratio = seed_sd / eval_sd if eval_sd else math.nan
        spreads = [_relative(seed_sd, mean), _relative(eval_sd, mean)]
        rows.append([header(i), *spreads, num(ratio, ".2g")])
    return rows


def _relative(x: float, mean: float) -> str:
    """'0.0021 (5.1%)': a spread and its share of the metric's mean."""
    if not (mean and math.isfinite(x) and math.isfinite(mean)):
        return num(x, ".2g")
    return f"{num(x, '.2g')} ({num(100 * x / mean, '.2g')}%)"


NOISE_COLUMNS = ["metric", "SD over seeds", "evaluation SD (one value)", "seeds / evaluation"]


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    df = pd.DataFrame(rows, columns=columns)
    return df.to_markdown(index=False, disable_numparse=True)


def md_text(text) -> str:
    """A value safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_grids(grids: list[dict]) -> str:
    """One row per variant, one column per sampler; each cell an image linking its PNG."""
    samplers = list(dict.fromkeys(i["sampler"] for g in grids for i in g["images"]))
    rows = []
    for g in grids:
        cells = {i["sampler"]: f"[![{i['sampler']}]({i['rel']})]({i['rel']})" for i in g["images"]}
        label = md_text(f"{g['variant']} (seed {g['seed']})")
        rows.append([label] + [cells.get(s, "–") for s in samplers])
    return markdown_table(["variant"] + samplers, rows)


FAILURE_COLUMNS = {"trial": "trial", "variant": "variant", "seed": "seed", "status": "status",
                   "step": "step", "what": "non-finite", "error": "error"}  # fmt: skip


def markdown_failures(rows: list[dict]) -> str:
    cells = [[md_text(r[k]) for k in FAILURE_COLUMNS] for r in rows]
    return markdown_table(list(FAILURE_COLUMNS.values()), cells)


def failures(results: pd.DataFrame) -> list[dict]:
    """Failed and diverged trials: where (step, what went non-finite) and why (error)."""
    bad = results[results["status"].isin([rundir.FAILED, rundir.DIVERGED])]
    rows = []
    for _, r in bad.iterrows():
        error = r["error"] if isinstance(r["error"], str) else ""
        lines = [ln for ln in error.strip().splitlines() if ln.strip()]
        step = r["diverged_step"]
        rows.append(
            {
                "trial": r["trial_id"],
                "variant": r["variant"],
                "seed": num(r["seed"], "g"),
                "status": r["status"],
                "step": num(float(step), ".0f") if pd.notna(step) else "–",
                "what": r["diverged_what"] if isinstance(r["diverged_what"], str) else "–",
                "error": lines[-1] if lines else "–",
                "traceback": error.strip(),
            }
        )
    return rows


def flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}{k}."))
    return out


def settings(spec: dict) -> str:
    """The base settings compactly: 'method=sct, train.steps=2000' (defaults otherwise)."""
    trial = flatten(spec.get("trial") or {})
    return ", ".join(f"{k}={yaml_text(v)}" for k, v in sorted(trial.items())) or "paper defaults"


def meta_facts(meta: dict) -> list[tuple[str, str]]:
    """(label, text) for every meta entry, nested dicts as 'key value, key value'."""
    facts = []
    for key in sorted(meta):
        value = meta[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif key == "wall_time" and isinstance(value, int | float):
            value = f"{value:.1f} s"
        facts.append((key.replace("_", " "), str(value)))
    return facts

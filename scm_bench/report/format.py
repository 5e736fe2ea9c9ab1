"""Numbers to text: table cells, header facts and failure rows, for Markdown and for HTML.

Every cell is formatted once by :func:`metric_cell`; only the markup differs between the two
flavours (``**bold**`` and ``\\*`` in Markdown, ``<strong>`` in escaped HTML).
"""

from __future__ import annotations

import math

import pandas as pd
from markupsafe import Markup, escape

from scm_bench.report.table import KIND_ORDER, MetricInfo

KIND_TITLES = {
    "sample": "Sample quality",
    "stability": "Stability",
    "cost": "Cost",
    "other": "Other columns (metric not registered: direction unknown)",
}
LEGEND = (
    "Value: the metric's registered aggregate over seeds (mean unless named in the header) ± "
    "half-width of the 95% t-interval of the mean; (n=k): only k seeds have a value. Seeds "
    "counted: ok trials; for stability metrics ok and diverged trials; failed trials never. "
    "↑/↓: higher/lower is better (?: no direction, descriptive or not registered). Bold: best "
    "variant. Δ: difference from the baseline variant, {star} Welch t-test p < 0.05. Diverged "
    "rate: diverged / finished (ok + diverged + failed) trials."
)


def num(x, spec: str = ".4g") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def header(info: MetricInfo) -> str:
    agg = "" if info.aggregate == "mean" else f" ({info.aggregate})"
    return f"{info.column} {info.arrow}{agg}"


def metric_cell(row: pd.Series, info: MetricInfo, html: bool) -> str:
    """'1.234 ± 0.05, Δ +0.1*' with the best value in bold."""
    col = info.column
    n = int(row[f"{col}.n"])
    if n == 0:
        return "–"
    text = num(row[f"{col}.value"])
    lo, hi = row[f"{col}.ci_low"], row[f"{col}.ci_high"]
    if info.aggregate == "mean" and math.isfinite(lo):
        text += f" ± {num((hi - lo) / 2, '.2g')}"
    if row[f"{col}.best"]:
        text = f"<strong>{text}</strong>" if html else f"**{text}**"
    if n != sum(row[status] for status in info.counted):
        text += f" (n={n})"
    if math.isfinite(row[f"{col}.diff"]):
        text += f", Δ {num(row[f'{col}.diff'], '+.3g')}"
        if row[f"{col}.significant"]:
            text += "*" if html else "\\*"
    return Markup(text) if html else text


def variant_cell(row: pd.Series, html: bool) -> str:
    name = row["variant"] + (" (baseline)" if row["baseline"] else "")
    return escape(name) if html else md_text(name)


def display_tables(table: pd.DataFrame, infos: list[MetricInfo], html: bool) -> list[dict]:
    """Display tables {title, columns, rows}: the main table (one row per variant: trial
    counts, diverged rate, sample metrics), then one table per other metric kind with one row
    per metric and one column per variant (these kinds have many columns, e.g. per t-bin)."""
    sample = [i for i in infos if i.kind == "sample"]
    columns = ["variant", "ok / trials", "diverged rate"] + [header(i) for i in sample]
    rows = []
    for _, r in table.iterrows():
        rate = f"{num(100 * r['diverged_rate'], '.0f')}% ({r['diverged']})"
        rate = rate if math.isfinite(r["diverged_rate"]) else "–"
        counts = f"{r['ok']} / {r['trials']}"
        rows.append(
            [variant_cell(r, html), counts, rate] + [metric_cell(r, i, html) for i in sample]
        )
    out = [{"title": KIND_TITLES["sample"], "columns": columns, "rows": rows}]
    for kind in KIND_ORDER[1:]:
        group = [i for i in infos if i.kind == kind]
        if not group:
            continue
        columns = ["metric"] + [variant_cell(r, html) for _, r in table.iterrows()]
        rows = [[header(i)] + [metric_cell(r, i, html) for _, r in table.iterrows()] for i in group]
        out.append({"title": KIND_TITLES[kind], "columns": columns, "rows": rows})
    return out


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
    bad = results[results["status"].isin(["failed", "diverged"])]
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
    return ", ".join(f"{k}={v}" for k, v in sorted(trial.items())) or "paper defaults"


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

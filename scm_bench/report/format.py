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
    "Value: {agg} over ok seeds ± half-width of the 95% t-interval; (n=k) when fewer seeds "
    "than ok trials have a value. ↑/↓: higher/lower is better (? = not registered). Bold: best "
    "variant. Δ: difference from the baseline variant; {star} Welch t-test p < 0.05. Diverged "
    "rate: diverged / finished (ok + diverged + failed) trials; diverged and failed trials never "
    "enter the values."
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
    if n != row["ok"]:
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
    """One display table per metric kind: {title, columns, rows (list of cell strings)}."""
    out = []
    kinds = [k for k in KIND_ORDER if any(i.kind == k for i in infos)]
    for kind in kinds or ["sample"]:
        group = [i for i in infos if i.kind == kind]
        columns = ["variant", "ok / trials", "diverged rate"] + [header(i) for i in group]
        rows = []
        for _, r in table.iterrows():
            counts = f"{r['ok']} / {r['trials']}"
            rate = f"{num(100 * r['diverged_rate'], '.0f')}% ({r['diverged']})"
            if not math.isfinite(r["diverged_rate"]):
                rate = "–"
            rows.append([variant_cell(r, html), counts, rate]
                        + [metric_cell(r, i, html) for i in group])  # fmt: skip
        out.append({"title": KIND_TITLES.get(kind, kind), "columns": columns, "rows": rows})
    return out


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    df = pd.DataFrame(rows, columns=columns)
    return df.to_markdown(index=False, disable_numparse=True)


def md_text(text) -> str:
    """A value safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def failures(results: pd.DataFrame) -> list[dict]:
    """Failed and diverged trials: where (step, what went non-finite) and why (error)."""
    bad = results[results["status"].isin(["failed", "diverged"])]
    rows = []
    for _, r in bad.iterrows():
        error = r["error"] if isinstance(r["error"], str) else ""
        lines = [ln for ln in error.strip().splitlines() if ln.strip()]
        step = r["diverged_step"]
        rows.append({
            "trial": r["trial_id"], "variant": r["variant"], "seed": num(r["seed"], "g"),
            "status": r["status"],
            "step": num(float(step), ".0f") if pd.notna(step) else "–",
            "what": r["diverged_what"] if isinstance(r["diverged_what"], str) else "–",
            "error": lines[-1] if lines else "–", "traceback": error.strip(),
        })  # fmt: skip
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

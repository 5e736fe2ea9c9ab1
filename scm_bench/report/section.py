"""The Verdicts section of a report: its context, rendered alone or inside the whole report.

``write_report`` renders it as part of report.md / report.html; ``report.rejudge`` re-renders
only this section of a published report (its figures and tables stay).
"""

from __future__ import annotations

import math
from pathlib import Path

from scm_bench.errors import RunError
from scm_bench.report import format as fmt
from scm_bench.report import gates
from scm_bench.report import verdicts as vd
from scm_bench.report.load import Run

HISTORY_COLUMNS = ["published", "run commit", "design", "what changed", "verdicts then"]
SECTIONS = {"report.md": ("## Verdicts", "## Run"),
            "report.html": ("<h2>Verdicts</h2>", "<h2>Run</h2>")}  # fmt: skip


def verdict_context(run: Run, alpha_power: float | None = None, history=()) -> dict:
    """What the section templates need (both flavours), plus 'judged' and 'notes'."""
    judged, notes = vd.judge(run, alpha_power)
    rows = [r | {"decided": r["verdict"].split(" (")[0] in ("reproduced", "contradicted"),
                 "css": r["verdict"].split(" (")[0].replace(" ", "-")}
            for r in vd.verdict_rows(judged)]  # fmt: skip
    cells = [[fmt.md_text(r[c]) for c in vd.VERDICT_COLUMNS] for r in rows]
    at = vd.VERDICT_COLUMNS.index("verdict")
    for c, r in zip(cells, rows, strict=True):
        c[at] = f"**{c[at]}**" if r["decided"] else c[at]
    history = list(history)
    return {
        "judged": judged,
        "frames": [gates.frame(run.results, j.claim) for j in judged],
        "notes": notes,
        "verdicts": rows,
        "verdict_columns": vd.VERDICT_COLUMNS,
        "verdict_legend": vd.VERDICT_LEGEND,
        "verdict_table": fmt.markdown_table(vd.VERDICT_COLUMNS, cells),
        "sources": [
            {"claim": j.claim.name, "paper": j.claim.paper} for j in judged if j.claim.paper
        ],  # fmt: skip
        "design": judged[0].design if judged else "exploratory",
        "design_why": judged[0].design_why if judged else "",
        "gates": gate_lines(judged),
        "history": history,
        "history_columns": HISTORY_COLUMNS,
        "history_table": fmt.markdown_table(
            HISTORY_COLUMNS, [[fmt.md_text(h[c]) for c in HISTORY_COLUMNS] for h in history]
        ),  # fmt: skip
    }


def gate_lines(judged: list[vd.Judged]) -> list[dict]:
    """Each distinct gate outcome once, failed ones first, with the claims it guards ('every
    claim' when all): {'passed', 'text', 'claims'}."""
    named = [j for j in judged if j.verdict is not None]
    guards: dict[tuple[bool, str], dict[str, None]] = {}  # outcome -> claims, ordered, once
    for j in named:
        for g in j.gates:
            guards.setdefault((g.passed, g.text), {})[j.claim.name] = None
    every = {j.claim.name for j in named}
    lines = []
    for (passed, text), claims in sorted(guards.items(), key=lambda kv: kv[0][0]):
        said = "every claim" if set(claims) == every else "; ".join(claims)
        lines.append({"passed": passed, "text": text, "claims": said})
    return lines


def summary_claims(ctx: dict) -> list[dict]:
    """summary.json's claims: the scoreboard's rows (report.index)."""
    parts = zip(ctx["judged"], ctx["verdicts"], ctx["frames"], strict=True)
    return [r | {"primary": j.claim.primary, "paper_ref": j.claim.paper, "design": j.design,
                 "frame": frame} for j, r, frame in parts]  # fmt: skip


def summary_verdicts(ctx: dict) -> dict[str, str]:
    """summary.json's verdicts: claim -> the verdict as shown (exploratory ones say so)."""
    return {r["claim"].removesuffix(" (secondary)"): r["verdict"] for r in ctx["verdicts"]}


def _splice(text: str, start: str, end: str, section: str, where: Path) -> str:
    if start not in text or end not in text:
        raise RunError(f"{where}: no '{start}' ... '{end}' section to replace; rewrite the "
                       "report with `scm-bench report`")  # fmt: skip
    head, rest = text.split(start, 1)
    return head + section.rstrip("\n") + "\n\n" + end + rest.split(end, 1)[1]


def _json(x):
    return None if isinstance(x, float) and not math.isfinite(x) else str(x)

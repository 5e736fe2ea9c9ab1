"""Re-render the Verdicts section of a published report from its results.csv and spec.yaml:
when the scoreboard's adjusted alpha or the spec's history changed, or the verdict code did.
Its figures and tables stay as they were; summary.json's claims and verdicts are rewritten."""

from __future__ import annotations

import json
from pathlib import Path

from scm_bench.report import confirm
from scm_bench.report.load import load_run
from scm_bench.report.section import (
    SECTIONS,
    _json,
    _splice,
    summary_claims,
    summary_verdicts,
    verdict_context,
)
from scm_bench.report.write import render
from scm_bench.spec.registration import fingerprint


def rejudge(folder: Path, alpha_power: float | None = None, history=()) -> list[dict]:
    """Re-render the Verdicts section of the report in ``folder`` from its results.csv and
    spec.yaml and rewrite summary.json's claims and verdicts; returns the claims."""
    folder = Path(folder)
    run = load_run(folder)
    ctx = verdict_context(run, alpha_power, history)
    for name, (start, end) in SECTIONS.items():
        template = "verdicts.html.j2" if name.endswith(".html") else "verdicts.md.j2"
        path = folder / name
        section = render(template, ctx)
        path.write_text(_splice(path.read_text(), start, end, section, path))
    path = folder / "report" / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"name": run.name}
    summary["claims"] = summary_claims(ctx)
    summary["verdicts"] = summary_verdicts(ctx)
    d = confirm.run_design(run)
    now = fingerprint(d)[:12] if d is not None else None
    summary["earlier_designs"] = len({h["design"] for h in ctx["history"]} - {now})
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=_json) + "\n")
    return summary["claims"]

"""The facts at the top of a report: what was run, at which commit and on what, and its cost.

Provenance and cost come from the trials themselves (each result.json records its commit,
versions, hardware and wall time when it runs) and from run.json (one entry per invocation of
`scm-bench run`), so a resumed or no-op re-run never overwrites how the results were made.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from scm_bench import rundir
from scm_bench.report import format as fmt
from scm_bench.report.load import Run
from scm_bench.rundir import STATUSES


def counts(results: pd.DataFrame) -> dict[str, int]:
    return {s: int((results["status"] == s).sum()) for s in STATUSES}


def _tally(values) -> str:
    """'a (3 trials), b (1 trial)' for the distinct values, most frequent first."""
    found = Counter(v for v in values if v)
    return ", ".join(f"{v} ({n} trial{'s' * (n > 1)})" for v, n in found.most_common())


def _flat(value) -> str:
    return ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else ""


def trial_provenance(run: Run) -> list[tuple[str, str]]:
    """Commit(s), versions and hardware the finished trials ran with (from their result.json)."""
    outcomes = [rundir.trial_outcome(run.trial_dir(t)) or {} for t in run.results["trial_id"]]
    done = [o for o in outcomes if o.get("status") in rundir.FINISHED]
    if not done:
        return []
    commits = [o.get("commit") or "not recorded" for o in done]
    facts = [("trials ran at commit", _tally(commits))]
    for key in ("versions", "hardware"):
        text = _tally(_flat(o.get(key)) for o in done)
        facts.append((f"trial {key}", text or "not recorded"))
    return facts


def compute(run: Run) -> str:
    """Sum of the trials' wall times (every finished trial, however many invocations ran
    them), plus the distinct teachers they used."""
    res = run.results
    trials = pd.to_numeric(res.get("wall_time", pd.Series(dtype=float)), errors="coerce")
    if not trials.notna().any():
        return "not recorded"
    text = f"{trials.sum():.1f} s over {int(trials.notna().sum())} trials"
    teachers = 0.0
    dirs = res.get("teacher_dir", pd.Series(dtype=object)).dropna().unique()
    for d in dirs:
        outcome = rundir.trial_outcome(Path(d)) if Path(d).is_dir() else None
        teachers += float((outcome or {}).get("wall_time") or 0.0)
    if teachers:
        text += f", plus {teachers:.1f} s for {len(dirs)} teachers"
    return text + " (sum of trial wall times)"


def invocations(run: Run) -> str:
    """Wall time of each `scm-bench run` invocation of this run directory, oldest first."""
    entries = run.info.get("invocations")
    if entries is None and isinstance(run.info.get("wall_time"), int | float):
        entries = [{"wall_time": run.info["wall_time"]}]  # run.json before invocation lists
    if not entries:
        return "not recorded"
    times = [f"{e.get('wall_time', float('nan')):.1f} s" for e in entries]
    ran = [e.get("trained") for e in entries]
    if all(isinstance(r, int) for r in ran):
        times = [f"{t} ({r} trained)" for t, r in zip(times, ran, strict=True)]
    return f"{len(entries)}: " + ", ".join(times)


def facts(run: Run, meta: dict) -> list[tuple[str, str]]:
    """(label, text) rows of the report header."""
    spec, res = run.spec, run.results
    axes = "; ".join(f"{a}: {', '.join(map(str, v))}" for a, v in (spec.get("axes") or {}).items())
    out = [
        ("claim", str(spec.get("description") or "–")),
        ("base settings", fmt.settings(spec)),
        ("axes", axes or ", ".join(run.axes) or "none"),
        ("seeds", ", ".join(map(str, spec.get("seeds") or sorted(res["seed"].dropna().unique())))),
        ("baseline", run.baseline or "–"),
    ]
    out += trial_provenance(run)
    report_meta = {k: v for k, v in meta.items() if k not in ("commit", "wall_time")}
    out.append(("report written at commit", str(meta.get("commit") or "unknown")))
    out += [(f"report {label}", text) for label, text in fmt.meta_facts(report_meta)]
    out.append(("compute", compute(run)))
    out.append(("invocations (wall time)", invocations(run)))
    n = counts(res)
    out.append(("trials", ", ".join(f"{k} {s}" for s, k in n.items()) + f" (of {len(res)})"))
    return out

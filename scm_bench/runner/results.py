"""The results table of a run: one row per trial, with stability and cost from its history."""

from __future__ import annotations

import math
from pathlib import Path

from scm_bench import metrics, rundir
from scm_bench.metrics import EVALSD, summarize_trial
from scm_bench.spec import Trial


def result_row(trial: Trial, trial_dir: Path, teacher_dir: Path | None) -> dict:
    """The trial's row: identity, axes, outcome, final metrics, stability and cost columns,
    and its teacher's sample metrics (``*_teacher``)."""
    row = rundir.trial_row(
        trial.trial_id, trial.variant, trial.seed, trial.spec.method, trial.axes, trial_dir
    )
    row["teacher_id"] = teacher_dir.name if teacher_dir else None
    row["teacher_dir"] = str(teacher_dir) if teacher_dir else None
    if row["status"] in rundir.FINISHED:
        history = rundir.read_history(Path(trial_dir) / "history.jsonl")
        row.update(summarize_trial(history, rundir.trial_outcome(trial_dir)))
    teacher = rundir.trial_outcome(teacher_dir) if teacher_dir else None
    if teacher and trial.spec.is_student:
        own = ("_teacher", f"_teacher_{EVALSD}")  # the teacher's values and their noise
        row.update({k: v for k, v in teacher.get("metrics", {}).items() if k.endswith(own)})
        row.update(teacher_ratios(row, trial.spec.eval.samplers))
    return row


def teacher_ratios(row: dict, samplers) -> dict[str, float]:
    """'<metric>_ratio_<sampler>' = <metric>_<sampler> / <metric>_teacher for the registered
    ratio metrics (sCM Sec. 6: the student's quality relative to its teacher's)."""
    out = {}
    for name in metrics.RATIO_OF:
        teacher = row.get(f"{name}_teacher")
        if not isinstance(teacher, (int, float)) or not math.isfinite(teacher) or teacher <= 0:
            continue
        for s in samplers:
            value = row.get(f"{name}_{s}")
            if isinstance(value, (int, float)):
                out[f"{name}_ratio_{s}"] = value / teacher
    return out

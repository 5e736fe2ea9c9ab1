"""The results table of a run: one row per trial, with stability and cost from its history."""

from __future__ import annotations

from pathlib import Path

from scm_bench import rundir
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
    if teacher and trial.spec.method != "teacher":
        own = ("_teacher", f"_teacher_{EVALSD}")  # the teacher's values and their noise
        row.update({k: v for k, v in teacher.get("metrics", {}).items() if k.endswith(own)})
    return row

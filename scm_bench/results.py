"""The results table of a run: one row per trial, built from the trial directories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scm_bench.spec.expand import Trial
from scm_bench.train import io

FINISHED = ("ok", "diverged")


def trial_outcome(trial_dir: Path) -> dict | None:
    """The trial's result.json, or None when it has not finished."""
    path = Path(trial_dir) / "result.json"
    return io.read_json(path) if path.exists() else None


def is_finished(trial_dir: Path) -> bool:
    res = trial_outcome(trial_dir)
    return res is not None and res.get("status") in FINISHED


def summarize(trial_dir: Path, result: dict) -> dict:
    """Stability and cost columns from the trial's history (the metrics package)."""
    from scm_bench.metrics import summarize_trial

    return summarize_trial(io.read_history(Path(trial_dir) / "history.jsonl"), result)


def result_row(trial: Trial, trial_dir: Path, teacher_dir: Path | None) -> dict:
    row = {
        "trial_id": trial.trial_id,
        "variant": trial.variant,
        "seed": trial.seed,
        "method": trial.spec.method,
        **trial.axes,
        "teacher_id": teacher_dir.name if teacher_dir else None,
        "teacher_dir": str(teacher_dir) if teacher_dir else None,
    }
    res = trial_outcome(trial_dir)
    if res is None:
        row["status"] = "pending"
        return row
    for key in ("status", "steps_done", "diverged_step", "diverged_what", "error", "wall_time"):
        row[key] = res.get(key)
    row.update(res.get("metrics", {}))
    if res.get("status") in FINISHED:
        row.update(summarize(trial_dir, res))
    teacher = trial_outcome(teacher_dir) if teacher_dir else None
    if teacher and trial.spec.method != "teacher":
        row.update({k: v for k, v in teacher.get("metrics", {}).items() if k.endswith("_teacher")})
    return row


def write_results(rows: list[dict], run_dir: Path) -> pd.DataFrame:
    """results.csv and results.parquet, rows sorted by trial id (stable across re-runs)."""
    df = pd.DataFrame(rows).sort_values("trial_id", kind="stable").reset_index(drop=True)
    df.to_csv(run_dir / "results.csv", index=False)
    try:
        df.to_parquet(run_dir / "results.parquet", index=False)
    except (ImportError, ValueError, TypeError):
        pass  # Parquet is a convenience; the CSV is the record
    return df

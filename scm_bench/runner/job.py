"""What a Tune trial trains (a ``Job``) and how a training process reports it.

Jobs reach the workers through ``tune.with_parameters`` (Ray's object store) as objects: the
``TrialSpec`` is never turned back into a dict, and the Tune config holds only the trial id
(and, in search mode, Optuna's proposal), which also names the trial's Tune folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scm_bench.runner import live
from scm_bench.spec import TrialSpec
from scm_bench.spec.ablation import Resources
from scm_bench.train.loop import train_trial


@dataclass(frozen=True)
class Job:
    """What a Tune trial needs: its typed spec and where it writes."""

    trial_id: str
    spec: TrialSpec
    dir: Path
    teacher_cache: Path  # teachers live in <cache>/teacher-<digest of the teacher spec>
    threads: int = 1
    crash_at: int | None = None  # testing hook: raise at this step
    metric: str | None = None  # search mode: the searched column (reported from the start)
    resources: Resources = Resources()  # per trial; workers > 1: a Ray Train run (workers.py)


def teacher_dir(spec: TrialSpec, cache: Path) -> Path | None:
    """Where the teacher a student needs lives: one folder per distinct teacher spec."""
    if not spec.needs_teacher():
        return None
    return Path(cache) / f"teacher-{spec.teacher_trial().digest()}"


def crash_hook(trial_id: str) -> int | None:
    """Testing hook: SCM_BENCH_CRASH='<substring of trial id>:<step>' crashes matching trials."""
    hook = os.environ.get("SCM_BENCH_CRASH")
    if hook:
        needle, _, step = hook.rpartition(":")
        if needle in trial_id:
            return int(step)
    return None


def _scalars(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, int | float | str | bool)}


@dataclass(frozen=True)
class Reporting:
    """Where a trial's rows go: ``report`` (tune.report in a Tune trial, ray.train.report in a
    Ray Train worker) with ``pending`` added, and live metrics tagged ``live_id``."""

    live_id: str
    pending: dict  # search mode: {metric: NaN} until the metric exists (Tune requires it)


def train_and_report(
    spec: TrialSpec,
    trial_dir: Path,
    tdir: Path | None,
    crash_at: int | None,
    reporting: Reporting | None,  # None: train quietly (a teacher trained inside a trial)
    report: Callable[[dict], None],
    main: bool = True,  # rank 0 of a multi-worker trial (the one that exports live metrics)
) -> dict:
    """``train_trial``, each history row and then the outcome passed to ``report``."""
    if reporting is None:
        return train_trial(spec, trial_dir, tdir, None, crash_at)

    # timesteps_total = the optimizer step: the x axis of TensorBoard (TBX) and MLflow curves.
    def on_log(row: dict) -> None:
        if main:
            live.export(reporting.live_id, row)
        report({**reporting.pending, **_scalars(row), "timesteps_total": row["step"]})

    result = train_trial(spec, trial_dir, tdir, on_log, crash_at)
    if main:
        live.export(reporting.live_id, {"diverged": float(result["status"] == "diverged")})
    final = {"status": result["status"], "trial_dir": str(trial_dir), **result.get("metrics", {})}
    final["timesteps_total"] = result["steps_done"]
    report({**reporting.pending, **_scalars(final)})
    return result

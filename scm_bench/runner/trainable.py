"""The Tune trial: a ``Job`` (a typed trial and where it writes) and the function Tune runs.

Jobs reach the workers through ``tune.with_parameters`` (Ray's object store) as objects: the
``TrialSpec`` is never turned back into a dict, and the Tune config holds only the trial id
(and, in search mode, Optuna's proposal), which also names the trial's Tune folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from scm_bench import rundir
from scm_bench.runner import live
from scm_bench.spec import TrialSpec
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


def trainable(config: dict, jobs: dict[str, Job]) -> None:
    """Tune entry point: train one trial in its own directory, reporting each history row.

    Search mode: Optuna's proposal (``config["params"]``) is applied with
    ``TrialSpec.override``; a proposal that changes a teacher-side setting gets (and, if it is
    not cached yet, trains) its own teacher.
    """
    job = jobs[config["trial_id"]]
    torch.set_num_threads(job.threads)
    spec, trial_dir = job.spec, job.dir
    if "params" in config:
        spec = spec.override(config["params"], "search proposal")
        trial_dir = job.dir / f"search-{spec.digest()}"
    tdir = teacher_dir(spec, job.teacher_cache)
    if tdir is not None and not rundir.is_finished(tdir):
        train_trial(spec.teacher_trial(), tdir)
    # Search mode: Tune requires the searched metric in every report; NaN until it exists.
    pending = {job.metric: math.nan} if job.metric else {}
    trial_id = f"{job.trial_id}-{spec.digest()}" if "params" in config else job.trial_id

    # timesteps_total = the optimizer step: the x axis of TensorBoard (TBX) and MLflow curves.
    def on_log(row: dict) -> None:
        live.export(trial_id, row)
        tune.report({**pending, **_scalars(row), "timesteps_total": row["step"]})

    result = train_trial(spec, trial_dir, tdir, on_log, job.crash_at)
    live.export(trial_id, {"diverged": float(result["status"] == "diverged")})
    final = {"status": result["status"], "trial_dir": str(trial_dir), **result.get("metrics", {})}
    final["timesteps_total"] = result["steps_done"]
    tune.report({**pending, **_scalars(final)})

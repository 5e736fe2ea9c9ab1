"""The Tune trial: the function Tune runs for a ``Job`` (``runner/job.py``).

A trial trains in the Tune trial's own process, or, with ``resources.workers > 1``, as a Ray
Train run that the trial launches and waits for (``runner/workers.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from ray import tune

from scm_bench import rundir
from scm_bench.runner.job import Job, Reporting, crash_hook, teacher_dir, train_and_report
from scm_bench.runner.workers import fit_workers
from scm_bench.spec import TrialSpec

__all__ = ["Job", "crash_hook", "run_job", "teacher_dir", "trainable"]


def run_job(
    job: Job, spec: TrialSpec, trial_dir: Path, tdir: Path | None, reporting: Reporting | None
) -> None:
    """Train in this process, or as a Ray Train run of ``job.resources.workers`` workers (a
    finished trial only reports its outcome, in this process)."""
    if job.resources.workers > 1 and not rundir.is_finished(trial_dir):
        fit_workers(job, spec, trial_dir, tdir, reporting)
    else:
        train_and_report(spec, trial_dir, tdir, job.crash_at, reporting, tune.report)


def trainable(config: dict, jobs: dict[str, Job]) -> None:
    """Tune entry point: train one trial in its own directory, reporting each history row.

    Search mode: Optuna's proposal (``config["params"]``) is applied with
    ``TrialSpec.override``; a proposal that changes a teacher-side setting gets (and, if it is
    not cached yet, trains) its own teacher.
    """
    job = jobs[config["trial_id"]]
    torch.set_num_threads(job.threads)
    spec, trial_dir = job.spec, job.dir
    if "params" in config:  # numpy scalars from the search space become plain Python values
        params = {k: getattr(v, "item", lambda v=v: v)() for k, v in config["params"].items()}
        spec = spec.override(params, "search proposal")
        trial_dir = job.dir / f"search-{spec.digest()}"
    tdir = teacher_dir(spec, job.teacher_cache)
    if tdir is not None and not rundir.is_finished(tdir):
        run_job(job, spec.teacher_trial(), tdir, None, None)
    # Search mode: Tune requires the searched metric in every report; NaN until it exists.
    pending = {job.metric: math.nan} if job.metric else {}
    trial_id = f"{job.trial_id}-{spec.digest()}" if "params" in config else job.trial_id
    run_job(job, spec, trial_dir, tdir, Reporting(trial_id, pending))

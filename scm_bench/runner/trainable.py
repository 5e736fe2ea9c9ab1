"""The Tune trial: the function Tune runs for a ``Job`` (``runner/job.py``).

A trial trains in the Tune trial's own process, or, with ``resources.workers > 1``, as a Ray
Train run that the trial launches and waits for (``runner/workers.py``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from ray import tune

from scm_bench import rundir
from scm_bench.lock import LockedError, RunLock
from scm_bench.runner.job import Job, Reporting, crash_hook, teacher_dir, train_and_report
from scm_bench.runner.workers import fit_workers
from scm_bench.spec import TrialSpec
from scm_bench.spec.expand import trial_id

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


def run_once(job: Job, spec: TrialSpec, folder: Path, reporting: Reporting | None = None) -> None:
    """``run_job`` for a teacher of the shared cache, which several trials or runs may want at
    once: one process trains it, the others wait, then read (and report) its outcome."""
    while True:
        try:
            with RunLock(folder):
                return run_job(job, spec, folder, None, reporting)
        except LockedError:
            time.sleep(2)


def proposal(job: Job, params: dict) -> tuple[TrialSpec, str]:
    """A search proposal applied with ``TrialSpec.override`` (numpy scalars from the search
    space become plain values) and its trial id, named by its parameters like an axis."""
    params = {k: getattr(v, "item", lambda v=v: v)() for k, v in params.items()}
    spec = job.spec.override(params, "search proposal")
    return spec, trial_id(job.trial_id.removesuffix("-search"), params, spec.seed, spec)


def trainable(config: dict, jobs: dict[str, Job]) -> None:
    """Tune entry point: train one trial in its own directory, reporting each history row.

    Search mode: Optuna's proposal (``config["params"]``) gets (and, if it is not cached yet,
    trains) the teacher its settings imply.
    """
    job = jobs[config["trial_id"]]
    torch.set_num_threads(job.threads)
    spec, trial_dir, name = job.spec, job.dir, job.trial_id
    if "params" in config:
        spec, name = proposal(job, config["params"])
        trial_dir = job.dir / name
    tdir = teacher_dir(spec, job.teacher_cache)
    if tdir is not None and not rundir.is_finished(tdir):
        run_once(job, spec.teacher_trial(), tdir)
    if tdir is not None and rundir.trial_outcome(tdir)["status"] != "ok":
        raise RuntimeError(f"teacher {tdir.name} {rundir.trial_outcome(tdir)['status']}")
    # Search mode: Tune requires the searched metric in every report; NaN until it exists.
    reporting = Reporting(name, {job.metric: math.nan} if job.metric else {})
    if spec.method == "teacher":  # a teacher job of the shared cache
        run_once(job, spec, trial_dir, reporting)
    else:
        run_job(job, spec, trial_dir, tdir, reporting)

"""The Tune trial: the function Tune runs for a ``Job`` (``runner/job.py``).

A trial works in a fresh folder of its own on the node that runs it (``storage.workdir``),
starts from its latest checkpoint (Tune's, after a retry, or the one an earlier invocation
left in the storage), gets its teacher from the storage, and reports its checkpoints and final
artifacts as ``tune.Checkpoint``s (``job.train_and_report``). It trains in the Tune trial's own
process, or, with ``resources.workers > 1``, as a Ray Train run that the trial launches and
waits for (``runner/workers.py``).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch
from ray import tune

from scm_bench import rundir
from scm_bench.runner.job import (
    Job,
    Reporting,
    final_row,
    teacher_dir,
    teacher_id,
    train_and_report,
)
from scm_bench.runner.storage import download, fetch_teacher, publish_teacher, workdir
from scm_bench.runner.workers import fit_workers
from scm_bench.spec import TrialSpec
from scm_bench.spec.expand import trial_id

__all__ = ["Job", "run_job", "teacher_dir", "trainable"]


def run_job(
    job: Job,
    spec: TrialSpec,
    work: Path,
    tdir: Path | None,
    reporting: Reporting | None,
    start: tune.Checkpoint | None = None,  # already in ``work``; a Ray Train run's rank 0 gets it
) -> None:
    """Train in this process, or as a Ray Train run of ``job.resources.workers`` workers whose
    final artifacts come back into ``work`` (then reported from here)."""
    if job.resources.workers > 1 and not rundir.is_finished(work):
        fit_workers(job, spec, work, reporting, start)
        result = rundir.trial_outcome(work)
        if reporting is not None and result is not None:
            final = tune.Checkpoint.from_directory(str(work))
            tune.report(final_row(result, work, reporting), checkpoint=final)
    else:
        train_and_report(spec, work, tdir, reporting, tune.report)


def proposal(job: Job, params: dict) -> tuple[TrialSpec, str]:
    """A search proposal applied with ``TrialSpec.override`` (numpy scalars from the search
    space become plain values) and its trial id, named by its parameters like an axis."""
    params = {k: getattr(v, "item", lambda v=v: v)() for k, v in params.items()}
    spec = job.spec.override(params, "search proposal")
    return spec, trial_id(job.trial_id.removesuffix("-search"), params, spec.seed, spec)


def teacher_of(job: Job, spec: TrialSpec) -> Path | None:
    """This node's copy of the teacher the trial needs, from the storage (trained here, quietly,
    and put there when no trial has yet: a search proposal's own teacher)."""
    if not spec.needs_teacher():
        return None
    teacher = spec.teacher_trial()
    tdir = fetch_teacher(
        job.storage, teacher_id(spec), lambda folder: run_job(job, teacher, folder, None, None)
    )
    outcome = rundir.trial_outcome(tdir)
    if outcome is None or outcome["status"] != rundir.OK:
        raise RuntimeError(f"teacher {tdir.name} {outcome['status'] if outcome else 'missing'}")
    return tdir


def trainable(config: dict, jobs: dict[str, Job]) -> None:
    """Tune entry point: train one trial in a working directory of its own, reporting each
    history row, its checkpoints and its final artifacts.

    Search mode: Optuna's proposal (``config["params"]``) gets (and, if no trial has it yet,
    trains) the teacher its settings imply.
    """
    job = jobs[config["trial_id"]]
    torch.set_num_threads(job.threads)
    spec, name = job.spec, job.trial_id
    if "params" in config:
        spec, name = proposal(job, config["params"])
    work = workdir(name)
    try:
        start = tune.get_checkpoint() or job.resume
        if start is not None:
            download(start, work)
        tdir = teacher_of(job, spec)
        # Search mode: Tune requires the searched metric in every report; NaN until it exists.
        reporting = Reporting(name, {job.metric: math.nan} if job.metric else {})
        run_job(job, spec, work, tdir, reporting, start)
        if job.teacher:  # a teacher for the students: into the storage's teachers
            publish_teacher(job.storage, work)
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)

"""The Tune trial: a ``Job`` (a typed trial and where it writes) and the function Tune runs.

Jobs reach the workers through ``tune.with_parameters`` (Ray's object store) as objects: the
``TrialSpec`` is never turned back into a dict, and the Tune config holds only the trial id
(and, in search mode, Optuna's proposal), which also names the trial's Tune folder.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from scm_bench import rundir
from scm_bench.lock import LockedError, RunLock
from scm_bench.runner import live
from scm_bench.spec import TrialSpec
from scm_bench.spec.expand import trial_id
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


def train_once(spec: TrialSpec, folder: Path, **kw) -> dict:
    """``train_trial`` in ``folder`` by one process at a time: a teacher folder of the shared
    cache may be wanted by several trials or runs at once; the others wait, then read its
    outcome (``train_trial`` returns a finished trial's result without training)."""
    while True:
        try:
            with RunLock(folder):
                return train_trial(spec, folder, **kw)
        except LockedError:
            time.sleep(2)


def ensure_teacher(spec: TrialSpec, cache: Path) -> Path | None:
    """The folder of the teacher ``spec`` needs, trained here unless it is cached."""
    tdir = teacher_dir(spec, cache)
    if tdir is not None and not rundir.is_finished(tdir):
        train_once(spec.teacher_trial(), tdir)
    return tdir


def search_trial_id(name: str, spec: TrialSpec, params: dict) -> str:
    """A search proposal's trial id (and folder name): named by its parameters, like an axis."""
    return trial_id(name, params, spec.seed, spec)


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
    spec, trial_dir, name = job.spec, job.dir, job.trial_id
    if "params" in config:  # numpy scalars from the search space become plain Python values
        params = {k: getattr(v, "item", lambda v=v: v)() for k, v in config["params"].items()}
        spec = spec.override(params, "search proposal")
        name = search_trial_id(job.trial_id.removesuffix("-search"), spec, params)
        trial_dir = job.dir / name
    tdir = ensure_teacher(spec, job.teacher_cache)
    if tdir is not None and rundir.trial_outcome(tdir)["status"] != "ok":
        raise RuntimeError(f"teacher {tdir.name} {rundir.trial_outcome(tdir)['status']}")
    # Search mode: Tune requires the searched metric in every report; NaN until it exists.
    pending = {job.metric: math.nan} if job.metric else {}

    # timesteps_total = the optimizer step: the x axis of TensorBoard (TBX) and MLflow curves.
    def on_log(row: dict) -> None:
        live.export(name, row)
        tune.report({**pending, **_scalars(row), "timesteps_total": row["step"]})

    train = train_once if spec.method == "teacher" else train_trial  # teachers: a shared cache
    result = train(spec, trial_dir, teacher_dir=tdir, on_log=on_log, crash_at=job.crash_at)
    live.export(name, {"diverged": float(result["status"] == "diverged")})
    final = {"status": result["status"], "trial_dir": str(trial_dir), **result.get("metrics", {})}
    final["timesteps_total"] = result["steps_done"]
    tune.report({**pending, **_scalars(final)})

"""What a Tune trial trains (a ``Job``) and how a training process reports it.

Jobs reach the workers through ``tune.with_parameters`` (Ray's object store) as objects: the
``TrialSpec`` is never turned back into a dict, and the Tune config holds only the trial id
(and, in search mode, Optuna's proposal), which also names the trial's Tune folder.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from scm_bench import rundir
from scm_bench.runner import live
from scm_bench.runner.storage import Storage
from scm_bench.spec import TrialSpec
from scm_bench.spec.ablation import Resources
from scm_bench.train.loop import train_trial


@dataclass(frozen=True)
class Job:
    """What a Tune trial needs: its typed spec, the storage its artifacts go through, and (on
    the driver only) the run's folder they are assembled into."""

    trial_id: str
    spec: TrialSpec
    dir: Path  # the driver's folder of the trial (a search: of its proposals)
    teacher_cache: Path  # the driver's: <cache>/teacher-<digest of the teacher spec>
    storage: Storage
    threads: int = 1
    metric: str | None = None  # search mode: the searched column (reported from the start)
    resources: Resources = Resources()  # per trial; workers > 1: a Ray Train run (workers.py)
    resume: tune.Checkpoint | None = None  # the state an earlier invocation left
    teacher: bool = False  # a teacher of the cache: put into <storage>/teachers/ when done


def teacher_id(spec: TrialSpec) -> str:
    """The name of the teacher a student needs: one per distinct teacher spec."""
    return f"teacher-{spec.teacher_trial().digest()}"


def teacher_dir(spec: TrialSpec, cache: Path) -> Path | None:
    """Where the teacher a student needs lives in the driver's cache."""
    return Path(cache) / teacher_id(spec) if spec.needs_teacher() else None


def _scalars(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, int | float | str | bool)}


@dataclass(frozen=True)
class Reporting:
    """Where a trial's rows go: ``report`` (tune.report in a Tune trial, ray.train.report in a
    Ray Train worker) with ``pending`` added, and live metrics tagged ``live_id``."""

    live_id: str
    pending: dict  # search mode: {metric: NaN} until the metric exists (Tune requires it)


def ran_on(trial_dir: Path) -> dict:
    """Where a trial ran: Ray's node id, the host name and its working directory there."""
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    return {"node_id": node, "host": socket.gethostname(), "workdir": str(trial_dir)}


def final_row(result: dict, trial_dir: Path, reporting: Reporting) -> dict:
    """The last report of a trial: its outcome and sample metrics."""
    final = {"status": result["status"], "trial_dir": str(trial_dir), **result.get("metrics", {})}
    final["timesteps_total"] = result["steps_done"]
    return {**reporting.pending, **_scalars(final)}


def train_and_report(
    spec: TrialSpec,
    trial_dir: Path,
    tdir: Path | None,
    reporting: Reporting | None,  # None: train quietly (a teacher trained inside a trial)
    report: Callable[..., None],  # tune.report or ray.train.report (metrics, checkpoint=)
    main: bool = True,  # rank 0 of a multi-worker trial: exports live metrics, checkpoints
) -> dict:
    """``train_trial`` in the local ``trial_dir``; each history row and then the outcome
    passed to ``report``, with the folder as a checkpoint whenever a new ``checkpoint.pt``
    was saved (rows come after their step's checkpoint) and with the final artifacts."""
    if reporting is None:
        return train_trial(spec, trial_dir, tdir, None)
    ckpt_path, seen = Path(trial_dir) / "checkpoint.pt", [None]

    def checkpoint() -> tune.Checkpoint | None:
        stamp = ckpt_path.stat().st_mtime_ns if ckpt_path.exists() else None
        if not main or stamp == seen[0]:
            return None
        seen[0] = stamp
        return tune.Checkpoint.from_directory(str(trial_dir))

    # timesteps_total = the optimizer step: the x axis of TensorBoard (TBX) and MLflow curves.
    def on_log(row: dict) -> None:
        if main:
            live.export(reporting.live_id, row)
        metrics = {**reporting.pending, **_scalars(row), "timesteps_total": row["step"]}
        report(metrics, checkpoint=checkpoint())

    result = train_trial(spec, trial_dir, tdir, on_log)
    if main:
        live.export(reporting.live_id, {"diverged": float(result["status"] == rundir.DIVERGED)})
        result["ran_on"] = ran_on(trial_dir)
        rundir.write_json(Path(trial_dir) / "result.json", result)
    final = tune.Checkpoint.from_directory(str(trial_dir)) if main else None
    report(final_row(result, trial_dir, reporting), checkpoint=final)
    return result

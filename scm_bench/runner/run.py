"""`scm-bench run`: every variant x seed of an ablation as a Ray Tune trial.

Teachers are trained first, once per distinct teacher spec, cached by hash and shared; then
students. Finished trials are never redone: re-running the same command resumes. A crashed
trial is retried per the spec's failure policy, then recorded as failed; the ablation goes on.
No early-stopping scheduler is used (it would bias seed averages).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import ray
from ray import tune

from scm_bench import rundir
from scm_bench.lock import RunLock
from scm_bench.owned import claim
from scm_bench.private import private_dir
from scm_bench.report import write_report
from scm_bench.report.table import long_results
from scm_bench.runner import orphans
from scm_bench.runner.cluster import check_resources, connect
from scm_bench.runner.plan import (
    check_same_experiment,
    end_invocation,
    start_invocation,
    write_plan,
)
from scm_bench.runner.results import result_row
from scm_bench.runner.search import search_rows, tune_search
from scm_bench.runner.storage import Storage, publish_teacher
from scm_bench.runner.teachers import claim_teachers, wait_for_teachers
from scm_bench.runner.trainable import Job, teacher_dir
from scm_bench.runner.tuner import fit, tune_dirname, tune_env, tune_trialname
from scm_bench.runner.workers import max_trials
from scm_bench.spec import AblationSpec, Trial, TrialSpec
from scm_bench.spec.check import preflight


def tune_jobs(jobs: list[Job], phase: str, req: RunRequest, echo) -> None:
    """Run jobs as one Tune experiment; errored ones get a 'failed' result.json."""
    if not jobs:
        return
    spec = req.spec
    concurrency = req.max_concurrent or max_trials(spec.resources, ray.cluster_resources())
    echo(f"{phase}: {len(jobs)} trial(s), up to {concurrency} at a time")
    by_id = {j.trial_id: replace(j, resources=spec.resources) for j in jobs}
    fit(
        by_id, spec, phase, req.storage, {"trial_id": tune.grid_search(list(by_id))}, len(jobs),
        concurrency, echo, list(req.callbacks), reuse_actors=True,
        trial_dirname_creator=tune_dirname, trial_name_creator=tune_trialname,
    )  # fmt: skip


def resume_seed(storage: Storage, folder: Path, trial_id: str) -> tune.Checkpoint | None:
    """What an earlier invocation left of an unfinished trial (its folder of the run, assembled
    from its checkpoints), put into the storage for whichever node resumes it."""
    if not (folder / "checkpoint.pt").exists():
        return None
    storage.upload(folder, "resume", trial_id, replace=True)
    return storage.checkpoint("resume", trial_id)


def student_job(t: Trial, req: RunRequest) -> Job | None:
    """The job of an unfinished trial; None when finished or when its teacher did not succeed
    (then the trial is recorded as failed with the teacher's outcome)."""
    trial_dir = req.out_dir / "trials" / t.trial_id
    if rundir.is_finished(trial_dir):
        return None
    trial_dir.mkdir(parents=True, exist_ok=True)
    tdir = teacher_dir(t.spec, req.teacher_cache)
    teacher = rundir.trial_outcome(tdir) if tdir else None
    if tdir and (teacher is None or teacher["status"] != rundir.OK):
        why = teacher["status"] if teacher else "missing"
        rundir.write_json(
            trial_dir / "result.json",
            {"status": rundir.FAILED, "error": f"teacher {tdir.name} {why}"},
        )
        return None
    if tdir:
        publish_teacher(req.storage, tdir)  # students get it from the storage (once per teacher)
    seed = resume_seed(req.storage, trial_dir, t.trial_id)
    return Job(t.trial_id, t.spec, trial_dir, req.teacher_cache, req.storage, req.threads,
               resume=seed)  # fmt: skip


def train_teachers(specs: dict[Path, TrialSpec], req: RunRequest, echo) -> int:
    """Train the cache entries ``specs`` names, each by one driver (``runner/teachers.py``):
    those this driver locks, then those whose other trainer stopped; returns how many."""
    trained, pending = 0, list(specs)
    with contextlib.ExitStack() as held:
        while pending:
            ours, others = claim_teachers(pending, held, echo)
            jobs = [Job(d.name, specs[d], d, req.teacher_cache, req.storage, req.threads,
                        resume=resume_seed(req.storage, d, d.name), teacher=True)
                    for d in ours]  # fmt: skip
            tune_jobs(jobs, "teachers", req, echo)
            trained += len(jobs)
            pending = wait_for_teachers(others)
    return trained


def say(line: str) -> None:
    """The default ``echo``: print, flushed (progress shows as it happens in a pipe or log)."""
    print(line, flush=True)


@dataclass(frozen=True)
class RunRequest:
    """What `scm-bench run` asks of the runner: the spec and its trials, where the run folder
    and the teacher cache are, and how to reach and use Ray."""

    spec: AblationSpec
    trials: tuple[Trial, ...]
    out_dir: Path  # the run folder (resolved)
    teacher_cache: Path  # the private teacher cache (resolved)
    storage: Storage  # Tune's storage: where artifacts travel between nodes
    address: str | None = None  # a Ray cluster; None: RAY_ADDRESS or an embedded local Ray
    dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    max_concurrent: int | None = None  # trials at a time (None: as resources allow)
    callbacks: tuple[tune.Callback, ...] = ()  # more Tune callbacks (W&B, MLflow)

    @property
    def threads(self) -> int:
        return max(1, int(self.spec.resources.cpu))


class Grid:
    """A spec's fixed variants x seeds: teachers trained first, then every unfinished trial."""

    def teachers(self, req: RunRequest) -> dict[Path, TrialSpec]:
        """The cache entries still to train, one per distinct teacher spec."""
        specs: dict[Path, TrialSpec] = {}
        for t in req.trials:
            tdir = teacher_dir(t.spec, req.teacher_cache)
            if tdir and not rundir.is_finished(tdir):
                specs.setdefault(tdir, t.spec.teacher_trial())
        return specs

    def train(self, req: RunRequest, echo) -> int:
        jobs = [j for t in req.trials if (j := student_job(t, req))]
        tune_jobs(jobs, "trials", req, echo)
        return len(jobs)

    def rows(self, req: RunRequest) -> list[dict]:
        return [
            result_row(
                t, req.out_dir / "trials" / t.trial_id, teacher_dir(t.spec, req.teacher_cache)
            )
            for t in req.trials
        ]

    def settings(self, req: RunRequest) -> list[str]:
        return [a for t in req.trials for a in t.axes]


class Search:
    """An Optuna search: each proposal trains the teacher its settings imply; Optuna decides
    how many trials run, so none is counted in advance."""

    def teachers(self, req: RunRequest) -> dict[Path, TrialSpec]:
        return {}

    def train(self, req: RunRequest, echo) -> None:
        tune_search(req.spec, req.trials[0], req.out_dir, req.teacher_cache, req.storage,
                    req.threads, req.max_concurrent, echo, list(req.callbacks))  # fmt: skip

    def rows(self, req: RunRequest) -> list[dict]:
        return search_rows(req.spec, req.out_dir, req.teacher_cache)

    def settings(self, req: RunRequest) -> list[str]:
        return list(req.spec.search.params)


def run(
    spec: AblationSpec,
    trials: list[Trial],
    out_dir: Path,
    *,
    address: str | None = None,
    dashboard: bool = False,
    dashboard_host: str = "127.0.0.1",
    max_concurrent: int | None = None,
    teacher_cache: Path | None = None,
    storage: str | None = None,  # Tune's storage_path: a folder or URI (default <out_dir>/ray)
    echo=say,  # lines for the user
    callbacks: list[tune.Callback] = (),  # more Tune callbacks (runner.tracking: W&B, MLflow)
) -> pd.DataFrame:
    """Train every unfinished trial, then write the results table (and report). Teachers are
    cached in ``teacher_cache`` (default: ``rundir.default_teacher_cache()``); artifacts go
    through Tune's ``storage`` (``runner/storage.py``) and are assembled into ``out_dir``."""
    out_dir = Path(out_dir).resolve()
    store = Storage.parse(storage, out_dir)
    claim(out_dir, "run", "--out")  # a folder of someone else's files is refused, untouched
    cache = Path(teacher_cache or rundir.default_teacher_cache()).resolve()
    with RunLock(out_dir) as lock:  # one driver per run folder; a second one is refused
        if lock.note:
            echo(lock.note)
        req = RunRequest(
            spec, tuple(trials), out_dir, private_dir(cache, "--teacher-cache"), store,
            address, dashboard, dashboard_host, max_concurrent, tuple(callbacks),
        )  # fmt: skip
        return _run_locked(req, echo)


def _run_locked(req: RunRequest, echo) -> pd.DataFrame:
    check_same_experiment(req.spec, list(req.trials), req.out_dir)  # one experiment per folder
    write_plan(req.spec, list(req.trials), req.out_dir)
    preflight(list(req.trials))
    index, t0 = start_invocation(req.out_dir), time.perf_counter()
    try:
        return _train_and_finish(req, echo, index, t0)
    except BaseException as err:  # Ctrl-C, SIGTERM, a user error: recorded, then passed on
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "stopped by an error"
        end_invocation(req.out_dir, index, time.perf_counter() - t0, None, status)
        raise


def _train_and_finish(req: RunRequest, echo, index: int, t0: float) -> pd.DataFrame:
    path = Search() if req.spec.search is not None else Grid()
    orphans.clean(req.out_dir, echo)  # Ray processes of an earlier driver killed with SIGKILL
    started = connect(req.address, req.dashboard, req.dashboard_host, echo)
    if started:
        orphans.record(req.out_dir, ray._private.worker._global_node.get_session_dir_path())
    try:
        check_resources(req.spec, list(req.trials))
        if any(t.spec.needs_teacher() for t in req.trials):
            echo(f"teacher cache: {req.teacher_cache}")
        with tune_env():
            n_teachers = train_teachers(path.teachers(req), req, echo)  # teachers first
            n_trials = path.train(req, echo)  # students (and any other trials), or a search
        trained = None if n_trials is None else n_teachers + n_trials
    finally:
        if started:
            ray.shutdown()
            orphans.forget(req.out_dir)
    return finish(req, path, time.perf_counter() - t0, echo, trained, index)


def finish(
    req: RunRequest,
    path: Grid | Search,
    wall: float,
    echo,
    trained: int | None = None,
    index: int | None = None,  # this invocation's entry in run.json (None: a new one)
) -> pd.DataFrame:
    """Results table (wide and long), summary of failures, run.json, report."""
    out_dir = req.out_dir
    df = rundir.write_results(path.rows(req), out_dir)
    counts = df["status"].value_counts().to_dict()
    echo(
        f"{len(df)} trials: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f" ({wall:.0f}s); results: {out_dir / 'results.csv'}"
    )
    for _, row in df[~df["status"].isin(rundir.FINISHED)].iterrows():
        why = row.get("error")
        echo(f"  {row['trial_id']}: {row['status']}" + (f": {why}" if isinstance(why, str) else ""))
    for _, row in df[df["status"] == rundir.DIVERGED].iterrows():
        echo(
            f"  {row['trial_id']}: diverged at step {row['diverged_step']}: {row['diverged_what']}"
        )
    long_results(df, path.settings(req)).to_csv(out_dir / "results_long.csv", index=False)
    index = start_invocation(out_dir) if index is None else index
    end_invocation(out_dir, index, wall, trained, "finished")
    md, html = write_report(out_dir)
    echo(f"report: {md} and {html}")
    return df

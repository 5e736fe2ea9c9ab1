"""`scm-bench run`: every variant x seed of an ablation as a Ray Tune trial.

Teachers are trained first, once per distinct teacher spec, cached by hash and shared; then
students. Finished trials are never redone: re-running the same command resumes. A crashed
trial is retried per the spec's failure policy, then recorded as failed; the ablation goes on.
No early-stopping scheduler is used (it would bias seed averages).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import ray
import torch
import yaml
from ray import tune

from scm_bench.errors import RunError
from scm_bench.results import FINISHED, is_finished, result_row, trial_outcome, write_results
from scm_bench.runner import live
from scm_bench.runner.progress import Progress
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.expand import Trial
from scm_bench.spec.load import set_path
from scm_bench.spec.schema import TrialSpec
from scm_bench.train import io
from scm_bench.train.loop import train_trial

# Tune's console tables and TensorBoard hints would drown the progress lines; legacy output at
# verbose=0 prints nothing, and Progress reports instead.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@dataclass
class Job:
    """What a Tune trial needs: plain data only (it is pickled to a worker)."""

    trial_id: str
    spec: dict
    dir: str
    teacher_dir: str | None = None
    threads: int = 1
    crash_at: int | None = None
    extra: dict = field(default_factory=dict)


def _scalars(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, int | float | str | bool)}


def trainable(config: dict) -> None:
    """Tune entry point: train one trial in its own directory, reporting each history row."""
    job = Job(**config["job"])
    torch.set_num_threads(job.threads)
    data = copy.deepcopy(job.spec)
    for path, value in config.get("params", {}).items():  # search mode: Optuna's proposal
        set_path(data, path, value)
    # Search mode: Tune requires the searched metric in every report; NaN until it exists.
    pending = {config["metric"]: math.nan} if "metric" in config else {}
    spec = TrialSpec.model_validate(data)
    trial_dir = Path(job.dir) if "params" not in config else Path(job.dir) / spec.digest()

    def on_log(row: dict) -> None:
        live.export(job.trial_id, row)
        tune.report({**pending, **_scalars(row)})

    result = train_trial(
        spec, trial_dir, job.teacher_dir and Path(job.teacher_dir), on_log, job.crash_at
    )
    live.export(job.trial_id, {"diverged": float(result["status"] == "diverged")})
    final = {"status": result["status"], "trial_dir": str(trial_dir), **result.get("metrics", {})}
    tune.report({**pending, **_scalars(final)})


def crash_hook(trial_id: str) -> int | None:
    """Testing hook: SCM_BENCH_CRASH='<substring of trial id>:<step>' crashes matching trials."""
    hook = os.environ.get("SCM_BENCH_CRASH")
    if hook:
        needle, _, step = hook.rpartition(":")
        if needle in trial_id:
            return int(step)
    return None


def tune_jobs(
    jobs: list[Job], phase: str, spec: AblationSpec, storage: Path, max_concurrent: int | None, echo
) -> None:
    """Run jobs as one Tune experiment; errored ones get a 'failed' result.json."""
    if not jobs:
        return
    cpus = ray.cluster_resources().get("CPU", 1)
    concurrency = max_concurrent or max(1, int(cpus // spec.resources.cpu))
    echo(f"{phase}: {len(jobs)} trial(s), up to {concurrency} at a time")
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        param_space={"job": tune.grid_search([vars(j) for j in jobs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{phase}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
            callbacks=[Progress(phase, len(jobs), concurrency, echo)],
            verbose=0,
        ),
    )
    grid = tuner.fit()
    for res in grid:
        if res.error is None:
            continue
        job = Job(**res.config["job"])
        if not is_finished(Path(job.dir)):
            err = "".join(traceback.format_exception_only(type(res.error), res.error)).strip()
            io.write_json(
                Path(job.dir) / "result.json",
                {"status": "failed", "error": err.splitlines()[-1][:500]},
            )


def connect(address: str | None, dashboard: bool, host: str, echo) -> bool:
    """Join an existing Ray (``address`` or RAY_ADDRESS) or start a local one; True if started."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs = {"address": address, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        kwargs.update(include_dashboard=dashboard, dashboard_host=host)
    ctx = ray.init(**kwargs)
    if dashboard:
        url = f"http://{ctx.dashboard_url}" if ctx.dashboard_url else "(dashboard not available)"
        echo(f"Ray dashboard: {url}")
        echo(
            "  token authentication is on: sign in with the token printed by "
            "`ray get-auth-token` (stored in ~/.ray/auth_token), or send the header "
            "'Authorization: Bearer <token>'"
        )
        port = next((n.get("MetricsExportPort") for n in ray.nodes() if n.get("Alive")), None)
        echo(
            f"  live trial metrics (Prometheus format, tag trial_id): "
            f"http://127.0.0.1:{port}/metrics -> scm_bench_loss, scm_bench_grad_norm, "
            "scm_bench_g_norm, scm_bench_steps_per_sec, scm_bench_diverged"
        )
    return address == "local"


def check_resources(spec: AblationSpec, trials: list[Trial]) -> None:
    gpus = ray.cluster_resources().get("GPU", 0)
    if spec.resources.gpu > gpus:
        raise RunError(
            f"resources.gpu: {spec.resources.gpu} GPU per trial asked, but the Ray "
            f"cluster has {gpus:g}; set resources.gpu: 0 or use --address with a GPU "
            "cluster"
        )
    if gpus == 0 and any(t.spec.device == "cuda" for t in trials):
        raise RunError(
            "trial.device: cuda asked, but the Ray cluster has no GPU; use device: auto or cpu"
        )
    if spec.resources.cpu > ray.cluster_resources().get("CPU", 0):
        raise RunError(
            f"resources.cpu: {spec.resources.cpu} CPUs per trial asked, but the "
            f"cluster has {ray.cluster_resources().get('CPU', 0):g}"
        )


def preflight(trials: list[Trial]) -> None:
    """Data folders and feature-network weights are checked before anything trains."""
    from scm_bench import metrics
    from scm_bench.data import DataError, load_dataset

    seen = set()
    for t in trials:
        key = t.spec.data.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        try:
            ds = load_dataset(t.spec.data)
        except DataError as err:
            raise RunError(f"trial.data: {err}") from None
        names = t.spec.eval.metrics or metrics.default_sample_metrics(ds.name)
        try:
            metrics.check_available(ds.name, names, inception=t.spec.eval.inception)
        except ValueError as err:
            raise RunError(str(err)) from None


def student_job(t: Trial, out_dir: Path, tdir: Path | None, threads: int) -> Job | None:
    """The job of an unfinished trial; None when finished or when its teacher did not succeed
    (then the trial is recorded as failed with the teacher's outcome)."""
    trial_dir = out_dir / "trials" / t.trial_id
    if is_finished(trial_dir):
        return None
    trial_dir.mkdir(parents=True, exist_ok=True)
    teacher = trial_outcome(tdir) if tdir else None
    if tdir and (teacher is None or teacher["status"] != "ok"):
        why = teacher["status"] if teacher else "missing"
        io.write_json(
            trial_dir / "result.json", {"status": "failed", "error": f"teacher {tdir.name} {why}"}
        )
        return None
    return Job(
        t.trial_id,
        t.spec.model_dump(mode="json"),
        str(trial_dir),
        str(tdir) if tdir else None,
        threads,
        crash_hook(t.trial_id),
    )


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
    echo=print,
) -> pd.DataFrame:
    """Train every unfinished trial, then write the results table (and report)."""
    out_dir = Path(out_dir).resolve()
    cache = Path(teacher_cache or out_dir.parent / "_teachers").resolve()
    (out_dir / "trials").mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.yaml").write_text(
        yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    )
    io.write_json(
        out_dir / "trials.json",
        [
            {
                "trial_id": t.trial_id,
                "variant": t.variant,
                "axes": t.axes,
                "seed": t.seed,
                "spec": t.spec.model_dump(mode="json"),
            }
            for t in trials
        ],
    )
    preflight(trials)
    started = connect(address, dashboard, dashboard_host, echo)
    t0 = time.perf_counter()
    try:
        check_resources(spec, trials)
        threads = max(1, int(spec.resources.cpu))
        teacher_dirs = {
            t.trial_id: cache / f"teacher-{t.spec.teacher_trial().digest()}"
            for t in trials
            if t.spec.needs_teacher()
        }

        # Teachers first, once per distinct teacher spec.
        teacher_jobs = {}
        for t in trials:
            tdir = teacher_dirs.get(t.trial_id)
            if tdir and not is_finished(tdir) and str(tdir) not in teacher_jobs:
                teacher_jobs[str(tdir)] = Job(
                    tdir.name,
                    t.spec.teacher_trial().model_dump(mode="json"),
                    str(tdir),
                    threads=threads,
                )
        tune_jobs(
            list(teacher_jobs.values()), "teachers", spec, out_dir / "ray", max_concurrent, echo
        )

        # Students (and any other trials), skipping finished ones; or an Optuna search.
        if spec.search is not None:
            from scm_bench.runner.search import tune_search

            tune_search(spec, trials, out_dir, teacher_dirs, threads, max_concurrent, echo)
        else:
            jobs = [
                job
                for t in trials
                if (job := student_job(t, out_dir, teacher_dirs.get(t.trial_id), threads))
            ]
            tune_jobs(jobs, "trials", spec, out_dir / "ray", max_concurrent, echo)
    finally:
        if started:
            ray.shutdown()
    return finish(spec, trials, out_dir, teacher_dirs, time.perf_counter() - t0, echo)


def finish(spec, trials, out_dir: Path, teacher_dirs: dict, wall: float, echo) -> pd.DataFrame:
    """Results table, summary of failures, report."""
    if spec.search is not None:
        from scm_bench.runner.search import search_rows

        rows = search_rows(spec, out_dir, teacher_dirs)
    else:
        rows = [
            result_row(t, out_dir / "trials" / t.trial_id, teacher_dirs.get(t.trial_id))
            for t in trials
        ]
    df = write_results(rows, out_dir)
    counts = df["status"].value_counts().to_dict()
    echo(
        f"{len(df)} trials: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f" ({wall:.0f}s); results: {out_dir / 'results.csv'}"
    )
    for _, row in df[~df["status"].isin(FINISHED)].iterrows():
        why = row.get("error")
        echo(f"  {row['trial_id']}: {row['status']}" + (f": {why}" if isinstance(why, str) else ""))
    for _, row in df[df["status"] == "diverged"].iterrows():
        echo(
            f"  {row['trial_id']}: diverged at step {row['diverged_step']}: {row['diverged_what']}"
        )
    (out_dir / "run.json").write_text(json.dumps({"wall_time": wall}, indent=2))
    try:
        from scm_bench.report import write_report
    except ImportError:
        return df
    md, html = write_report(out_dir)
    echo(f"report: {md} and {html}")
    return df

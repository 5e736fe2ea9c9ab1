"""Tuning instead of ablating: Optuna's sampler through Ray Tune's OptunaSearch."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from scm_bench import metrics, rundir
from scm_bench.runner.progress import Progress, relayed
from scm_bench.runner.results import result_row
from scm_bench.runner.trainable import Job, teacher_dir, trainable
from scm_bench.runner.workers import trial_resources
from scm_bench.spec import AblationSpec, Trial, TrialSpec
from scm_bench.spec.ablation import SearchParam
from scm_bench.spec.expand import trial_id


def domain(p: SearchParam):
    if p.type == "uniform":
        return tune.uniform(p.low, p.high)
    if p.type == "loguniform":
        return tune.loguniform(p.low, p.high)
    if p.type == "int":
        return tune.randint(int(p.low), int(p.high) + 1)
    return tune.choice(p.values)


def direction(spec: AblationSpec) -> str:
    return "max" if metrics.get(metrics.base_name(spec.search.metric)).higher_is_better else "min"


def tune_search(
    spec: AblationSpec,
    base: Trial,
    out_dir: Path,
    cache: Path,
    threads: int,
    max_concurrent: int | None,
    echo,
) -> None:
    """num_samples Optuna proposals around the base trial; each proposal is applied with
    ``TrialSpec.override`` in the worker and gets the teacher its settings imply."""
    job = Job(
        f"{spec.name}-search", base.spec, out_dir / "trials", cache, threads,
        metric=spec.search.metric, resources=spec.resources,
    )  # fmt: skip
    mode = direction(spec)
    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=base.seed))
    concurrency = max_concurrent or 1
    echo(f"search: {spec.search.num_samples} Optuna trial(s) on {spec.search.metric} ({mode})")
    with relayed(echo) as say:  # Progress's lines, also under Ray Client
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(trainable, jobs={job.trial_id: job}),
                trial_resources(spec.resources),
            ),
            param_space={
                "trial_id": job.trial_id,
                "params": {p: domain(v) for p, v in spec.search.params.items()},
            },
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=spec.search.num_samples,
                metric=spec.search.metric,
                mode=mode,
                max_concurrent_trials=concurrency,
            ),
            run_config=tune.RunConfig(
                name="search",
                storage_path=str(out_dir / "ray"),
                verbose=0,
                callbacks=[Progress("search", spec.search.num_samples, concurrency, say)],
            ),
        )
        grid = tuner.fit()
    best = grid.get_best_result(metric=spec.search.metric, mode=mode, filter_nan_and_inf=True)
    value = best.metrics.get(spec.search.metric, math.nan) if best else math.nan
    params = best.config.get("params", {}) if best else {}
    rundir.write_json(
        out_dir / "best.json",
        {"metric": spec.search.metric, "mode": mode, "value": value, "params": params},
    )
    echo(f"best {spec.search.metric} = {value:.4g} with {params}")


def search_rows(spec: AblationSpec, out_dir: Path, cache: Path) -> list[dict]:
    """One row per searched trial, with the searched parameters as axis columns."""
    rows = []
    for trial_dir in sorted(p for p in (out_dir / "trials").iterdir() if p.is_dir()):
        if not (trial_dir / "trial.json").exists() or rundir.trial_outcome(trial_dir) is None:
            continue
        ts = TrialSpec.model_validate(rundir.read_json(trial_dir / "trial.json"))
        axes = {}
        for path in spec.search.params:
            node = ts
            for part in path.split("."):
                node = getattr(node, part)
            axes[path] = node
        t = Trial(trial_id(spec.name, axes, ts.seed, ts), "search", axes, ts.seed, ts)
        row = result_row(t, trial_dir, teacher_dir(ts, cache))
        row["variant"] = ",".join(
            f"{p}={v:.4g}" if isinstance(v, float) else f"{p}={v}" for p, v in axes.items()
        )
        rows.append(row)
    return rows

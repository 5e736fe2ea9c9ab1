"""Tuning instead of ablating: Optuna's sampler through Ray Tune's OptunaSearch."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from scm_bench import metrics
from scm_bench.results import result_row, trial_outcome
from scm_bench.spec.ablation import AblationSpec, SearchParam
from scm_bench.spec.expand import Trial, trial_id
from scm_bench.spec.schema import TrialSpec
from scm_bench.train import io


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
    trials: list[Trial],
    out_dir: Path,
    teacher_dirs: dict,
    threads: int,
    max_concurrent: int | None,
    echo,
) -> None:
    """num_samples Optuna proposals around the first seed's base trial."""
    from scm_bench.runner.run import Job, Progress, trainable

    base = trials[0]
    tdir = teacher_dirs.get(base.trial_id)
    job = Job(
        f"{spec.name}-search",
        base.spec.model_dump(mode="json"),
        str(out_dir / "trials"),
        str(tdir) if tdir else None,
        threads,
    )
    mode = direction(spec)
    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=base.seed))
    concurrency = max_concurrent or 1
    echo(f"search: {spec.search.num_samples} Optuna trial(s) on {spec.search.metric} ({mode})")
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        param_space={
            "job": vars(job),
            "metric": spec.search.metric,
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
            callbacks=[Progress("search", spec.search.num_samples, concurrency, echo)],
        ),
    )
    grid = tuner.fit()
    best = grid.get_best_result(metric=spec.search.metric, mode=mode, filter_nan_and_inf=True)
    value = best.metrics.get(spec.search.metric, math.nan) if best else math.nan
    params = best.config.get("params", {}) if best else {}
    io.write_json(
        out_dir / "best.json",
        {"metric": spec.search.metric, "mode": mode, "value": value, "params": params},
    )
    echo(f"best {spec.search.metric} = {value:.4g} with {params}")


def search_rows(spec: AblationSpec, out_dir: Path, teacher_dirs: dict) -> list[dict]:
    """One row per searched trial, with the searched parameters as axis columns."""
    tdir = next(iter(teacher_dirs.values()), None)  # the base trial's teacher, used by all
    rows = []
    for trial_dir in sorted(p for p in (out_dir / "trials").iterdir() if p.is_dir()):
        if not (trial_dir / "trial.json").exists() or trial_outcome(trial_dir) is None:
            continue
        ts = TrialSpec.model_validate(io.read_json(trial_dir / "trial.json"))
        dumped = ts.model_dump()
        axes = {}
        for path in spec.search.params:
            node = dumped
            for part in path.split("."):
                node = node[part]
            axes[path] = node
        t = Trial(trial_id(spec.name, axes, ts.seed, ts), "search", axes, ts.seed, ts)
        row = result_row(t, trial_dir, tdir)
        row["variant"] = ",".join(
            f"{p}={v:.4g}" if isinstance(v, float) else f"{p}={v}" for p, v in axes.items()
        )
        rows.append(row)
    return rows


__all__ = ["tune_search", "search_rows"]

"""Tuning instead of ablating: Optuna's sampler through Ray Tune's OptunaSearch."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import ray
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from scm_bench import metrics, rundir
from scm_bench.report.best import search_label
from scm_bench.runner.results import result_row
from scm_bench.runner.storage import Storage, download
from scm_bench.runner.trainable import Job, teacher_dir
from scm_bench.runner.tuner import fit
from scm_bench.runner.workers import max_trials
from scm_bench.spec import AblationSpec, Trial, TrialSpec
from scm_bench.spec.ablation import SearchParam
from scm_bench.spec.expand import slug


def domain(p: SearchParam):
    if p.type == "uniform":
        return tune.uniform(p.low, p.high)
    if p.type == "loguniform":
        return tune.loguniform(p.low, p.high)
    if p.type == "int":
        return tune.randint(int(p.low), int(p.high) + 1)
    return tune.choice(p.values)


def search_trialname(trial) -> str:
    """A proposal's name in Tune, TensorBoard, W&B and MLflow: '<spec>-search-<values>'."""
    values = "_".join(
        f"{p.split('.')[-1]}={slug(v)}" for p, v in trial.config.get("params", {}).items()
    )
    return f"{trial.config['trial_id']}-{values}"


def search_dirname(trial) -> str:
    """Tune's folder of a proposal: its name and Tune's trial id (unique)."""
    return f"{search_trialname(trial)}-{trial.trial_id}"[:150]


def direction(spec: AblationSpec) -> str:
    return "max" if metrics.get(metrics.base_name(spec.search.metric)).higher_is_better else "min"


def plain(name: str) -> str:
    """Optuna sees Tune's flattened config keys ('params/tangent.c'); the spec path is the rest."""
    return name.removeprefix("params/")


def study_storage(out_dir: Path) -> JournalStorage:
    """Optuna's own storage in the run folder (an append-only journal file, safe on NFS), so a
    re-run continues the same study."""
    return JournalStorage(JournalFileBackend(str(out_dir / "optuna.journal")))


def finished_proposals(study: optuna.Study) -> int:
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) once two proposals have finished, else {}."""
    if finished_proposals(study) < 2:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):  # e.g. every finished proposal has the same value
        return {}


def tune_search(
    spec: AblationSpec,
    base: Trial,
    out_dir: Path,
    cache: Path,
    storage: Storage,
    threads: int,
    max_concurrent: int | None,
    echo,
    callbacks: list[tune.Callback] = (),
) -> None:
    """num_samples Optuna proposals around the base trial, minus those a previous invocation
    finished (the study lives in the run folder); each proposal is applied with
    ``TrialSpec.override`` in the worker and gets the teacher its settings imply."""
    job = Job(
        f"{spec.name}-search", base.spec, out_dir / "trials", cache, storage, threads,
        metric=spec.search.metric, resources=spec.resources,
    )  # fmt: skip
    mode = direction(spec)
    journal = study_storage(out_dir)
    study = optuna.create_study(
        study_name=spec.name, storage=journal, load_if_exists=True,
        direction="minimize" if mode == "min" else "maximize",
    )  # fmt: skip
    # A resumed study must not replay the first invocation's random draws: seed by its size.
    sampler = optuna.samplers.TPESampler(seed=base.seed + len(study.trials))
    searcher = OptunaSearch(sampler=sampler, storage=journal, study_name=spec.name)
    done = finished_proposals(study)
    todo = max(0, spec.search.num_samples - done)
    concurrency = max_concurrent or max_trials(spec.resources, ray.cluster_resources())
    echo(f"search: {todo} Optuna proposal(s) on {spec.search.metric} ({mode}), {done} done")
    if todo:
        space = {p: domain(v) for p, v in spec.search.params.items()}
        fit(
            {job.trial_id: job}, spec, "search", storage,
            {"trial_id": job.trial_id, "params": space}, todo, concurrency, echo, callbacks,
            search_alg=searcher, num_samples=todo, metric=spec.search.metric, mode=mode,
            trial_dirname_creator=search_dirname, trial_name_creator=search_trialname,
        )  # fmt: skip
    collect_teachers(storage, out_dir, cache)
    write_best(spec, study, out_dir, echo)


def collect_teachers(storage: Storage, out_dir: Path, cache: Path) -> None:
    """The teachers the proposals trained (they put them into the storage) into the driver's
    teacher cache, where the results table finds their metrics."""
    for trial_json in sorted((out_dir / "trials").glob("*/trial.json")):
        tdir = teacher_dir(TrialSpec.model_validate(rundir.read_json(trial_json)), cache)
        if tdir and not rundir.is_finished(tdir) and storage.exists("teachers", tdir.name):
            download(storage.checkpoint("teachers", tdir.name), tdir)


def write_best(spec: AblationSpec, study: optuna.Study, out_dir: Path, echo) -> None:
    """best.json: the best finished proposal of the whole study and the parameter importances."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value if direction(spec) == "min" else -t.value,
               default=None)  # fmt: skip
    value = best.value if best else math.nan
    params = {plain(k): v for k, v in (best.params if best else {}).items()}
    rundir.write_json(
        out_dir / "best.json",
        {"metric": spec.search.metric, "mode": direction(spec), "value": value,
         "params": params, "finished": len(complete),
         "importances": {plain(k): v for k, v in importances(study).items()}},
    )  # fmt: skip
    echo(f"best {spec.search.metric} = {value:.4g} with {params}")


def search_rows(spec: AblationSpec, out_dir: Path, cache: Path) -> list[dict]:
    """One row per searched trial (its folder is named by its trial id), with the searched
    parameters as axis columns and the variant named by them."""
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
        t = Trial(trial_dir.name, search_label(axes), axes, ts.seed, ts)
        rows.append(result_row(t, trial_dir, teacher_dir(ts, cache)))
    return rows

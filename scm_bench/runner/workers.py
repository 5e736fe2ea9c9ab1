"""Multi-worker trials (``resources.workers > 1``): a Ray Train run inside the Tune trial.

The pattern Ray documents for Train with Tune: the Tune trial is a light driver holding no
resources, which launches a ``TorchTrainer`` of N workers (each with ``resources.cpu`` and
``resources.gpu``; gloo on CPU, NCCL on GPU) and waits for it. Every worker runs the same
``train_trial`` in one process group (``train/parallel.py``), each in a working directory of
its own on its node. Rank 0's rows and checkpoints (persisted to ``<storage>/train/``) reach
Tune through ``TuneReportCallback``; every worker reports at the same steps
(``ray.train.report`` is a barrier).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import ray.train
import torch
from ray import tune
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from scm_bench.runner.job import Job, Reporting, teacher_id, train_and_report
from scm_bench.runner.storage import download, fetch_teacher, workdir
from scm_bench.spec import TrialSpec
from scm_bench.spec.ablation import Resources


def trial_resources(res: Resources) -> dict:
    """What Tune reserves for one trial: the trial itself, or next to nothing for the driver of
    a Ray Train run (its workers reserve their own): 1 byte of Ray's logical memory, since a
    Tune trial must reserve something."""
    if res.workers > 1:
        return {"cpu": 0, "gpu": 0, "memory": 1}
    return {"cpu": res.cpu, "gpu": res.gpu, **res.custom}


def max_trials(res: Resources, cluster: dict) -> int:
    """How many trials fit on the cluster at once (CPUs and, if asked for, GPUs)."""
    fits = cluster.get("CPU", 1) // (res.cpu * res.workers)
    if res.gpu > 0:
        fits = min(fits, cluster.get("GPU", 0) // (res.gpu * res.workers))
    for name, amount in res.custom.items():
        fits = min(fits, cluster.get(name, 0) // (amount * res.workers))
    return max(1, int(fits))


def fit_workers(
    job: Job,
    spec: TrialSpec,
    work: Path,
    reporting: Reporting | None,
    start: tune.Checkpoint | None = None,
) -> None:
    """Train one trial (or a teacher, quietly) as a Ray Train run of job.resources.workers,
    from ``start`` (a checkpoint) if given; its final artifacts are then fetched into ``work``."""
    res = job.resources
    trainer = TorchTrainer(
        _per_worker,
        train_loop_config={
            "job": job,
            "spec": spec,
            "name": work.name,
            "reporting": reporting,
            "start": start,
        },  # fmt: skip
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, "GPU": res.gpu, **res.custom},
        ),
        torch_config=TorchConfig(backend="nccl" if res.gpu > 0 else "gloo"),
        run_config=ray.train.RunConfig(
            name=f"train-{work.name}-{uuid.uuid4().hex[:8]}",
            storage_path=job.storage.join("train"),
            callbacks=[TuneReportCallback()] if reporting else [],
            failure_config=ray.train.FailureConfig(max_failures=0),  # Tune retries the trial
        ),
    )
    result = trainer.fit()
    if result.checkpoint is not None:
        download(result.checkpoint, work)


def _per_worker(config: dict) -> None:
    """One Ray Train worker, in a working directory of its own on its node: rank 0 starts from
    the trial's checkpoint and reports its own (the others resume from rank 0's state,
    broadcast by the loop, and never evaluate); each gets the teacher from the storage."""
    job: Job = config["job"]
    spec: TrialSpec = config["spec"]
    torch.set_num_threads(job.threads)
    if job.resources.gpu > 0 and torch.cuda.is_available():
        torch.cuda.set_device(ray.train.torch.get_device())  # "cuda" = this worker's GPU
    rank = ray.train.get_context().get_world_rank()
    work = workdir(config["name"])
    try:
        start = ray.train.get_checkpoint() or config["start"]
        if rank == 0 and start is not None:
            download(start, work)
        tdir = None
        if spec.needs_teacher():  # put into the storage by the trial before it launched us
            tdir = fetch_teacher(job.storage, teacher_id(spec), _no_teacher)
        train_and_report(
            spec, work, tdir, config["reporting"], ray.train.report,
            main=rank == 0,
        )  # fmt: skip
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)


def _no_teacher(folder: Path) -> None:
    raise RuntimeError(f"teacher {folder.name} is not in the storage")

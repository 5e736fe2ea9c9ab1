"""Multi-worker trials (``resources.workers > 1``): a Ray Train run inside the Tune trial.

The pattern Ray documents for Train with Tune: the Tune trial is a light driver holding no
resources, which launches a ``TorchTrainer`` of N workers (each with ``resources.cpu`` and
``resources.gpu``; gloo on CPU, NCCL on GPU) and waits for it. Every worker runs the same
``train_trial`` in one process group (``train/parallel.py``): rank 0 in the trial folder, the
others in a scratch folder. Rank 0's rows reach Tune through ``TuneReportCallback``; every
worker reports at the same steps (``ray.train.report`` is a barrier).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import ray.train
import torch
from ray import tune
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from scm_bench.runner.job import Job, Reporting, train_and_report
from scm_bench.spec import TrialSpec
from scm_bench.spec.ablation import Resources


def trial_resources(res: Resources) -> dict:
    """What Tune reserves for one trial: the trial itself, or next to nothing for the driver of
    a Ray Train run (its workers reserve their own): 1 byte of Ray's logical memory, since a
    Tune trial must reserve something."""
    if res.workers > 1:
        return {"cpu": 0, "gpu": 0, "memory": 1}
    return {"cpu": res.cpu, "gpu": res.gpu}


def max_trials(res: Resources, cluster: dict) -> int:
    """How many trials fit on the cluster at once (CPUs and, if asked for, GPUs)."""
    fits = cluster.get("CPU", 1) // (res.cpu * res.workers)
    if res.gpu > 0:
        fits = min(fits, cluster.get("GPU", 0) // (res.gpu * res.workers))
    return max(1, int(fits))


def fit_workers(
    job: Job, spec: TrialSpec, trial_dir: Path, tdir: Path | None, reporting: Reporting | None
) -> None:
    """Train one trial (or a teacher, quietly) as a Ray Train run of job.resources.workers."""
    res = job.resources
    trainer = TorchTrainer(
        _per_worker,
        train_loop_config={
            "job": job,
            "spec": spec,
            "trial_dir": trial_dir,
            "tdir": tdir,
            "reporting": reporting,
        },  # fmt: skip
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers,
            use_gpu=res.gpu > 0,
            resources_per_worker={"CPU": res.cpu, "GPU": res.gpu},
        ),
        torch_config=TorchConfig(backend="nccl" if res.gpu > 0 else "gloo"),
        run_config=ray.train.RunConfig(
            name=f"train-{Path(trial_dir).name}",
            storage_path=tune.get_context().get_trial_dir(),
            callbacks=[TuneReportCallback()] if reporting else [],
            failure_config=ray.train.FailureConfig(max_failures=0),  # Tune retries the trial
        ),
    )
    trainer.fit()


def _per_worker(config: dict) -> None:
    """One Ray Train worker: rank 0 trains in the trial folder, the others in a scratch folder
    (they resume from rank 0's checkpoint, broadcast by the loop, and never evaluate)."""
    job: Job = config["job"]
    torch.set_num_threads(job.threads)
    if job.resources.gpu > 0 and torch.cuda.is_available():
        torch.cuda.set_device(ray.train.torch.get_device())  # "cuda" = this worker's GPU
    rank = ray.train.get_context().get_world_rank()
    scratch = None if rank == 0 else Path(tempfile.mkdtemp(prefix="scm-bench-worker-"))
    try:
        train_and_report(
            config["spec"], scratch or config["trial_dir"], config["tdir"], job.crash_at,
            config["reporting"], ray.train.report, main=rank == 0,
        )  # fmt: skip
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

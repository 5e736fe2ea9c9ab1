"""Watching runs in the tools researchers already use: TensorBoard, Weights & Biases, MLflow.

Every history row a trial logs is also reported to Ray Tune, with ``timesteps_total`` = the
optimizer step, and Tune's default loggers write it per trial under ``<run>/ray/``: TensorBoard
event files (its TBX logger), ``progress.csv`` and ``result.json``. ``--wandb`` and
``--mlflow`` add Tune's own logger callbacks. All of these copy ``history.jsonl``, which stays
the record reports read (docs/run-layout.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ray import tune

from scm_bench.errors import RunError


def tensorboard_logdir(run_dir: Path) -> Path:
    """The folder holding every trial's TensorBoard events of a run (teachers included)."""
    logdir = Path(run_dir).resolve() / "ray"
    if not any(logdir.glob("*/*/events.out.tfevents.*")):
        raise RunError(
            f"{run_dir}: no TensorBoard event files under {logdir}; "
            "is this a run directory written by `scm-bench run`?"
        )
    return logdir


def tensorboard_command(run_dir: Path, port: int | None = None) -> list[str]:
    """``tensorboard --logdir <run>/ray [--port N]`` (through this Python if not on PATH)."""
    exe = ["tensorboard"]
    if not shutil.which("tensorboard"):  # a venv used without activating it
        exe = [sys.executable, "-m", "tensorboard.main"]
    cmd = [*exe, "--logdir", str(tensorboard_logdir(run_dir))]
    return cmd + (["--port", str(port)] if port else [])


def _need(module: str, flag: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise RunError(
            f"{flag}: the {module} package is not installed; pip install 'scm-bench[{extra}]'"
        ) from None


def logger_callbacks(
    wandb_project: str | None, mlflow_uri: str | None, experiment: str
) -> list[tune.Callback]:
    """Tune's W&B and MLflow logger callbacks: one W&B run / MLflow run per trial, grouped by
    the spec name. W&B honours ``WANDB_MODE`` (``offline`` needs no account); an MLflow
    ``file:`` URI opts into MLflow's file store (``MLFLOW_ALLOW_FILE_STORE``)."""
    callbacks: list[tune.Callback] = []
    if wandb_project:
        _need("wandb", "--wandb", "wandb")
        from ray.air.integrations.wandb import WandbLoggerCallback

        mode = os.environ.get("WANDB_MODE")  # the logging actors do not inherit the driver's env
        kwargs = {"mode": mode} if mode else {}
        callbacks.append(WandbLoggerCallback(project=wandb_project, group=experiment, **kwargs))
    if mlflow_uri:
        _need("mlflow", "--mlflow", "mlflow")
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        if mlflow_uri.startswith("file:"):  # named explicitly: the user wants the file store
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        callbacks.append(
            MLflowLoggerCallback(
                tracking_uri=mlflow_uri, experiment_name=experiment, save_artifact=False
            )
        )
    return callbacks

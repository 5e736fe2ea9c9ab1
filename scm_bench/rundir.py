"""The run-directory format: what trials write and the runner, metrics and reports read.

A leaf of the package: it imports only the layer-0 file helpers (``safe_files``).
Layout of a run (docs/run-layout.md):

<run dir>/spec.yaml, trials.json, results.csv / .parquet, run.json, report/, trials/<id>/
<trial dir>/trial.json      the resolved TrialSpec
<trial dir>/history.jsonl   one row per log step (see ``HISTORY_FIELDS``)
<trial dir>/checkpoint.pt   latest resumable state
<trial dir>/result.json     written once the trial has an outcome (ok / diverged / failed)
<trial dir>/samples_<sampler>.png   sample grids
<trial dir>/model.pt        the exported sampling network (``scm_bench.load_model``)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd
import torch

from scm_bench.safe_files import (
    atomic_torch_save,
    atomic_write_text,
    load_checkpoint_or_none,
    quarantine,
    read_json_or_none,
)

log = logging.getLogger("scm_bench")

MODEL_FILE = "model.pt"  # written by train/model.py once a trial finished ok
# A trial's status, the one vocabulary of result.json, results.csv, the runner and the reports.
Status = Literal["ok", "diverged", "failed", "pending"]
OK, DIVERGED, FAILED, PENDING = get_args(Status)  # pending: no outcome yet
FINISHED: tuple[Status, ...] = (OK, DIVERGED)  # outcomes: never redone
STATUSES: tuple[Status, ...] = get_args(Status)

HISTORY_FIELDS = {
    "step": "optimizer step (1-based) at the end of the logged window",
    "loss": "mean loss over the window",
    "grad_norm": "global gradient norm at the logged step",
    "grad_norm_max": "max gradient norm over the window",
    "g_norm": "mean ||g|| before normalization/clipping (students)",
    "jvp_norm": "mean ||cos t sin t sigma_d dF/dt|| (students)",
    "nonfinite_tangent": "share of non-finite JVP elements over the window (students)",
    "weight": "mean adaptive weight w_phi(t) (students)",
    "r": "tangent warmup ratio",
    "step_time": "mean seconds per optimizer step over the window",
    "jvp_time": "mean seconds of the JVP pass per step (students)",
    "g_norm_tbin": "mean ||g|| per t-bin (T_BINS equal bins of [0, pi/2])",
    "weight_tbin": "mean w_phi(t) per t-bin",
    "eval_<metric>_<sampler>": "eval.curve_every: a sample metric of the EMA net at this step",
    "amp_skipped": "train.precision=float16: share of steps the loss scaler skipped (overflow; "
    "their grad_norm is logged as 0)",
}
T_BINS = 8


def t_bin(t: torch.Tensor) -> torch.Tensor:
    """Index of the equal-width bin of [0, pi/2] each time falls in: (B,) -> (B,) long."""
    return (t / (math.pi / 2) * T_BINS).long().clamp(0, T_BINS - 1)


def damaged(path: Path, problem: str) -> None:
    """Move a damaged file aside (kept as <name>.damaged-<n>) and say so in one line."""
    kept = quarantine(path)
    log.warning("%s; kept as %s and redone", problem, kept.name)


def default_teacher_cache() -> Path:
    """Where teachers are cached unless ``--teacher-cache`` says otherwise: the user's cache,
    ``$SCM_BENCH_CACHE/teachers`` (default ``~/.cache/scm-bench/teachers``), never a folder
    beside a run, so an unrelated ``--out`` can never pick up a stranger's teacher by accident
    (entries are keyed by the digest of the full teacher spec, data settings included)."""
    root = os.environ.get("SCM_BENCH_CACHE") or "~/.cache/scm-bench"
    return Path(root).expanduser() / "teachers"


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (unique tmp file + fsync + rename): a reader never sees half."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def append_history(path: Path, row: dict) -> None:
    """One trial's single writer appends one line per log step."""
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def read_history(path: Path) -> list[dict]:
    """History rows; a torn last line from a killed process is ignored."""
    rows = []
    if Path(path).exists():
        for line in Path(path).read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                break
            rows.append(row)
    return rows


def truncate_history(path: Path, step: int) -> None:
    """Drop rows written after the checkpoint we resume from (they will be recomputed)."""
    rows = [r for r in read_history(path) if r["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_torch_save(path, state)


def load_checkpoint(path: Path) -> dict | None:
    """The latest resumable state; None when absent or damaged (then moved aside)."""
    state, problem = load_checkpoint_or_none(path)
    if problem:
        damaged(path, problem)
    return state


_SET_ASIDE = contextvars.ContextVar("scm_bench_set_aside", default=True)


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Within it, a damaged result.json is only reported, never moved aside: for commands
    that only read a run (``scm-bench report``)."""
    token = _SET_ASIDE.set(False)
    try:
        yield
    finally:
        _SET_ASIDE.reset(token)


def trial_outcome(trial_dir: Path, set_aside: bool | None = None) -> dict | None:
    """The trial's result.json; None when it has not finished or the file is damaged (then
    it is moved aside, so the trial is redone; a reader, ``set_aside=False`` or inside
    ``reading()``, leaves it and only says so)."""
    path = Path(trial_dir) / "result.json"
    result, problem = read_json_or_none(path)
    set_aside = _SET_ASIDE.get() if set_aside is None else set_aside
    if problem and set_aside:
        damaged(path, problem)
    elif problem:
        log.warning("%s; left as it is (re-running the run redoes that trial)", problem)
    return result


def is_finished(trial_dir: Path) -> bool:
    res = trial_outcome(trial_dir)
    return res is not None and res.get("status") in FINISHED


def trial_row(
    trial_id: str,
    variant: str,
    seed: int,
    method: str,
    axes: dict[str, Any],
    trial_dir: Path,
    set_aside: bool | None = None,  # False for readers: a damaged result.json stays put
) -> dict:
    """One results row from a trial's identity and its result.json: status ``pending`` while
    it has none, else the outcome's scalar fields and its final metrics."""
    row = {"trial_id": trial_id, "variant": variant, "seed": seed, "method": method, **axes}
    result = trial_outcome(trial_dir, set_aside)
    if result is None:
        return row | {"status": PENDING}
    row.update({k: v for k, v in result.items() if k != "metrics" and not isinstance(v, dict)})
    row.update(result.get("metrics") or {})
    return row


def write_results(rows: list[dict], run_dir: Path) -> pd.DataFrame:
    """results.csv and results.parquet, rows sorted by trial id (stable across re-runs)."""
    df = pd.DataFrame(rows).sort_values("trial_id", kind="stable").reset_index(drop=True)
    atomic_write_text(run_dir / "results.csv", df.to_csv(index=False))
    try:
        df.to_parquet(run_dir / "results.parquet", index=False)
    except (ValueError, TypeError):  # mixed-type axis columns: the CSV is the record
        (run_dir / "results.parquet").unlink(missing_ok=True)
    return df

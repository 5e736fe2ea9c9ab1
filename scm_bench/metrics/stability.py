"""Stability and cost of one trial, from its history rows and its result.

``summarize_trial(history_rows, result)`` turns the rows of ``history.jsonl`` (fields:
``scm_bench.rundir.HISTORY_FIELDS``) and ``result.json`` into flat float columns, each
registered below with its meaning. A value that does not apply (no JVP in a teacher, no
divergence) is NaN. Per-bin columns are ``<name>_<bin>`` for the T_BINS equal bins of
[0, pi/2] (bin i covers t in [i, i+1) * pi / (2 T_BINS)).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np

from scm_bench import rundir
from scm_bench.metrics.registry import Metric, register
from scm_bench.rundir import T_BINS

SPIKE_FACTOR = 10.0  # a spike: window max grad norm above 10x the running median
SPIKE_MIN_ROWS = 3  # rows needed before the running median is trusted
LATE_FRACTION = 0.25  # "late in training": the last quarter of rows (at least 2)
NAN = float("nan")


def _finite(values) -> np.ndarray:
    """Finite float values of a sequence, None and non-numbers dropped."""
    arr = np.array([v for v in values if isinstance(v, (int, float))], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else NAN


def _finite_row(row: dict, keys) -> bool:
    """Whether every present field of ``keys`` in a history row is a finite number."""
    return all(math.isfinite(_number(row[k])) for k in keys if k in row)


def _column(rows: list[dict], key: str) -> list:
    return [r.get(key) for r in rows]


def _stat(values, fn) -> float:
    arr = _finite(values)
    return float(fn(arr)) if arr.size else NAN


def divergence(rows: list[dict], result: Mapping) -> dict[str, float]:
    """diverged (0/1), diverged_step, nonfinite_steps.

    Training stops at the first non-finite loss or gradient, so the stopping step counts as
    one non-finite step, plus any logged row whose loss or grad norm is non-finite.
    """
    diverged = result.get("status") == rundir.DIVERGED
    step = result.get("diverged_step")
    bad_rows = sum(not _finite_row(r, ("loss", "grad_norm")) for r in rows)
    return {
        "diverged": float(diverged),
        "diverged_step": float(step) if diverged and step is not None else NAN,
        "nonfinite_steps": float(bad_rows + diverged),
    }


def grad_spikes(rows: list[dict]) -> int:
    """Rows whose window max grad norm exceeds SPIKE_FACTOR x the median of the grad norms of
    all previous rows (once SPIKE_MIN_ROWS rows are there)."""
    seen, spikes = [], 0
    for r in rows:
        peak = r.get("grad_norm_max", r.get("grad_norm"))
        if len(seen) >= SPIKE_MIN_ROWS and _finite([peak]).size:
            spikes += peak > SPIKE_FACTOR * float(np.median(seen))
        seen.extend(_finite([r.get("grad_norm")]).tolist())
    return int(spikes)


def gradients(rows: list[dict]) -> dict[str, float]:
    """grad_norm_median / _p99 over logged steps, grad_norm_max over all steps, grad_spikes."""
    norms = _column(rows, "grad_norm")
    peaks = [r.get("grad_norm_max", r.get("grad_norm")) for r in rows]
    return {
        "grad_norm_median": _stat(norms, np.median),
        "grad_norm_p99": _stat(norms, lambda a: np.percentile(a, 99)),
        "grad_norm_max": _stat(peaks, np.max),
        "grad_spikes": float(grad_spikes(rows)),
    }


def late_rows(rows: list[dict]) -> list[dict]:
    """The last LATE_FRACTION of the rows (at least 2; all of them when fewer)."""
    return rows[-max(2, int(len(rows) * LATE_FRACTION)) :]


def loss_std_late(rows: list[dict]) -> float:
    """Std of the logged (window-mean) loss over the late rows; NaN with fewer than 2."""
    arr = _finite(_column(late_rows(rows), "loss"))
    return float(arr.std(ddof=1)) if arr.size >= 2 else NAN


def per_bin(rows: list[dict], key: str, name: str) -> dict[str, float]:
    """Mean over rows of a per-t-bin list field, as columns '<name>_0' .. '<name>_<T_BINS-1>'."""
    table = np.full((max(len(rows), 1), T_BINS), np.nan)
    for i, r in enumerate(rows):
        vals = r.get(key) or []
        table[i, : len(vals)] = [v if isinstance(v, (int, float)) else np.nan for v in vals]
    with warnings.catch_warnings():  # all-NaN bins (never sampled) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(np.where(np.isfinite(table), table, np.nan), axis=0)
    return {f"{name}_{i}": float(v) for i, v in enumerate(means)}


def cost(rows: list[dict], result: Mapping) -> dict[str, float]:
    """sec_per_step, jvp_share, peak_mem_mb, wall_time, net_evals_per_sec."""
    step, jvp = _finite(_column(rows, "step_time")), _finite(_column(rows, "jvp_time"))
    timed = [r for r in rows if "jvp_time" in r and "step_time" in r]
    step_sum = _finite(_column(timed, "step_time")).sum()
    metrics = result.get("metrics") or {}
    evals = [
        metrics[k] * metrics.get("nfe_" + k.removeprefix("samples_per_sec_"), NAN)
        for k in metrics if k.startswith("samples_per_sec_")
    ]  # fmt: skip
    return {
        "sec_per_step": float(np.median(step)) if step.size else NAN,
        "jvp_share": float(jvp.sum() / step_sum) if jvp.size and step_sum > 0 else NAN,
        "peak_mem_mb": _number(result.get("peak_mem_mb")),
        "wall_time": _number(result.get("wall_time")),
        "net_evals_per_sec": _stat(evals, np.median),
    }


def summarize_trial(history_rows: list[dict], result: Mapping | None) -> dict[str, float]:
    """Stability and cost columns of one trial (every registered column, NaN where none)."""
    rows = sorted(history_rows, key=lambda r: r.get("step", 0))
    result = result or {}
    late = late_rows(rows)
    return {
        **divergence(rows, result),
        **gradients(rows),
        "loss_std_late": loss_std_late(rows),
        "nonfinite_tangent": _stat(_column(rows, "nonfinite_tangent"), np.mean),
        **per_bin(rows, "g_norm_tbin", "g_norm_tbin"),
        **per_bin(late, "weight_tbin", "weight_tbin"),
        **cost(rows, result),
    }


# name, kind, higher is better, aggregate over seeds, description
COLUMNS = (
    ("diverged", "stability", False, "mean",
     "1 if a non-finite loss or gradient stopped training (mean over seeds = divergence rate)"),
    ("diverged_step", "stability", True, "median",
     "optimizer step at which training diverged (NaN if it did not)"),
    ("nonfinite_steps", "stability", False, "mean",
     "steps with a non-finite loss or grad norm (the stopping step included)"),
    ("grad_norm_median", "stability", False, "mean",
     "median global grad norm over logged steps"),
    ("grad_norm_p99", "stability", False, "mean",
     "99th percentile of the global grad norm over logged steps"),
    ("grad_norm_max", "stability", False, "mean",
     "largest global grad norm of any step"),
    ("grad_spikes", "stability", False, "mean",
     f"log windows whose max grad norm exceeds {SPIKE_FACTOR:g}x the running median of "
     "earlier logged grad norms"),
    ("loss_std_late", "stability", False, "mean",
     "std of the logged loss over the last quarter of training (no ratio to its mean: with "
     "adaptive weighting the loss may be negative)"),
    ("nonfinite_tangent", "stability", False, "mean",
     "mean share of non-finite tangent (JVP) elements per step, e.g. in low-precision JVPs"),
    ("g_norm_tbin", "stability", False, "mean",
     f"mean ||g|| before normalization/clipping per t-bin over training; columns "
     f"g_norm_tbin_0..{T_BINS - 1} (equal bins of [0, pi/2])"),
    ("weight_tbin", "stability", None, "mean",
     f"learned adaptive weight w_phi(t) per t-bin over the last quarter; columns "
     f"weight_tbin_0..{T_BINS - 1} (descriptive)"),
    ("sec_per_step", "cost", False, "mean",
     "median seconds per optimizer step"),
    ("jvp_share", "cost", False, "mean",
     "share of step time spent in the JVP pass (students)"),
    ("peak_mem_mb", "cost", False, "max",
     "peak memory in MiB (CUDA max allocated, or CPU max RSS)"),
    ("wall_time", "cost", False, "mean",
     "seconds of wall time of the trial (training and evaluation)"),
    ("samples_per_sec", "cost", True, "mean",
     "sampling throughput of a sampler in samples per second; columns samples_per_sec_<sampler>"),
    ("nfe", "cost", None, "mean",
     "network evaluations per sample of a sampler; columns nfe_<sampler> (descriptive)"),
    ("net_evals_per_sec", "cost", True, "mean",
     "sampling throughput per NFE: median over samplers of samples/s x NFE"),
)  # fmt: skip

SHARES = ("diverged", "nonfinite_tangent", "jvp_share")  # in [0, 1]
UNBOUNDED = ("weight_tbin",)  # a learned log-variance; every other column is >= 0
for _name, _kind, _higher, _aggregate, _description in COLUMNS:
    _bounds = (0.0, 1.0) if _name in SHARES else (None, None) if _name in UNBOUNDED else (0.0, None)
    register(Metric(_name, _description, _higher, _kind, aggregate=_aggregate, bounds=_bounds))

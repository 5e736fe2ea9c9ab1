"""Mechanism probes: what each stabilization technique acts on, measured at fixed weights.

A probe runs once at the end of a trial on its EMA network, on one fixed batch of held-out
data and noise (the same for every variant and seed: paired), over a grid of times: PROBE_POINTS
times in each of the T_BINS equal bins of [0, pi/2], the last one the samplers' start time
t_max = arctan(SIGMA_MAX / sigma_d). Each grid cell gives per-sample values; ``summarize``
turns them into columns: a per-bin column ``<name>_tbin_<i>`` and one scalar per quantity.
The computation lives in ``scm_bench.train.probes`` (it needs the trial's nets and loss).
"""

from __future__ import annotations

import math

import numpy as np

from scm_bench.metrics.registry import Metric, register
from scm_bench.rundir import T_BINS

PROBE_POINTS = 4  # times per t-bin
PROBE_BATCH = 64  # held-out samples per time
SIGMA_MAX = 80.0  # the samplers' largest noise level (EDM's sigma_max)


def probe_times(sigma_d: float) -> np.ndarray:
    """(T_BINS, PROBE_POINTS) times: evenly inside each bin (upper edge included), the last
    bin ending at t_max = arctan(SIGMA_MAX / sigma_d) instead of pi/2."""
    width = math.pi / (2 * T_BINS)
    t_max = math.atan(SIGMA_MAX / sigma_d)
    rows = []
    for i in range(T_BINS):
        lo, hi = i * width, min((i + 1) * width, t_max)
        rows.append(np.linspace(lo, hi, PROBE_POINTS + 1)[1:])
    return np.stack(rows)


BIG = np.finfo(np.float64).max  # stands for a non-finite norm while ranking


def _percentile(v: np.ndarray, q: float) -> float:
    """Percentile where BIG (a non-finite norm) reads back as +inf."""
    p = float(np.percentile(v, q))
    return math.inf if p >= BIG or not math.isfinite(p) else p


def summarize(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Columns from per-cell samples: ``values[name]`` is (T_BINS, PROBE_POINTS, B).

    dfdt: mean per bin and over the grid; g_norm: p50 / p99 per bin, p99 and max over the grid;
    fp16_nonfinite: share per bin and over the grid. Non-finite g norms count as +inf.
    """
    out: dict[str, float] = {}
    if "dfdt" in values:
        v = values["dfdt"]
        out.update({f"dfdt_tbin_{i}": float(np.mean(v[i])) for i in range(T_BINS)})
        out["dfdt"] = float(np.mean(v))
    if "g_norm" in values:
        v = np.where(np.isfinite(values["g_norm"]), values["g_norm"], BIG)
        for q in (50, 99):
            out.update({f"g_p{q}_tbin_{i}": _percentile(v[i], q) for i in range(T_BINS)})
        out["g_p99"], out["g_max"] = _percentile(v, 99), _percentile(v, 100)
    if "fp16_nonfinite" in values:
        v = values["fp16_nonfinite"]
        out.update({f"fp16_nonfinite_tbin_{i}": float(np.mean(v[i])) for i in range(T_BINS)})
        out["fp16_nonfinite"] = float(np.mean(v))
    return out


BINS = f"per t-bin columns <name>_tbin_0..{T_BINS - 1} (equal bins of [0, pi/2])"
# name, higher is better, bounds, description
COLUMNS = (
    ("dfdt", False, (0.0, None),
     "sin(t) x RMS of the explicit time derivative dF/dt of the EMA net at fixed weights, mean "
     "over the probe's t grid (sCM Fig. 4 / Sec. 4.1; large and oscillating = unstable)"),
    ("dfdt_tbin", False, (0.0, None), f"dfdt per t-bin; {BINS}"),
    ("g_p99", False, (0.0, None),
     "99th percentile of ||g|| (the raw tangent, warmup done) over the probe grid at fixed weights "
     "(heavy tail: what normalization / clipping tame)"),
    ("g_max", False, (0.0, None), "largest ||g|| over the probe grid at fixed weights"),
    ("g_p50_tbin", False, (0.0, None), f"median ||g|| per t-bin at fixed weights; {BINS}"),
    ("g_p99_tbin", False, (0.0, None), f"99th percentile of ||g|| per t-bin; {BINS}"),
    ("fp16_nonfinite", False, (0.0, 1.0),
     "share of non-finite elements of the float16 JVP (the trial's jvp.ordering) at fixed "
     "weights, over the probe grid (sCM Sec. 5.1)"),
    ("fp16_nonfinite_tbin", False, (0.0, 1.0), f"fp16_nonfinite per t-bin; {BINS}"),
)  # fmt: skip

for _name, _higher, _bounds, _description in COLUMNS:
    register(Metric(_name, _description, _higher, "mechanism", bounds=_bounds))

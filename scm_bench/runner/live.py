"""Live per-trial metrics through ray.util.metrics (Prometheus export, Ray dashboard)."""

from __future__ import annotations

import math

from ray.util import metrics as ray_metrics

LIVE = {
    "loss": "Training loss (window mean)",
    "grad_norm": "Global gradient norm",
    "g_norm": "||g|| before normalization",
    "steps_per_sec": "Optimizer steps per second",
    "diverged": "1 once the trial has diverged",
}
_GAUGES: dict[str, ray_metrics.Gauge] = {}


def gauges() -> dict[str, ray_metrics.Gauge]:
    """One Gauge per live metric, created once per worker process."""
    if not _GAUGES:
        for name, desc in LIVE.items():
            _GAUGES[name] = ray_metrics.Gauge(f"scm_bench_{name}", desc, tag_keys=("trial_id",))
    return _GAUGES


def export(trial_id: str, row: dict) -> None:
    """Set the gauges from a history row (or a final row carrying 'diverged')."""
    values = dict(row)
    if row.get("step_time"):
        values["steps_per_sec"] = 1.0 / row["step_time"]
    for name, gauge in gauges().items():
        v = values.get(name)
        if isinstance(v, int | float) and math.isfinite(v):
            gauge.set(float(v), tags={"trial_id": trial_id})

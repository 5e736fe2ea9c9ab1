"""The metric registry: every metric is registered once, with its meaning.

Each metric declares whether higher is better and how it aggregates over seeds, so reports and
specs need no special cases. A metric may stand behind several result columns: a sample metric
``swd`` gives ``swd_<sampler>`` (``swd_2step``), a per-bin metric ``g_norm_tbin`` gives
``g_norm_tbin_<bin>``; ``base_name`` maps a column back to its metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scm_bench.core.choices import discover
from scm_bench.errors import UnknownMetric, did_you_mean

KINDS = ("sample", "ratio", "mechanism", "stability", "cost")
AGGREGATES = ("mean", "median", "max", "min", "sum")


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    higher_is_better: bool | None  # None: descriptive, no better direction (reports rank nothing)
    kind: str  # "sample" (needs samples) | "ratio" (student / teacher) | "mechanism" (probes)
    # | "stability" | "cost" (from a trial's history)
    aggregate: str = "mean"  # how seeds combine in reports (one of AGGREGATES)
    datasets: tuple[str, ...] = ()  # sample metrics: dataset families (or names) it applies to
    fn: Callable | None = None  # sample metrics: fn(samples, dataset, ctx) -> float
    bounds: tuple[float | None, float | None] = (None, None)  # values it can take (None: open)
    reference: str = "test"  # sample metrics: the split samples are compared with
    default: bool = True  # sample metrics: part of the data's evaluation when eval.metrics is empty


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric (built-in or a plugin's); a second metric of the same name is an error."""
    if metric.name in REGISTRY:
        raise ValueError(f"metric {metric.name!r} registered twice")
    if metric.kind not in KINDS or metric.aggregate not in AGGREGATES:
        raise ValueError(f"metric {metric.name!r}: kind in {KINDS}, aggregate in {AGGREGATES}")
    REGISTRY[metric.name] = metric
    return metric


def get(name: str) -> Metric:
    """The registered metric of this name; UnknownMetric with a near match otherwise."""
    if name not in REGISTRY:
        discover()  # a metric a plugin of this process registers (core/choices.py)
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        hint = did_you_mean(name, REGISTRY)
        raise UnknownMetric(f"unknown metric {name!r}{hint}; known: {known}")
    return REGISTRY[name]


def base_name(column: str) -> str:
    """Metric name behind a result column: 'swd_2step' -> 'swd', 'g_norm_tbin_3' ->
    'g_norm_tbin', 'sec_per_step' stays; an unregistered column comes back unchanged."""
    if column in REGISTRY:
        return column
    head, _, _ = column.rpartition("_")
    return head if head in REGISTRY else column


def family(dataset_name: str) -> str:
    """Dataset family of a dataset name: 'toy2d/moons' -> 'toy2d', 'cifar10' -> 'cifar10'."""
    return dataset_name.split("/")[0]


def applies(metric: Metric, dataset: str) -> bool:
    """Whether a sample metric applies to a dataset ('toy2d/grid': by family or full name)."""
    names = (family(dataset), dataset)
    return metric.kind == "sample" and any(n in metric.datasets for n in names)


def sample_metrics_for(dataset: str) -> tuple[str, ...]:
    """Names of the sample metrics that apply to a dataset (by name or family)."""
    return tuple(m.name for m in REGISTRY.values() if applies(m, dataset))


def default_sample_metrics(dataset: str) -> tuple[str, ...]:
    """Names of the sample metrics a dataset is evaluated with when ``eval.metrics`` is empty:
    those that apply to it, less the opt-in ones (``default=False``)."""
    return tuple(m for m in sample_metrics_for(dataset) if REGISTRY[m].default)


def list_metrics() -> list[dict]:
    """One row per registered metric (plugins' included), for `scm-bench ls metrics`."""
    discover()
    rows = []
    for m in sorted(REGISTRY.values(), key=lambda m: (m.kind, m.name)):
        rows.append({
            "name": m.name,
            "kind": m.kind,
            "higher_is_better": m.higher_is_better,
            "aggregate": m.aggregate,
            "datasets": ",".join(m.datasets),
            "description": m.description,
        })  # fmt: skip
    return rows

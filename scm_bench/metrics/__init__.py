"""The metric registry: every metric is registered once with its meaning.

Each metric declares whether higher is better and how it aggregates over seeds, so reports and
specs need no special cases. Sample-quality metrics take generated samples and the dataset;
the column of a sample metric in the results table is ``<name>_<sampler>`` (e.g. ``swd_2step``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from scm_bench.metrics import toy


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    higher_is_better: bool
    kind: str  # "sample" (needs samples) | "stability" | "cost" (from a trial's history)
    aggregate: str = "mean"  # how seeds combine in reports
    datasets: tuple[str, ...] = ()  # sample metrics: dataset names it applies to
    fn: Callable | None = None  # sample metrics: fn(samples, dataset) -> float


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in REGISTRY:
        raise ValueError(f"metric {metric.name!r} registered twice")
    REGISTRY[metric.name] = metric
    return metric


class UnknownMetric(KeyError):
    pass


def suggest(name: str, choices) -> str:
    """' (did you mean X?)' for a near match, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get(name: str) -> Metric:
    if name not in REGISTRY:
        raise UnknownMetric(
            f"unknown metric {name!r}{suggest(name, REGISTRY)}; known: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name]


def base_name(column: str) -> str:
    """Metric name behind a result column: 'swd_2step' -> 'swd', 'sec_per_step' stays."""
    if column in REGISTRY:
        return column
    head, _, _ = column.rpartition("_")
    return head if head in REGISTRY else column


def default_sample_metrics(dataset: str) -> tuple[str, ...]:
    family = dataset.split("/")[0]
    return tuple(m.name for m in REGISTRY.values() if m.kind == "sample" and family in m.datasets)


def evaluate_samples(names, samples: torch.Tensor, dataset) -> dict[str, float]:
    """{metric name: value} for generated ``samples`` against the dataset's reference split."""
    return {name: float(get(name).fn(samples, dataset)) for name in names}


def _toy(fn):
    return lambda samples, dataset: fn(samples.cpu(), dataset.reference("test"))


register(Metric("swd", "Sliced 2-Wasserstein distance to held-out data (2-D)", False, "sample",
                datasets=("toy2d",), fn=_toy(toy.sliced_wasserstein)))  # fmt: skip
register(Metric("mmd", "Squared MMD (multi-scale RBF) to held-out data (2-D)", False, "sample",
                datasets=("toy2d",), fn=_toy(toy.mmd_rbf)))  # fmt: skip
register(Metric("frechet2d", "Frechet distance of Gaussian fits in data space (2-D)", False,
                "sample", datasets=("toy2d",), fn=_toy(toy.frechet_2d)))  # fmt: skip

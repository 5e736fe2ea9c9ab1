"""Metrics by name: sample quality (FID, KID, 2-D distances), stability and cost.

Every metric is registered once (``registry.Metric``) with a description, whether higher is
better and how it aggregates over seeds. The column of a sample metric in the results table is
``<name>_<sampler>`` (e.g. ``fid_1step``); stability and cost columns come from
``summarize_trial`` under their registered names. Feature files (Inception weights, the
reference-statistics cache) are located by ``features.resolve_settings``; nothing is downloaded.
"""

from __future__ import annotations

import torch

from scm_bench.errors import MetricNotApplicable
from scm_bench.metrics import fid as _fid
from scm_bench.metrics import toy
from scm_bench.metrics.features import MissingWeights, extractor_for, resolve_settings
from scm_bench.metrics.registry import (
    REGISTRY,
    Metric,
    UnknownMetric,
    base_name,
    default_sample_metrics,
    family,
    get,
    list_metrics,
    register,
)
from scm_bench.metrics.stability import summarize_trial

__all__ = [
    "REGISTRY", "Metric", "MetricNotApplicable", "MissingWeights", "UnknownMetric", "base_name",
    "check_available", "default_sample_metrics", "evaluate_samples", "family", "get",
    "list_metrics", "register", "summarize_trial",
]  # fmt: skip

IMAGES = ("digits", "cifar10", "image_folder")  # dataset families with FID / KID
FEATURES = "Inception pool3 for RGB data, the project's digits classifier for digits"


def check_available(
    dataset_name: str, metric_names, inception: str | None = None, cache_dir: str | None = None
) -> None:
    """Fail before training if the named sample metrics cannot run on this dataset.

    Raises UnknownMetric (with a near match), MetricNotApplicable, or MissingWeights (Inception
    or digits weights absent; the message names the path, the setting and the source URL).
    """
    fam, names = family(dataset_name), list(metric_names)
    for name in names:
        metric = get(name)
        if metric.kind != "sample" or fam not in metric.datasets:
            usable = ", ".join(default_sample_metrics(dataset_name)) or "none"
            raise MetricNotApplicable(
                f"eval.metrics: {name!r} is not a sample metric for dataset {fam!r}; "
                f"use one of: {usable}"
            )
    if fam in IMAGES and names:  # every image metric needs the feature network
        extractor_for(dataset_name, resolve_settings(inception, cache_dir))  # MissingWeights


def evaluate_samples(
    names,
    samples: torch.Tensor,
    dataset,
    *,
    inception: str | None = None,
    cache_dir: str | None = None,
) -> dict[str, float]:
    """{metric name: value} for generated ``samples`` against the dataset's reference split.

    Features of the samples are computed once and shared by FID and KID; ``inception`` and
    ``cache_dir`` override $SCM_BENCH_INCEPTION and $SCM_BENCH_CACHE.
    """
    ctx = _fid.EvalContext(resolve_settings(inception, cache_dir), device=str(samples.device))
    return {name: float(get(name).fn(samples, dataset, ctx)) for name in names}


def _toy(fn):
    """A 2-D distance as a sample metric: samples against the held-out split."""
    return lambda samples, dataset, ctx: fn(samples.cpu(), dataset.reference("test"))


def _fid_metric(samples, dataset, ctx):
    return _fid.fid(samples, dataset, ctx)


def _kid_metric(samples, dataset, ctx):
    return _fid.kid(samples, dataset, ctx)


register(Metric("swd", "Sliced 2-Wasserstein distance to held-out data (2-D)", False, "sample",
                datasets=("toy2d",), fn=_toy(toy.sliced_wasserstein)))  # fmt: skip
register(Metric("mmd", "Squared MMD (multi-scale RBF) to held-out data (2-D)", False, "sample",
                datasets=("toy2d",), fn=_toy(toy.mmd_rbf)))  # fmt: skip
register(Metric("frechet2d", "Frechet distance of Gaussian fits in data space (2-D)", False,
                "sample", datasets=("toy2d",), fn=_toy(toy.frechet_2d)))  # fmt: skip
register(Metric("fid", "FID (clean-fid): Frechet distance of Gaussian fits to features of the "
                f"samples and the training split; {FEATURES}", False, "sample", datasets=IMAGES,
                fn=_fid_metric))  # fmt: skip
register(Metric("kid", "KID (clean-fid): unbiased cubic-kernel MMD^2 of features, same features "
                "and reference as fid", False, "sample", datasets=IMAGES,
                fn=_kid_metric))  # fmt: skip

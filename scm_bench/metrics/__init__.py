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
from scm_bench.metrics import noise, probes, toy  # noqa: F401  (probes: registration)
from scm_bench.metrics.features import MissingWeights, extractor_for, resolve_settings
from scm_bench.metrics.noise import EVALSD, FLOOR, UNIFORM, bootstrap_sd, floor, uniform
from scm_bench.metrics.registry import (
    REGISTRY,
    Metric,
    UnknownMetric,
    applies,
    base_name,
    default_sample_metrics,
    family,
    get,
    list_metrics,
    register,
    sample_metrics_for,
)
from scm_bench.metrics.stability import summarize_trial

__all__ = [
    "EVALSD", "FLOOR", "RATIO_OF", "REGISTRY", "UNIFORM", "Metric", "MetricNotApplicable",
    "MissingWeights", "UnknownMetric", "applies", "base_name", "bootstrap_sd", "floor", "uniform",
    "check_available", "default_sample_metrics", "evaluate_samples", "family", "get",
    "list_metrics", "register", "sample_metrics_for", "summarize_trial",
]  # fmt: skip

IMAGES = noise.IMAGES  # dataset families with FID / KID
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
        if not applies(metric, dataset_name):
            usable = ", ".join(sample_metrics_for(dataset_name))
            raise MetricNotApplicable(
                f"eval.metrics: {name!r} is not a sample metric for dataset {fam!r}; "
                f"use one of: {usable or 'none'}"
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
    return noise.evaluate(names, samples, dataset, ctx)


def _toy(fn):
    """A 2-D distance as a sample metric: samples against the held-out split."""
    return lambda samples, dataset, ctx: fn(samples.cpu(), dataset.reference("test"))


def _modes(fn):
    """A mode metric of a Gaussian mixture: samples against the dataset's mode means and std."""
    return lambda samples, dataset, ctx: fn(samples.cpu(), dataset.modes, dataset.mode_std)


def _fid_metric(samples, dataset, ctx):
    return _fid.fid(samples, dataset, ctx)


def _kid_metric(samples, dataset, ctx):
    return _fid.kid(samples, dataset, ctx)


POSITIVE, SHARE = (0.0, None), (0.0, 1.0)  # bounds of distances and of shares
MIXTURES = ("toy2d/grid", "toy2d/8gaussians")  # toy2d variants with known modes
register(Metric("swd", f"Sliced 2-Wasserstein distance to held-out data ({toy.PROJECTIONS} "
                "directions, 2-D)", False, "sample", datasets=("toy2d",),
                fn=_toy(toy.sliced_wasserstein), bounds=POSITIVE))  # fmt: skip
register(Metric("mmd", "Squared MMD (multi-scale RBF, unbiased: may be < 0) to held-out data "
                "(2-D)", False, "sample", datasets=("toy2d",), fn=_toy(toy.mmd_rbf)))  # fmt: skip
register(Metric("frechet2d", "Frechet distance of Gaussian fits in data space (2-D; sees two "
                "moments only)", False, "sample", datasets=("toy2d",), fn=_toy(toy.frechet_2d),
                bounds=POSITIVE))  # fmt: skip
register(Metric("mode_coverage", f"Share of the mixture's modes holding at least "
                f"{toy.MODE_MIN_SHARE:g} of their expected samples within {toy.MODE_RADIUS:g} std "
                "(mode dropping)", True, "sample", datasets=MIXTURES, fn=_modes(toy.mode_coverage),
                bounds=SHARE))  # fmt: skip
register(Metric("mode_precision", f"Share of samples within {toy.MODE_RADIUS:g} std of a mode "
                "(sharpness; a perfect sampler ~0.99)", True, "sample", datasets=MIXTURES,
                fn=_modes(toy.mode_precision), bounds=SHARE))  # fmt: skip
register(Metric("fid", "FID (clean-fid): Frechet distance of Gaussian fits to features of the "
                f"samples and the training split; {FEATURES}", False, "sample", datasets=IMAGES,
                fn=_fid_metric, bounds=POSITIVE, reference=_fid.REFERENCE_SPLIT))  # fmt: skip
RATIO_OF = ("swd", "frechet2d", "mode_precision", "mode_coverage", "fid")  # positive values
for _m in RATIO_OF:
    register(Metric(f"{_m}_ratio", f"{_m} of the student's samples over {_m} of its teacher's "
                    f"(columns {_m}_ratio_<sampler>; sCM Sec. 6: a constant ratio across sizes)",
                    REGISTRY[_m].higher_is_better, "ratio", bounds=POSITIVE))  # fmt: skip
register(Metric("kid", "KID (clean-fid): unbiased cubic-kernel MMD^2 of features (may be < 0), "
                "same features and reference as fid; opt-in (eval.metrics: [fid, kid]): its 100 "
                "subsets take seconds per value", False, "sample", datasets=IMAGES,
                fn=_kid_metric, reference=_fid.REFERENCE_SPLIT, default=False))  # fmt: skip

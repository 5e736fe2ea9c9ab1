"""FID and KID of generated images through clean-fid, with cached reference statistics.

FID = ||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)) of Gaussian fits to features
(Heusel et al. 2017), computed by ``cleanfid.fid.frechet_distance``; KID is the unbiased
polynomial-kernel MMD^2 of Binkowski et al. 2018, computed by ``cleanfid.fid.kernel_distance``.
Mean and covariance are taken exactly as ``cleanfid.fid.fid_from_feats`` takes them.

Reference statistics (mu, sigma and a subset of features for KID) of a dataset split are
computed once per feature network and cached on disk in
``<cache dir>/ref_stats/<family>-<split>-<extractor>-n<N>-<content hash>.npz``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scm_bench.metrics.features import Extractor, Settings, extractor_for

REFERENCE_SPLIT = "train"  # generated samples are compared with the data they imitate
KID_REFERENCE_MAX = 5000  # reference features kept for KID (a fixed random subset)


@dataclass
class EvalContext:
    """What sample metrics share within one evaluation: settings, device, features computed."""

    settings: Settings
    device: str = "cpu"
    _features: dict = field(default_factory=dict)  # (extractor id, id(samples)) -> features
    resample: tuple | None = None  # (base samples, rows): the samples are base[rows]

    def features(self, samples: torch.Tensor, extractor: Extractor) -> np.ndarray:
        """Features of these samples, computed once per extractor (FID and KID share them); a
        bootstrap resample reuses the features of its base samples."""
        if self.resample is not None and samples is not self.resample[0]:
            base, rows = self.resample
            return self.features(base, extractor)[rows]
        key = (extractor.id, id(samples))
        if key not in self._features:
            self._features[key] = extractor.fn(samples, self.device)
        return self._features[key]


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of features (N, D), as cleanfid.fid.fid_from_feats computes them."""
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


def content_hash(x: torch.Tensor) -> str:
    """Short hash of a tensor's values: the cache key changes whenever the data does."""
    data = x.detach().cpu().contiguous().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=6).hexdigest()


def stats_path(dataset, split: str, extractor: Extractor, cache_dir: Path, x) -> Path:
    """Cache file of a split's reference statistics under one feature network."""
    family = dataset.name.split("/")[0]
    name = f"{family}-{split}-{extractor.id}-n{len(x)}-{content_hash(x)}.npz"
    return Path(cache_dir) / "ref_stats" / name


def compute_reference(x: torch.Tensor, extractor: Extractor, device: str) -> dict[str, np.ndarray]:
    """mu, sigma of all reference features and a seeded subset of them for KID."""
    feats = extractor.fn(x, device)
    mu, sigma = feature_stats(feats)
    keep = np.random.default_rng(0).permutation(len(feats))[:KID_REFERENCE_MAX]
    return {"mu": mu, "sigma": sigma, "feats": feats[np.sort(keep)].astype(np.float32)}


def reference_stats(dataset, extractor: Extractor, ctx: EvalContext, split: str = REFERENCE_SPLIT):
    """Reference statistics of a dataset split: read from the cache, or computed and cached."""
    x = dataset.reference(split)
    path = stats_path(dataset, split, extractor, ctx.settings.cache_dir, x)
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    stats = compute_reference(x, extractor, ctx.device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # parallel trials: atomic
    np.savez(tmp, **stats)
    os.replace(tmp, path)
    return stats


def fid(samples: torch.Tensor, dataset, ctx: EvalContext) -> float:
    """FID of samples against the reference split, in the dataset's feature space."""
    from cleanfid.fid import frechet_distance

    extractor = extractor_for(dataset.name, ctx.settings)
    ref = reference_stats(dataset, extractor, ctx)
    mu, sigma = feature_stats(ctx.features(samples, extractor))
    try:
        with warnings.catch_warnings():  # clean-fid passes scipy's deprecated `disp`
            warnings.simplefilter("ignore", DeprecationWarning)
            return float(frechet_distance(mu, sigma, ref["mu"], ref["sigma"]))
    except ValueError as err:  # clean-fid: large imaginary part of sqrtm (too few samples)
        warnings.warn(f"FID undefined ({err}); use more samples", stacklevel=2)
        return float("nan")


def kid(samples: torch.Tensor, dataset, ctx: EvalContext, seed: int = 0) -> float:
    """KID of samples against the reference split (clean-fid: 100 subsets of <= 1000)."""
    from cleanfid.fid import kernel_distance

    extractor = extractor_for(dataset.name, ctx.settings)
    ref = reference_stats(dataset, extractor, ctx)
    feats = ctx.features(samples, extractor)
    state = np.random.get_state()  # clean-fid draws subsets from numpy's global generator
    np.random.seed(seed)
    try:
        return float(kernel_distance(feats, ref["feats"].astype(np.float64)))
    finally:
        np.random.set_state(state)

"""What a sample metric reads when nothing is learned: its noise floor, a trivial sampler, and
the evaluation noise of one value.

- floor: real data against real data of the same source, n points of one half of the metric's
  reference split (shuffled with a fixed seed) against the other half. A sampler cannot be
  expected to beat it at this sample size. Result columns ``<metric>_floor``.
- uniform: n points drawn uniformly from the bounding box of the data (per dimension / pixel),
  a sampler that knows only the data's range. Columns ``<metric>_uniform``.
- evaluation noise: the standard deviation of a metric over bootstrap resamples of the
  generated samples (the reference fixed), i.e. how much a value moves from sampling noise alone.
  Columns ``<metric>_<sampler>_evalsd``.

Floor and uniform values depend only on the data, the metric and n: they are cached as JSON in
``<cache dir>/floors/`` (cache dir as for reference statistics).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from scm_bench.metrics import fid as _fid
from scm_bench.metrics.features import extractor_for, resolve_settings
from scm_bench.metrics.registry import family, get

FLOOR, UNIFORM = "floor", "uniform"  # the reference rows' pseudo-sampler names in columns
EVALSD = "evalsd"  # suffix of evaluation-noise columns
IMAGES = ("digits", "cifar10", "image_folder")  # features: the cache key names the extractor


def evaluate(names, samples: torch.Tensor, dataset, ctx: _fid.EvalContext) -> dict[str, float]:
    """{name: value} of samples against the dataset's reference split, sharing ``ctx``."""
    return {name: float(get(name).fn(samples, dataset, ctx)) for name in names}


def _only(dataset, x: torch.Tensor):
    """The dataset with ``x`` as its every reference split (modes and name kept)."""
    return replace(dataset, train_x=x, test_x=x, train_y=None, test_y=None, generate=None)


def _halves(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n points of one half, the other half) of x, shuffled with a fixed seed."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    half = len(x) // 2
    return x[perm[:half]][:n], x[perm[half:]]


def _uniform(x: torch.Tensor, n: int) -> torch.Tensor:
    lo, hi = x.min(dim=0).values, x.max(dim=0).values  # per dimension / pixel
    u = torch.rand((n, *x.shape[1:]), generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    return lo + u * (hi - lo)


def _cache_file(what: str, dataset, n: int, settings) -> Path:
    """<cache>/floors/<family>-<what>-n<n>-<hash of the data and the feature network>.json"""
    h = hashlib.blake2b(digest_size=6)
    for split in ("train", "test"):
        h.update(dataset.reference(split).detach().cpu().contiguous().numpy().tobytes())
    if family(dataset.name) in IMAGES:
        h.update(extractor_for(dataset.name, settings).id.encode())
    name = f"{dataset.name.replace('/', '_')}-{what}-n{n}-{h.hexdigest()}.json"
    return settings.cache_dir / "floors" / name


def _cached(what: str, names, dataset, n: int, settings, compute) -> dict[str, float]:
    path = _cache_file(what, dataset, n, settings)
    known = json.loads(path.read_text()) if path.is_file() else {}
    todo = [m for m in names if m not in known]
    if todo:
        known |= compute(todo)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")  # parallel trials: atomic
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(tmp, path)
    return {m: float(known[m]) for m in names}


def floor(names, dataset, n: int, inception=None, cache_dir=None) -> dict[str, float]:
    """Each metric of real against real data: n points of one half of its reference split
    (fewer when the half is smaller) against the other half. Cached."""
    settings = resolve_settings(inception, cache_dir)

    def compute(todo):
        out = {}
        for name in todo:
            a, b = _halves(dataset.reference(get(name).reference), n)
            ctx = _fid.EvalContext(settings, device=str(a.device))
            out[name] = float(get(name).fn(a, _only(dataset, b), ctx))
        return out

    return _cached(FLOOR, names, dataset, n, settings, compute)


def uniform(names, dataset, n: int, inception=None, cache_dir=None) -> dict[str, float]:
    """Each metric of n points uniform over the data's bounding box (held-out split). Cached."""
    settings = resolve_settings(inception, cache_dir)

    def compute(todo):
        x = _uniform(dataset.reference("test"), n)
        return evaluate(todo, x, dataset, _fid.EvalContext(settings, device=str(x.device)))

    return _cached(UNIFORM, names, dataset, n, settings, compute)


def bootstrap_sd(
    names,
    samples: torch.Tensor,
    dataset,
    replicates: int,
    seed: int = 0,
    inception=None,
    cache_dir=None,
) -> dict[str, float]:
    """Per metric, the standard deviation over ``replicates`` resamples (with replacement) of the
    generated samples; features of the samples are computed once and resampled. NaN below 2."""
    if replicates < 2:
        return {name: math.nan for name in names}
    ctx = _fid.EvalContext(resolve_settings(inception, cache_dir), device=str(samples.device))
    gen = torch.Generator().manual_seed(seed)
    values = {name: [] for name in names}
    for _ in range(replicates):
        rows = torch.randint(0, len(samples), (len(samples),), generator=gen)
        boot = replace(ctx, resample=(samples, rows.numpy()))
        for name, value in evaluate(names, samples[rows.to(samples.device)], dataset, boot).items():
            values[name].append(value)
    return {name: float(np.std(v, ddof=1)) for name, v in values.items()}

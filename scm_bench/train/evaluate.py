"""End-of-trial evaluation: samples from each sampler, sample metrics, sample grids."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from scm_bench import metrics
from scm_bench.core.sampling import ode_nfe
from scm_bench.train.grids import save_grid
from scm_bench.train.model import Model

SAMPLE_SEED = 12345  # sampling seed offset from the trial seed (fixed: variants share noise)


def sampler_steps(name: str, spec) -> int:
    """The steps a named sampler takes: the teacher's ODE steps, or N of '<N>step'."""
    return spec.sampling.teacher_steps if name == "teacher" else int(name.removesuffix("step"))


def sampler_nfe(name: str, spec) -> int:
    """Network evaluations per sample: the ODE solver's for the teacher, one per consistency
    step for a student."""
    steps = sampler_steps(name, spec)
    return ode_nfe(steps, spec.sampling.solver) if name == "teacher" else steps


def generate(parts, sampler: str, n: int, seed: int) -> torch.Tensor:
    """n samples from the EMA network with a named sampler: 'teacher' or '<N>step'. This is
    ``Model.sample``, the path an exported model (``load_model``) samples by."""
    return Model.of(parts).sample(n, sampler_steps(sampler, parts.spec), seed)


def sample_metrics(parts, names, sampler: str) -> tuple[dict[str, float], torch.Tensor, float]:
    """(metrics averaged over eval.sample_seeds sampling seeds, the first seed's samples, its
    sampling seconds). The first seed is the trial seed + SAMPLE_SEED, the next ones follow."""
    spec, runs, first, seconds = parts.spec, [], None, 0.0
    for k in range(spec.eval.sample_seeds):
        start = time.perf_counter()
        x = generate(parts, sampler, spec.eval.n_samples, seed=spec.seed + SAMPLE_SEED + k)
        if first is None:
            first, seconds = x, time.perf_counter() - start
        runs.append(metrics.evaluate_samples(names, x, parts.data, inception=spec.eval.inception))
    return {n: sum(r[n] for r in runs) / len(runs) for n in names}, first, seconds


def curve_point(parts) -> dict[str, float]:
    """History fields 'eval_<metric>_<sampler>' of the EMA net now (one sampling seed, no
    bootstrap; the trial's RNG state is left as it was, so a resumed run logs the same)."""
    spec, out = parts.spec, {}
    names = spec.eval.metrics or metrics.default_sample_metrics(parts.data.name)
    training = parts.ema.training  # student.target=ema: its dropout mode stays as it was
    with torch.random.fork_rng(devices=[]):
        parts.ema.eval()
        for sampler in spec.samplers():
            x = generate(parts, sampler, spec.eval.n_samples, seed=spec.seed + SAMPLE_SEED)
            values = metrics.evaluate_samples(names, x, parts.data, inception=spec.eval.inception)
            out.update({f"eval_{n}_{sampler}": v for n, v in values.items()})
    parts.ema.train(training)
    return out


def evaluate(parts, out_dir: Path) -> dict[str, float]:
    """Sample metrics per sampler (columns '<metric>_<sampler>'), their evaluation noise
    ('<metric>_<sampler>_evalsd', bootstrap), sampling throughput, and the data's own floor and
    a uniform sampler's values ('<metric>_floor', '<metric>_uniform')."""
    spec, ev = parts.spec, parts.spec.eval
    names = ev.metrics or metrics.default_sample_metrics(parts.data.name)
    results: dict[str, float] = {}
    parts.ema.eval()
    for sampler in spec.samplers():
        values, x, seconds = sample_metrics(parts, names, sampler)
        results[f"samples_per_sec_{sampler}"] = ev.n_samples / seconds
        results[f"nfe_{sampler}"] = sampler_nfe(sampler, spec)
        results.update({f"{name}_{sampler}": value for name, value in values.items()})
        if ev.bootstrap:  # the noise of a mean over sample_seeds independent sample sets
            sd = metrics.bootstrap_sd(names, x, parts.data, ev.bootstrap, spec.seed, ev.inception)
            scale = math.sqrt(ev.sample_seeds)
            results.update({f"{n}_{sampler}_{metrics.EVALSD}": v / scale for n, v in sd.items()})
        if ev.grid:  # drawn apart, with the trial's seed: Model.sample redraws it
            grid = generate(parts, sampler, ev.grid, seed=spec.seed)
            save_grid(grid, out_dir / f"samples_{sampler}.png", ev.grid)
    for row, reference in ((metrics.FLOOR, metrics.floor), (metrics.UNIFORM, metrics.uniform)):
        values = reference(names, parts.data, ev.n_samples, inception=ev.inception)
        results.update({f"{name}_{row}": value for name, value in values.items()})
    results["n_samples"] = ev.n_samples
    return results

"""End-of-trial evaluation: samples from each sampler, sample metrics, sample grids."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from scm_bench import metrics
from scm_bench.core.sampling import ode_nfe
from scm_bench.errors import ModelError
from scm_bench.train.model import Model


def sampler_nfe(name: str, spec) -> int:
    if name == "teacher":
        return ode_nfe(spec.sampling.teacher_steps, spec.sampling.solver)
    return int(name.removesuffix("step"))


def generate(parts, sampler: str, n: int, seed: int) -> torch.Tensor:
    """n samples from the EMA network with a named sampler: 'teacher' or '<N>step'. This is
    ``Model.sample``, the path an exported model (``load_model``) samples by."""
    spec = parts.spec
    steps = spec.sampling.teacher_steps if sampler == "teacher" else sampler_nfe(sampler, spec)
    return Model.of(parts).sample(n, steps, seed)


def save_grid(samples: torch.Tensor, path: Path, n: int) -> None:
    """A PNG of the first n samples: an image grid, or a scatter plot for 2-D points."""
    if samples.ndim == 2:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(3, 3), dpi=100)
        pts = samples[:n].cpu()
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
        ax.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), xticks=[], yticks=[])
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return
    from torchvision.utils import save_image

    imgs = samples[:n].cpu().clamp(-1, 1) * 0.5 + 0.5  # [-1, 1] -> [0, 1]
    save_image(imgs, path, nrow=int(n**0.5), padding=1)


def save_samples(samples: torch.Tensor, path: Path, labels: torch.Tensor | None = None) -> None:
    """Samples as a grid image (.png: an image grid or a 2-D scatter plot) or as arrays (.npz:
    ``samples`` (N, ...) float32 and, for class-conditional models, ``labels`` (N,))."""
    path = Path(path)
    if path.suffix == ".png":
        save_grid(samples, path, len(samples))
    elif path.suffix == ".npz":
        import numpy as np

        arrays = {"samples": samples.cpu().float().numpy()}
        if labels is not None:
            arrays["labels"] = labels.cpu().numpy()
        np.savez(path, **arrays)
    else:
        raise ModelError(f"--out {path}: write a .png grid or .npz arrays")


def evaluate(parts, out_dir: Path) -> dict[str, float]:
    """Sample metrics per sampler (columns '<metric>_<sampler>') and sampling throughput."""
    spec = parts.spec
    names = spec.eval.metrics or metrics.default_sample_metrics(parts.data.name)
    samplers = ("teacher",) if spec.method == "teacher" else spec.eval.samplers
    results: dict[str, float] = {}
    parts.ema.eval()
    for sampler in samplers:
        start = time.perf_counter()
        x = generate(parts, sampler, spec.eval.n_samples, seed=spec.seed + 12345)
        seconds = time.perf_counter() - start
        results[f"samples_per_sec_{sampler}"] = spec.eval.n_samples / seconds
        results[f"nfe_{sampler}"] = sampler_nfe(sampler, spec)
        for name, value in metrics.evaluate_samples(
            names, x, parts.data, inception=spec.eval.inception
        ).items():
            results[f"{name}_{sampler}"] = value
        if spec.eval.grid:  # drawn apart, with the trial's seed: Model.sample redraws it
            grid = generate(parts, sampler, spec.eval.grid, seed=spec.seed)
            save_grid(grid, out_dir / f"samples_{sampler}.png", spec.eval.grid)
    results["n_samples"] = spec.eval.n_samples
    return results

"""Samples to files: a grid image (images or a 2-D scatter plot) or arrays."""

from __future__ import annotations

from pathlib import Path

import torch

from scm_bench.errors import ModelError


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

"""Datasets by name. Each reports its sigma_d, shape, classes and a held-out reference split.

Nothing is downloaded: toy2d is generated, digits ships with scikit-learn, image datasets are
read from a local folder the user names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from scm_bench.core.choices import Choices
from scm_bench.errors import DataError

# Datasets: a loader fn(data_spec) -> Dataset, described by its docstring's first line; a
# plugin registers more (``@register("mine")``).
DATASETS = Choices("data.name")
DatasetName = DATASETS.alias


@dataclass
class Dataset:
    """A dataset in the layout the nets expect: (N, dim) vectors or (N, C, H, W) in [-1, 1]."""

    name: str
    shape: tuple[int, ...]  # shape of one sample
    sigma_d: float  # per-dimension data std used by TrigFlow
    num_classes: int  # 0 = unlabelled
    train_x: torch.Tensor | None  # None for generated data
    train_y: torch.Tensor | None
    test_x: torch.Tensor  # held-out reference split for metrics
    test_y: torch.Tensor | None
    generate: Callable[[int, torch.Generator], torch.Tensor] | None = None  # generated data only
    modes: torch.Tensor | None = None  # mixtures of Gaussians: (K, *shape) component means
    mode_std: float | None = None  # ... and their common per-dimension std

    def batch(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A training batch of n samples (with labels when the dataset has them)."""
        if self.generate is not None:
            return self.generate(n, generator), None
        idx = torch.randint(0, self.train_x.shape[0], (n,), generator=generator)
        return self.train_x[idx], None if self.train_y is None else self.train_y[idx]

    def reference(self, split: str = "test", n: int | None = None) -> torch.Tensor:
        """Real samples of a split ('train' or 'test') for metrics, at most n of them."""
        if self.generate is not None:  # fixed seeds: train and test never overlap
            gen = torch.Generator().manual_seed(10_000 if split == "train" else 20_000)
            return self.generate(n or 10_000, gen)
        x = self.train_x if split == "train" else self.test_x
        return x if n is None else x[:n]


def register(name: str, description: str = "") -> Callable:
    """Decorator registering a dataset loader under ``name`` (``data.name``)."""
    return DATASETS.register(name, description)


def load_dataset(spec) -> Dataset:
    """Build the dataset a DataSpec names; raises DataError for missing or malformed files."""
    return DATASETS.get(spec.name)(spec)


from scm_bench.data import cifar10, digits, image_folder, toy2d  # noqa: E402,F401  (registration)

__all__ = ["DATASETS", "DataError", "Dataset", "DatasetName", "load_dataset", "register"]

"""Generated 2-D distributions, scaled to per-dimension std 0.5 (sigma_d = 0.5)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from scm_bench.data import Dataset, register

SIGMA_D = 0.5


def checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g) * 2.0
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], 1) * 2


def moons(n: int, g: torch.Generator) -> torch.Tensor:
    a = torch.rand(n, generator=g) * math.pi
    upper = torch.randint(0, 2, (n,), generator=g).bool()
    x = torch.where(upper, torch.cos(a), 1 - torch.cos(a))
    y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a))
    return torch.stack([x, y], 1) + 0.05 * torch.randn(n, 2, generator=g)


def eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    centers = torch.stack([torch.cos(k), torch.sin(k)], 1) * 2
    return centers + 0.1 * torch.randn(n, 2, generator=g)


def swissroll(n: int, g: torch.Generator) -> torch.Tensor:
    r = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    x = torch.stack([r * torch.cos(r), r * torch.sin(r)], 1) / 5
    return x + 0.1 * torch.randn(n, 2, generator=g)


ToyVariant = Literal["checkerboard", "moons", "8gaussians", "swissroll"]  # GENERATORS' keys
GENERATORS: dict[ToyVariant, Callable] = {
    "checkerboard": checkerboard,
    "moons": moons,
    "8gaussians": eight_gaussians,
    "swissroll": swissroll,
}


def _standardizer(fn):
    """Fix mean and scale once from a large sample, so samples have std ~ sigma_d per dim."""
    ref = fn(200_000, torch.Generator().manual_seed(0))
    mean, std = ref.mean(0), ref.std(0)
    return lambda n, g: (fn(n, g) - mean) / std * SIGMA_D


@register("toy2d")
def load(spec) -> Dataset:
    """Generated 2-D distributions (data.variant): exact distances, seconds per trial."""
    gen = _standardizer(GENERATORS[spec.variant])
    test = gen(10_000, torch.Generator().manual_seed(20_000))
    return Dataset(
        name=f"toy2d/{spec.variant}",
        shape=(2,),
        sigma_d=SIGMA_D,
        num_classes=0,
        train_x=None,
        train_y=None,
        test_x=test,
        test_y=None,
        generate=gen,
    )

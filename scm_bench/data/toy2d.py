"""Generated 2-D distributions, scaled to per-dimension std 0.5 (sigma_d = 0.5)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from scm_bench.data import Dataset, register

SIGMA_D = 0.5
EIGHT_STD = 0.1  # std of each of the 8 Gaussians (radius 2)
GRID_SIDE, GRID_STD = 3, 0.05  # grid: 3 x 3 modes, unit spacing, std 0.05


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


def eight_centers() -> torch.Tensor:
    """(8, 2): the 8 modes of ``eight_gaussians``, on a circle of radius 2."""
    k = torch.arange(8).float() * (2 * math.pi / 8)
    return torch.stack([torch.cos(k), torch.sin(k)], 1) * 2


def eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    return eight_centers()[k] + EIGHT_STD * torch.randn(n, 2, generator=g)


def grid_centers() -> torch.Tensor:
    """(GRID_SIDE^2, 2): the modes of ``grid``, unit spacing, centred on 0."""
    i = torch.arange(GRID_SIDE).float() - (GRID_SIDE - 1) / 2
    return torch.cartesian_prod(i, i)


def grid(n: int, g: torch.Generator) -> torch.Tensor:
    """A GRID_SIDE x GRID_SIDE grid of equal-weight Gaussians (std GRID_STD x the spacing):
    modes a small net learns in 600 teacher steps of batch 512, and that mode metrics count."""
    k = torch.randint(0, GRID_SIDE**2, (n,), generator=g)
    return grid_centers()[k] + GRID_STD * torch.randn(n, 2, generator=g)


def swissroll(n: int, g: torch.Generator) -> torch.Tensor:
    r = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    x = torch.stack([r * torch.cos(r), r * torch.sin(r)], 1) / 5
    return x + 0.1 * torch.randn(n, 2, generator=g)


# GENERATORS' keys
ToyVariant = Literal["checkerboard", "moons", "8gaussians", "swissroll", "grid"]
GENERATORS: dict[ToyVariant, Callable] = {
    "checkerboard": checkerboard,
    "moons": moons,
    "8gaussians": eight_gaussians,
    "swissroll": swissroll,
    "grid": grid,
}
MODES: dict[ToyVariant, tuple[Callable, float]] = {  # mixtures: (centers, std) before scaling
    "8gaussians": (eight_centers, EIGHT_STD),
    "grid": (grid_centers, GRID_STD),
}


def _scale(fn) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per dimension, fixed once from a large sample."""
    ref = fn(200_000, torch.Generator().manual_seed(0))
    return ref.mean(0), ref.std(0)


@register("toy2d")
def load(spec) -> Dataset:
    """Generated 2-D distributions (data.variant): exact distances, seconds per trial."""
    fn = GENERATORS[spec.variant]
    mean, std = _scale(fn)  # samples have std ~ sigma_d per dimension

    def gen(n: int, g: torch.Generator) -> torch.Tensor:
        return (fn(n, g) - mean) / std * SIGMA_D

    test = gen(10_000, torch.Generator().manual_seed(20_000))
    modes, mode_std = None, None
    if spec.variant in MODES:
        centers, raw_std = MODES[spec.variant]
        modes = (centers() - mean) / std * SIGMA_D  # (K, 2)
        mode_std = float(raw_std / std.mean() * SIGMA_D)
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
        modes=modes,
        mode_std=mode_std,
    )

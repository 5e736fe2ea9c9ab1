"""Samplers: few-step consistency sampling and the teacher's PF-ODE solver."""

from __future__ import annotations

import math
from typing import Literal

import torch

from scm_bench.core.losses import guided
from scm_bench.core.trigflow import consistency_fn, edm_to_trigflow


def consistency_times(steps: int, t_max: float, t_mid: float = 1.1) -> list[float]:
    """Times of an N-step consistency sampler: [t_max] then N-1 times evenly from t_mid down.

    1 step: [t_max]; 2 steps: [t_max, t_mid] (sCM Sec. 5); N steps: t_mid, ..., t_mid/(N-1).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return [t_max] + [t_mid * (steps - 1 - i) / (steps - 1) for i in range(steps - 1)]


@torch.no_grad()
def sample_consistency(
    net: torch.nn.Module,
    shape: tuple[int, ...],
    sigma_d: float,
    times: list[float],
    y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """x = f(sigma_d z, t_0); then for each later t: x <- f(cos t x + sin t sigma_d z', t)."""
    x = torch.randn(shape, generator=generator).to(device) * sigma_d
    for i, t in enumerate(times):
        if i > 0:
            x = (
                math.cos(t) * x
                + math.sin(t) * torch.randn(shape, generator=generator).to(device) * sigma_d
            )
        tt = torch.full((shape[0],), t, device=device)
        x = consistency_fn(net, x, tt, sigma_d, y)
    return x


def ode_times(steps: int, sigma_d: float, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> list[float]:
    """EDM's rho-schedule in sigma mapped to TrigFlow times t = arctan(sigma / sigma_d), then 0."""
    sig = [
        (
            sigma_max ** (1 / rho)
            + i / max(steps - 1, 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
        )
        ** rho
        for i in range(steps)
    ]
    return [edm_to_trigflow(s, sigma_d) for s in sig] + [0.0]


Solver = Literal["euler", "heun"]  # the teacher's PF-ODE solver (spec: sampling.solver)
# An evaluated sampler: N-step consistency sampling (1step, 2step, ...) or the teacher's ODE.
SAMPLER_NAME = r"^([1-9][0-9]*step|teacher)$"


def ode_nfe(steps: int, solver: Solver) -> int:
    """Network evaluations of the teacher sampler (Heun skips its correction on the last step)."""
    return steps if solver == "euler" else 2 * steps - 1


@torch.no_grad()
def sample_ode(
    net: torch.nn.Module,
    shape: tuple[int, ...],
    sigma_d: float,
    steps: int = 18,
    solver: Solver = "heun",
    y: torch.Tensor | None = None,
    guidance: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Solve dx/dt = sigma_d F(x / sigma_d, t) from t_max down to 0 (Euler or Heun)."""
    times = ode_times(steps, sigma_d)
    x = torch.randn(shape, generator=generator).to(device) * sigma_d

    def vel(x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((shape[0],), t, device=device)
        return sigma_d * guided(net, x / sigma_d, tt, y, guidance)

    for t_cur, t_next in zip(times[:-1], times[1:], strict=True):
        d = vel(x, t_cur)
        x_next = x + (t_next - t_cur) * d
        if solver == "heun" and t_next > 0:
            x_next = x + (t_next - t_cur) * 0.5 * (d + vel(x_next, t_next))
        x = x_next
    return x

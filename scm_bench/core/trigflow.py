"""TrigFlow (sCM Sec. 3): x_t = cos(t) x0 + sin(t) z with z ~ N(0, sigma_d^2 I), t in [0, pi/2].

A network ``F(x, t, y)`` is always called on the scaled input ``x_t / sigma_d`` and the raw time
``t``; the time transform c_noise(t) lives inside the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scm_bench.core.choices import Choices

Net = torch.nn.Module
# Training-time proposals of t: fn(n, proposal, sigma_d, generator) -> t (n,) in (0, pi/2).
PROPOSALS = Choices("proposal.kind")
ProposalKind = PROPOSALS.alias


@dataclass(frozen=True)
class Proposal:
    """Training-time proposal of t (spec section ``proposal``); CIFAR-10: -1.0 / 1.4."""

    p_mean: float = -1.0  # mean of tau in t = arctan(exp(tau) / sigma_d)
    p_std: float = 1.4  # std of tau
    kind: ProposalKind = "lognormal"  # the distribution (PROPOSALS)


def expand_t(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-sample times (B,) so they broadcast against x (B, ...)."""
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def noise(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = cos(t) x0 + sin(t) z (TrigFlow forward process); z already has std sigma_d."""
    tt = expand_t(t, x0)
    return torch.cos(tt) * x0 + torch.sin(tt) * z


def velocity(x0: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v_t = dx_t/dt = cos(t) z - sin(t) x0 (the teacher's target, and sCT's dx_t/dt)."""
    tt = expand_t(t, x0)
    return torch.cos(tt) * z - torch.sin(tt) * x0


def sample_t(
    n: int, proposal: Proposal, sigma_d: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n training times from the proposal ``proposal.kind`` names."""
    return PROPOSALS.get(proposal.kind)(n, proposal, sigma_d, generator)


@PROPOSALS.register("lognormal", "tau ~ N(p_mean, p_std^2), t = arctan(exp(tau) / sigma_d)")
def lognormal(
    n: int, proposal: Proposal, sigma_d: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training proposal (paper): tau ~ N(P_mean, P_std^2), t = arctan(exp(tau) / sigma_d)."""
    tau = torch.randn(n, generator=generator) * proposal.p_std + proposal.p_mean
    return torch.atan(torch.exp(tau) / sigma_d)


def edm_to_trigflow(sigma: float, sigma_d: float) -> float:
    """EDM noise level sigma -> TrigFlow time t = arctan(sigma / sigma_d); x_t = cos(t) x_sigma."""
    return math.atan(sigma / sigma_d)


def consistency_fn(
    net: Net, x_t: torch.Tensor, t: torch.Tensor, sigma_d: float, y: torch.Tensor | None = None
) -> torch.Tensor:
    """f(x_t, t) = cos(t) x_t - sin(t) sigma_d F(x_t / sigma_d, t)  (sCM Eq. 5); f(x, 0) = x."""
    tt = expand_t(t, x_t)
    return torch.cos(tt) * x_t - torch.sin(tt) * sigma_d * net(x_t / sigma_d, t, y)

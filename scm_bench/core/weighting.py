"""Loss weights of the sCM objective (Algorithm 1, step 7)."""

from __future__ import annotations

import math

import torch
from torch import nn

from scm_bench.core.choices import Choices

# Extra prior weights of the loss: fn(t, sigma_d) -> weight (B,); a plugin registers more.
PRIOR_WEIGHTS = Choices("weighting.prior")
PriorWeight = PRIOR_WEIGHTS.alias


class AdaptiveWeight(nn.Module):
    """w_phi(t): a learned scalar per time, EDM2-style uncertainty weighting.

    The loss becomes e^{w_phi(t)} / D * ||Delta||^2 - w_phi(t), whose minimizer over w is
    w = -log(||Delta||^2 / D): the weight adapts so that every t contributes a unit-scale loss.
    Positional features of t (fixed frequencies) -> linear -> scalar, initialised to w = 0.
    """

    def __init__(self, features: int = 64):
        super().__init__()
        freqs = torch.exp(torch.linspace(0, math.log(100.0), features // 2))
        self.register_buffer("freqs", freqs)
        self.linear = nn.Linear(features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.float()[:, None] * self.freqs[None]  # (B, F/2)
        feats = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)  # (B, F)
        return self.linear(feats).squeeze(1)  # (B,)


def prior_weight(t: torch.Tensor, sigma_d: float, kind: PriorWeight) -> torch.Tensor:
    """The extra prior weight ``kind`` names, per sample (B,)."""
    return PRIOR_WEIGHTS.get(kind)(t, sigma_d)


@PRIOR_WEIGHTS.register("none", "no extra weight: Algorithm 1 as written (paper)")
def no_prior(t: torch.Tensor, sigma_d: float) -> torch.Tensor:
    """1: Algorithm 1 already contains the paper's prior 1/(sigma_d tan t), which turns
    sigma_d sin(t) df/dt into the cos(t) factor of the tangent g."""
    return torch.ones_like(t)


@PRIOR_WEIGHTS.register("inv_tan", "1 / (sigma_d tan t) again on top (some public codebases)")
def inv_tan(t: torch.Tensor, sigma_d: float) -> torch.Tensor:
    """1 / (sigma_d tan t) multiplied on top (impl: some public codebases do this), so the
    paper's prior is applied twice."""
    return 1.0 / (sigma_d * torch.tan(t))

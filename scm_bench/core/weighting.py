"""Loss weights of the sCM objective (Algorithm 1, step 7)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

PriorWeight = Literal["none", "inv_tan"]


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
    """An *extra* prior weight: 'none' -> 1 (Algorithm 1 as written), 'inv_tan' ->
    1 / (sigma_d tan t) multiplied on top (impl: some public codebases do this).

    Algorithm 1 already contains the paper's prior 1/(sigma_d tan t): it is what turns
    sigma_d sin(t) df/dt into the cos(t) factor of the tangent g, so 'inv_tan' applies it twice.
    """
    return torch.ones_like(t) if kind == "none" else 1.0 / (sigma_d * torch.tan(t))

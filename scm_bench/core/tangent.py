"""The sCM tangent g (Algorithm 1, steps 3, 5 and 6): warmup, formula, normalization."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from scm_bench.core.choices import Choices, check
from scm_bench.core.trigflow import expand_t

# Tangent shapings: fn(g, cfg) -> shaped g, per sample; a plugin registers more.
TANGENT_MODES = Choices("tangent.mode")
TangentMode = TANGENT_MODES.alias
TangentNorm = Literal["l2", "rms"]


@dataclass(frozen=True)
class TangentConfig:
    """How the tangent g is warmed up and shaped (spec section ``tangent``)."""

    mode: TangentMode = "normalize"  # g / (||g|| + c) (paper) | clip to [-1, 1] | raw
    norm: TangentNorm = "l2"  # norm used by normalize
    c: float = 0.1  # normalization constant
    warmup_steps: int = 10000  # H of r = min(1, step / H); 0 = no warmup
    discrete_steps: int = 0  # 0 = continuous time (the JVP); N = discrete-time CM, N steps

    def __post_init__(self):
        check(self.mode, TangentMode, "tangent.mode")
        check(self.norm, TangentNorm, "tangent.norm")


def warmup_ratio(step: int, warmup_steps: int) -> float:
    """Tangent warmup r = min(1, step / H); H = 0 switches warmup off (r = 1)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)


def scm_tangent(
    x_t: torch.Tensor,
    t: torch.Tensor,
    f_minus: torch.Tensor,
    dxdt: torch.Tensor,
    cs_dfdt: torch.Tensor,
    sigma_d: float,
    r: float,
) -> torch.Tensor:
    """g = -cos^2(t) (sigma_d F^- - dx_t/dt) - r cos(t) sin(t) (x_t + sigma_d dF^-/dt).

    ``cs_dfdt`` is cos(t) sin(t) sigma_d dF^-/dt, the quantity the rearranged JVP returns
    directly, so the second term is -r (cos t sin t x_t + cs_dfdt).
    """
    tt = expand_t(t, x_t)
    cos, sin = torch.cos(tt), torch.sin(tt)
    return -(cos**2) * (sigma_d * f_minus - dxdt) - r * (cos * sin * x_t + cs_dfdt)


def per_sample_norm(g: torch.Tensor, kind: TangentNorm = "l2") -> torch.Tensor:
    """||g|| per sample over all non-batch dims: plain L2 or RMS (L2 / sqrt(D))."""
    flat = g.flatten(1)  # (B, D)
    norm = flat.norm(dim=1)
    return norm / flat.shape[1] ** 0.5 if kind == "rms" else norm


def shape_tangent(g: torch.Tensor, cfg: TangentConfig) -> torch.Tensor:
    """The tangent shaping ``cfg.mode`` names: normalize (paper), clip or raw, or a plugin's."""
    return TANGENT_MODES.get(cfg.mode)(g, cfg)


@TANGENT_MODES.register("normalize", "g / (||g|| + c) per sample (paper)")
def normalize(g: torch.Tensor, cfg: TangentConfig) -> torch.Tensor:
    """Tangent normalization g / (||g|| + c), Algorithm 1 step 6; ||.|| per ``cfg.norm``."""
    return g / expand_t(per_sample_norm(g, cfg.norm) + cfg.c, g)


@TANGENT_MODES.register("clip", "clip g to [-1, 1]")
def clip(g: torch.Tensor, cfg: TangentConfig) -> torch.Tensor:
    """Tangent clipping to [-1, 1] elementwise (the paper's alternative to normalization)."""
    return g.clamp(-1.0, 1.0)


@TANGENT_MODES.register("raw", "g as computed (the unstable baseline)")
def raw(g: torch.Tensor, cfg: TangentConfig) -> torch.Tensor:
    """The raw tangent, neither normalized nor clipped."""
    return g


def discrete_dt(steps: int) -> float:
    """The step of a discrete-time consistency model with N steps on [0, pi/2]: pi / (2N)."""
    return math.pi / (2 * steps)


def discrete_scm_tangent(
    x_t: torch.Tensor,
    t: torch.Tensor,
    f_minus: torch.Tensor,
    dxdt: torch.Tensor,
    f_prev: torch.Tensor,
    dt: torch.Tensor | float,  # t - t' (broadcastable against x_t)
    sigma_d: float,
    r: float,
) -> torch.Tensor:
    """g of a discrete-time consistency model in the same TrigFlow parameterization.

    Algorithm 1's g is cos(t) df^-/dt split by the warmup r:
        g = -(1 - r) cos^2(t) (sigma_d F^- - dx_t/dt) + r cos(t) df^-/dt,
    and the discrete-time objective replaces df^-/dt by the finite difference
        (f^-(x_t, t) - f^-(x_t', t')) / dt,  f^-(x, t) = cos t x - sin t sigma_d F^-(x, t),
    where ``f_prev`` = f^-(x_t', t') one step back (f(x, 0) = x at the boundary). As N grows
    (dt -> 0) it becomes the continuous-time g.
    """
    tt = expand_t(t, x_t)
    cos, sin = torch.cos(tt), torch.sin(tt)
    f_now = cos * x_t - sin * sigma_d * f_minus  # f^-(x_t, t), sCM Eq. 5
    return -(1 - r) * cos**2 * (sigma_d * f_minus - dxdt) + r * cos * (f_now - f_prev) / dt

"""The sCM tangent g (Algorithm 1, steps 3, 5 and 6): warmup, formula, normalization."""

from __future__ import annotations

import torch

from scm_bench.core.trigflow import expand_t


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


def per_sample_norm(g: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """||g|| per sample over all non-batch dims: plain L2 or RMS (L2 / sqrt(D))."""
    flat = g.flatten(1)  # (B, D)
    norm = flat.norm(dim=1)
    if kind == "rms":
        norm = norm / flat.shape[1] ** 0.5
    elif kind != "l2":
        raise ValueError(f"tangent norm must be 'l2' or 'rms', got {kind!r}")
    return norm


def shape_tangent(g: torch.Tensor, mode: str, norm: str = "l2", c: float = 0.1) -> torch.Tensor:
    """Tangent normalization g / (||g|| + c) (paper), clipping to [-1, 1], or raw."""
    if mode == "normalize":
        return g / expand_t(per_sample_norm(g, norm) + c, g)
    if mode == "clip":
        return g.clamp(-1.0, 1.0)
    if mode == "raw":
        return g
    raise ValueError(f"tangent mode must be normalize, clip or raw, got {mode!r}")

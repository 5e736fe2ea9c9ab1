"""Switchable building blocks shared by the MLP, U-Net and DiT."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from scm_bench.core.choices import check
from scm_bench.nets.jvp import linear_jvp, norm_jvp, pixel_norm_jvp

AdaGN = Literal["double", "single", "scale"]


def pixel_norm(v: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """v / RMS(v) over the channel dim (dim 1): unit-RMS scale and shift (sCM Sec. 4.1)."""
    return v / torch.sqrt(v.pow(2).mean(dim=1, keepdim=True) + eps)


class AdaNorm(nn.Module):
    """Adaptive normalization conditioned on the time embedding e.

    double: y = norm(x) * pnorm(s(e)) + pnorm(b(e))   (adaptive double normalization, paper)
    single: y = norm(x) * (1 + s(e)) + b(e)            (AdaGN)
    scale:  y = norm(x) * (1 + s(e))                   (scale only, EDM2-like)
    ``norm`` is GroupNorm for feature maps (B, C, H, W) and LayerNorm for tokens (B, ..., C).
    """

    def __init__(self, channels: int, emb_dim: int, mode: AdaGN = "double", kind: str = "group"):
        super().__init__()
        check(mode, AdaGN, "net.adagn")
        self.mode, self.kind = mode, kind
        if kind == "group":
            self.norm = nn.GroupNorm(min(8, channels), channels, affine=False, eps=1e-5)
        else:
            self.norm = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-5)
        self.proj = nn.Linear(emb_dim, channels if mode == "scale" else 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        if mode == "double":  # pnorm(s) starts at 1, pnorm(b) at 0 after the first update
            with torch.no_grad():
                self.proj.bias[:channels] = 1.0

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        sb = self.proj(e)  # (B, C) or (B, 2C)
        s, b = (sb, None) if self.mode == "scale" else sb.chunk(2, dim=1)  # (B, C) each
        if self.mode == "double":
            s, b = pixel_norm(s), pixel_norm(b)
        else:
            s = 1 + s
        shape = self._broadcast_shape(x)
        h = self.norm(x) * s.reshape(shape)
        return h if b is None else h + b.reshape(shape)

    def _broadcast_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """(B, C) -> broadcast over H, W (feature maps) or over tokens."""
        if self.kind == "group":
            return (x.shape[0], -1, 1, 1)
        return (x.shape[0],) + (1,) * (x.ndim - 2) + (-1,)

    def forward_jvp(self, x: torch.Tensor, tx: torch.Tensor, e: torch.Tensor, te: torch.Tensor):
        """(y, t_y) by the product rule: t_y = t_norm * s + norm(x) * t_s (+ t_b).

        double: (s, t_s), (b, t_b) = pixel_norm_jvp of the projection halves; single / scale:
        s = 1 + s', t_s = t_s'. Shapes as in ``forward``; e, te: (B, E).
        """
        sb, tsb = linear_jvp(self.proj, e, te)  # (B, C) or (B, 2C)
        if self.mode == "scale":
            (s, ts), (b, tb) = (1 + sb, tsb), (None, None)
        else:
            (s, b), (ts, tb) = sb.chunk(2, dim=1), tsb.chunk(2, dim=1)  # (B, C) each
            if self.mode == "double":
                (s, ts), (b, tb) = pixel_norm_jvp(s, ts), pixel_norm_jvp(b, tb)
            else:
                s = 1 + s
        shape = self._broadcast_shape(x)
        n, tn = norm_jvp(self.norm, x, tx)
        h = n * s.reshape(shape)
        with torch.no_grad():  # two passes over (B, C, ...): (t_b + n t_s) + t_n s
            ts, nd = ts.reshape(shape), n.detach()
            th = nd * ts if tb is None else torch.addcmul(tb.reshape(shape), nd, ts)
            th.addcmul_(tn, s.detach().reshape(shape))
        return (h, th) if b is None else (h + b.reshape(shape), th)


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V with plain ops, so forward AD works (O(N^2) memory).

    q, k, v: (B, heads, N, d) -> (B, heads, N, d).
    """
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # (B, h, N, N)
    return scores.softmax(dim=-1) @ v

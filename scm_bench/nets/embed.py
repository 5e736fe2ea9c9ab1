"""Time conditioning: the time transform c_noise(t) and the time embedding (sCM Sec. 4.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from scm_bench.core.choices import Choices, check
from scm_bench.nets.jvp import Pair, linear_jvp, silu_jvp

TimeTransform = Literal["identity", "edm", "scale1000"]
# Time embeddings: fn(dim, fourier_scale) -> a module with forward(c) -> (B, dim) and
# forward_jvp(c, tc) -> (e, t_e); a plugin registers more.
TIME_EMBEDDINGS = Choices("net.time_embedding")
TimeEmbeddingKind = TIME_EMBEDDINGS.alias


def time_transform(t: torch.Tensor, kind: TimeTransform, sigma_d: float) -> torch.Tensor:
    """c_noise(t): identity t (paper) | EDM log(sigma_d tan t) / 4 | 1000 t.

    The EDM transform has dc/dt = 1 / (4 sin t cos t), which blows up as t -> pi/2 (and 0).
    """
    if kind == "identity":
        return t
    if kind == "edm":
        return torch.log(sigma_d * torch.tan(t).clamp_min(1e-20)) / 4
    check(kind, TimeTransform, "net.time_transform")
    return 1000 * t  # scale1000


def time_transform_jvp(
    t: torch.Tensor, tt: torch.Tensor, kind: TimeTransform, sigma_d: float
) -> Pair:
    """(c_noise(t), c_noise'(t) t_t) with the analytic derivative:

    identity: 1 | edm: (1 + tan^2 t) / (4 tan t) = 1 / (4 sin t cos t), 0 where the clamp binds |
    scale1000: 1000.  t, tt: (B,).
    """
    c = time_transform(t, kind, sigma_d)
    if kind == "identity":
        return c, tt
    if kind == "scale1000":
        return c, 1000 * tt
    with torch.no_grad():  # edm
        tan = torch.tan(t)
        dc = (1 + tan**2) / (4 * tan.clamp_min(1e-20))
        return c, torch.where(tan >= 1e-20, dc * tt, torch.zeros_like(tt))


class TimeEmbedding(nn.Module):
    """Sinusoidal features [cos(c f_i), sin(c f_i)] of c_noise at fixed frequencies f (B, dim);
    the derivative of a feature is bounded by |f_i|."""

    def __init__(self, freqs: torch.Tensor):
        super().__init__()
        self.register_buffer("freqs", freqs)  # (dim/2,)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        arg = c[:, None] * self.freqs[None].to(c.dtype)  # (B, dim/2)
        return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)  # (B, dim)

    def forward_jvp(self, c: torch.Tensor, tc: torch.Tensor) -> Pair:
        """d/dc [cos(c f), sin(c f)] = [-sin(c f) f, cos(c f) f]; c, tc: (B,) -> (B, dim)."""
        freqs = self.freqs[None].to(c.dtype)  # (1, dim/2)
        arg = c[:, None] * freqs  # (B, dim/2)
        cos, sin = torch.cos(arg), torch.sin(arg)
        with torch.no_grad():
            targ = tc[:, None] * freqs  # (B, dim/2)
            tout = torch.cat([-sin * targ, cos * targ], dim=1)
        return torch.cat([cos, sin], dim=1), tout


@TIME_EMBEDDINGS.register("positional", "sinusoidal, f_i = 10000^(-i/(dim/2)) (paper)")
def positional(dim: int, scale: float) -> TimeEmbedding:
    """Positional embedding (max_positions 1e4, paper): f_i = 10000^(-i / (dim/2)), |f| <= 1."""
    half = dim // 2
    return TimeEmbedding((1 / 10000) ** (torch.arange(half, dtype=torch.float32) / half))


@TIME_EMBEDDINGS.register("fourier", "random Fourier features, f_i ~ 2 pi N(0, scale^2)")
def fourier(dim: int, scale: float) -> TimeEmbedding:
    """Random Fourier features: f_i = 2 pi scale n_i, n_i ~ N(0, 1), fixed (not learned, seed 0,
    the same for every trial seed); the derivative grows like 2 pi scale."""
    gen = torch.Generator().manual_seed(0)
    return TimeEmbedding(2 * math.pi * scale * torch.randn(dim // 2, generator=gen))


@dataclass(frozen=True)
class CondConfig:
    """How every net is conditioned on time and labels, and its adaptive norm (spec: ``net.*``
    time switches; sigma_d and classes come from the data)."""

    sigma_d: float = 0.5
    emb_dim: int = 128  # width of the time embedding
    time_transform: TimeTransform = "identity"  # c_noise(t)
    time_embedding: TimeEmbeddingKind = "positional"
    fourier_scale: float = 16.0  # std of the Fourier frequencies
    adagn: str = "double"  # layers.AdaGN: double | single | scale
    dropout: float = 0.0  # inside blocks
    num_classes: int = 0  # 0 = unconditional


class Conditioning(nn.Module):
    """c_noise(t) -> embedding -> 2-layer MLP, plus an optional class embedding (null = C)."""

    def __init__(self, cfg: CondConfig):
        super().__init__()
        emb_dim = cfg.emb_dim
        self.transform, self.sigma_d = cfg.time_transform, cfg.sigma_d
        self.num_classes = num_classes = cfg.num_classes
        self.embed = TIME_EMBEDDINGS.get(cfg.time_embedding)(emb_dim, cfg.fourier_scale)
        self.mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None

    def forward(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        e = self.mlp(self.embed(time_transform(t, self.transform, self.sigma_d)))  # (B, E)
        if self.label is not None:
            if y is None:
                y = torch.full((t.shape[0],), self.num_classes, device=t.device)
            e = e + self.label(y)
        return torch.nn.functional.silu(e)

    def forward_jvp(self, t: torch.Tensor, tt: torch.Tensor, y: torch.Tensor | None) -> Pair:
        """(e, t_e) for time tangent tt (B,); labels carry no tangent. -> (B, E) each."""
        c, tc = time_transform_jvp(t, tt, self.transform, self.sigma_d)  # (B,)
        h, th = self.embed.forward_jvp(c, tc)  # (B, E)
        h, th = linear_jvp(self.mlp[0], h, th)
        h, th = silu_jvp(h, th)
        e, te = linear_jvp(self.mlp[2], h, th)
        if self.label is not None:
            if y is None:
                y = torch.full((t.shape[0],), self.num_classes, device=t.device)
            e = e + self.label(y)
        return silu_jvp(e, te)

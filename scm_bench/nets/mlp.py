"""Residual MLP for 2-D toy data, with the same time and AdaGN switches as the image nets."""

from __future__ import annotations

import torch
from torch import nn

from scm_bench.nets.embed import CondConfig, Conditioning
from scm_bench.nets.jvp import Pair, dropout_jvp, linear_jvp, silu_jvp
from scm_bench.nets.layers import AdaNorm


class MLPBlock(nn.Module):
    """h + Linear(dropout(SiLU(Linear(SiLU(AdaNorm(h, e))))))."""

    def __init__(self, width: int, emb_dim: int, adagn: str, dropout: float):
        super().__init__()
        self.norm = AdaNorm(width, emb_dim, adagn, kind="layer")
        self.fc1, self.fc2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        a = self.fc1(nn.functional.silu(self.norm(h, e)))
        return h + self.fc2(self.drop(nn.functional.silu(a)))

    def forward_jvp(self, h: torch.Tensor, th: torch.Tensor, e: torch.Tensor, te: torch.Tensor):
        """``forward`` on (primal, tangent) pairs; one dropout mask for both. (B, W) each."""
        a, ta = silu_jvp(*self.norm.forward_jvp(h, th, e, te))
        a, ta = silu_jvp(*linear_jvp(self.fc1, a, ta))
        a, ta = linear_jvp(self.fc2, *dropout_jvp(self.drop, a, ta))
        return h + a, th + ta


class MLP(nn.Module):
    """F(x, t, y) for x of shape (B, dim)."""

    def __init__(
        self,
        dim: int,
        cond: CondConfig = CondConfig(),
        width: int = 128,
        depth: int = 4,
    ):
        super().__init__()
        emb_dim, adagn, dropout = cond.emb_dim, cond.adagn, cond.dropout
        self.num_classes = cond.num_classes
        self.cond = Conditioning(cond)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(MLPBlock(width, emb_dim, adagn, dropout) for _ in range(depth))
        self.out_norm = AdaNorm(width, emb_dim, adagn, kind="layer")
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        e = self.cond(t, y)  # (B, E)
        h = self.inp(x)  # (B, W)
        for block in self.blocks:
            h = block(h, e)
        return self.out(nn.functional.silu(self.out_norm(h, e)))  # (B, dim)

    def forward_jvp(
        self,
        x: torch.Tensor,
        tx: torch.Tensor,
        t: torch.Tensor,
        tt: torch.Tensor,
        y: torch.Tensor | None = None,
    ) -> Pair:
        """(F(x, t, y), J_x F t_x + dF/dt t_t) in one pass (fast JVP, see ``nets.jvp``)."""
        e, te = self.cond.forward_jvp(t, tt, y)  # (B, E)
        h, th = linear_jvp(self.inp, x, tx)  # (B, W)
        for block in self.blocks:
            h, th = block.forward_jvp(h, th, e, te)
        h, th = silu_jvp(*self.out_norm.forward_jvp(h, th, e, te))
        return linear_jvp(self.out, h, th)  # (B, dim)

"""A small DiT (Peebles & Xie 2023) for images, with the time / AdaGN / attention switches.

F(x, t, y): patchify -> + 2-D sin-cos positions -> blocks of
    h = h + Attn(AdaNorm(h, e)),  h = h + MLP(AdaNorm(h, e))
-> AdaNorm -> zero-init linear -> unpatchify. e is the ``Conditioning`` embedding of (t, y).
AdaNorm is the U-Net's (double / single / scale) with LayerNorm over tokens, and attention goes
through ``attend`` (math attention or the fused flash JVP), never through SDPA, which has no
forward-mode AD. ``forward_jvp`` is the same walk on (primal, tangent) pairs, the one-pass fast
JVP of ``scm_bench.nets.jvp``.
"""

from __future__ import annotations

import torch
from torch import nn

from scm_bench.nets.attend import attention_jvp
from scm_bench.nets.embed import CondConfig, Conditioning
from scm_bench.nets.jvp import Pair, conv_jvp, dropout_jvp, gelu_tanh_jvp, linear_jvp
from scm_bench.nets.layers import AdaNorm, math_attention


def sincos_2d(width: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos positions (MAE / DiT): half the channels encode rows, half columns.

    Per axis, positions p get [sin(p w_i), cos(p w_i)], w_i = 10000^(-i / (width/4)).
    Returns (grid * grid, width), row-major over the (grid, grid) patches.
    """
    if width % 4:
        raise ValueError(f"net.width must be divisible by 4 for 2-D positions, got {width}")
    freqs = 10000 ** -(torch.arange(width // 4, dtype=torch.float64) / (width // 4))  # (W/4,)
    pos = torch.arange(grid, dtype=torch.float64)
    arg = pos[:, None] * freqs[None]  # (grid, W/4)
    axis = torch.cat([arg.sin(), arg.cos()], dim=1)  # (grid, W/2)
    rows = axis[:, None, :].expand(grid, grid, -1)  # (grid, grid, W/2): the patch row
    cols = axis[None, :, :].expand(grid, grid, -1)  # (grid, grid, W/2): the patch column
    return torch.cat([rows, cols], dim=-1).reshape(grid * grid, width).float()  # (N, W)


class Attention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C) with a pluggable ``attend`` op."""

    def __init__(self, width: int, heads: int, attend=math_attention):
        super().__init__()
        if width % heads:
            raise ValueError(f"net.width ({width}) must be divisible by net.heads ({heads})")
        self.heads, self.attend = heads, attend
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, N, 3C) -> q, k, v, each (B, h, N, C/h)."""
        b, n, c3 = qkv.shape
        qkv = qkv.reshape(b, n, 3, self.heads, c3 // (3 * self.heads))  # (B, N, 3, h, C/h)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attend(*self.split_heads(self.qkv(x)))  # (B, h, N, C/h)
        return self.proj(a.transpose(1, 2).flatten(2))  # (B, N, C)

    def forward_jvp(self, x: torch.Tensor, tx: torch.Tensor) -> Pair:
        qkv, tqkv = linear_jvp(self.qkv, x, tx)  # (B, N, 3C) each
        a, ta = attention_jvp(self.attend, *self.split_heads(qkv), *self.split_heads(tqkv))
        return linear_jvp(self.proj, a.transpose(1, 2).flatten(2), ta.transpose(1, 2).flatten(2))


class DiTBlock(nn.Module):
    """h + Attn(AdaNorm(h, e)), then h + MLP(AdaNorm(h, e)); MLP = fc2(drop(GELU(fc1(.)))), 4x."""

    def __init__(self, width: int, heads: int, emb_dim: int, adagn: str, dropout: float, attend):
        super().__init__()
        self.norm1 = AdaNorm(width, emb_dim, adagn, kind="layer")
        self.attn = Attention(width, heads, attend)
        self.norm2 = AdaNorm(width, emb_dim, adagn, kind="layer")
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h, e))
        m = nn.functional.gelu(self.fc1(self.norm2(h, e)), approximate="tanh")
        return h + self.fc2(self.drop(m))

    def forward_jvp(self, h: torch.Tensor, th: torch.Tensor, e: torch.Tensor, te: torch.Tensor):
        a, ta = self.attn.forward_jvp(*self.norm1.forward_jvp(h, th, e, te))
        h, th = h + a, th + ta
        m, tm = gelu_tanh_jvp(*linear_jvp(self.fc1, *self.norm2.forward_jvp(h, th, e, te)))
        m, tm = linear_jvp(self.fc2, *dropout_jvp(self.drop, m, tm))
        return h + m, th + tm


class DiT(nn.Module):
    """F(x, t, y) for images (B, C, H, W) -> (B, C, H, W); H = W = resolution, patch | H."""

    def __init__(
        self,
        channels: int,
        resolution: int,
        cond: CondConfig = CondConfig(),
        width: int = 128,  # token channels
        depth: int = 4,  # transformer blocks
        patch_size: int = 2,
        heads: int = 4,
        attend=math_attention,  # attention op on (B, heads, N, d), e.g. attend.make_attend
    ):
        super().__init__()
        if resolution % patch_size:
            raise ValueError(
                f"net.patch_size ({patch_size}) must divide the resolution ({resolution})"
            )
        emb_dim, adagn, dropout = cond.emb_dim, cond.adagn, cond.dropout
        self.num_classes, self.channels, self.patch = cond.num_classes, channels, patch_size
        self.grid = resolution // patch_size
        self.cond = Conditioning(cond)
        self.patchify = nn.Conv2d(channels, width, patch_size, stride=patch_size)
        self.register_buffer("pos", sincos_2d(width, self.grid), persistent=False)  # (N, W)
        self.blocks = nn.ModuleList(
            DiTBlock(width, heads, emb_dim, adagn, dropout, attend) for _ in range(depth)
        )
        self.out_norm = AdaNorm(width, emb_dim, adagn, kind="layer")
        self.out = nn.Linear(width, patch_size * patch_size * channels)
        nn.init.zeros_(self.out.weight)  # F starts at 0, as in the U-Net's conv_out
        nn.init.zeros_(self.out.bias)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, W, g, g) patch embeddings -> (B, N = g*g, W) tokens, row-major."""
        return x.flatten(2).transpose(1, 2)

    def unpatchify(self, h: torch.Tensor) -> torch.Tensor:
        """(B, N, p*p*C) -> (B, C, H, W), H = W = g*p."""
        b, p, g = h.shape[0], self.patch, self.grid
        h = h.reshape(b, g, g, p, p, self.channels)  # (B, g, g, p, p, C)
        return h.permute(0, 5, 1, 3, 2, 4).reshape(b, self.channels, g * p, g * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        e = self.cond(t, y)  # (B, E)
        h = self.tokens(self.patchify(x)) + self.pos.to(x.dtype)  # (B, N, W)
        for block in self.blocks:
            h = block(h, e)
        return self.unpatchify(self.out(self.out_norm(h, e)))  # (B, C, H, W)

    def forward_jvp(
        self,
        x: torch.Tensor,
        tx: torch.Tensor,
        t: torch.Tensor,
        tt: torch.Tensor,
        y: torch.Tensor | None = None,
    ) -> Pair:
        """(F(x, t, y), J_x F t_x + dF/dt t_t) in one pass (fast JVP, see ``nets.jvp``): the
        primal keeps its autograd graph, the tangent has none."""
        e, te = self.cond.forward_jvp(t, tt, y)  # (B, E)
        h, th = conv_jvp(self.patchify, x, tx)  # (B, W, g, g)
        h, th = self.tokens(h) + self.pos.to(x.dtype), self.tokens(th)  # (B, N, W)
        for block in self.blocks:
            h, th = block.forward_jvp(h, th, e, te)
        h, th = linear_jvp(self.out, *self.out_norm.forward_jvp(h, th, e, te))  # (B, N, p*p*C)
        return self.unpatchify(h), self.unpatchify(th)

"""A small U-Net in the EDM2 spirit for images, with the time / AdaGN / attention switches."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from scm_bench.core.choices import check
from scm_bench.nets.attend import attention_jvp
from scm_bench.nets.embed import CondConfig, Conditioning
from scm_bench.nets.jvp import (
    Pair,
    apply_linear_op,
    conv_jvp,
    dropout_jvp,
    norm_jvp,
    silu_jvp,
)
from scm_bench.nets.layers import AdaNorm, math_attention

# Which norms of a residual block see the time embedding: both (norm1 and norm2) | second (norm1
# is a plain GroupNorm; one embedding projection per block, as in DDPM++ and EDM2's blocks).
BlockCond = Literal["both", "second"]


class PlainNorm(nn.Module):
    """GroupNorm without affine that ignores the embedding (``block_cond: second``'s norm1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(8, channels), channels, affine=False, eps=1e-5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def forward_jvp(self, x: torch.Tensor, tx: torch.Tensor, e: torch.Tensor, te: torch.Tensor):
        return norm_jvp(self.norm, x, tx)


class ResBlock(nn.Module):
    """skip(x) + conv(dropout(SiLU(AdaNorm(conv(SiLU(AdaNorm(x, e))), e))))."""

    def __init__(
        self, cin: int, cout: int, emb_dim: int, adagn: str, dropout: float, cond_first=True
    ):
        super().__init__()
        self.norm1 = AdaNorm(cin, emb_dim, adagn) if cond_first else PlainNorm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = AdaNorm(cout, emb_dim, adagn)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x, e)))
        h = self.conv2(self.drop(nn.functional.silu(self.norm2(h, e))))
        return self.skip(x) + h

    def forward_jvp(self, x: torch.Tensor, tx: torch.Tensor, e: torch.Tensor, te: torch.Tensor):
        """``forward`` on (primal, tangent) pairs; one dropout mask for both."""
        h, th = conv_jvp(self.conv1, *silu_jvp(*self.norm1.forward_jvp(x, tx, e, te)))
        h, th = silu_jvp(*self.norm2.forward_jvp(h, th, e, te))
        h, th = conv_jvp(self.conv2, *dropout_jvp(self.drop, h, th))
        if isinstance(self.skip, nn.Conv2d):
            x, tx = conv_jvp(self.skip, x, tx)
        return x + h, tx + th


class AttnBlock(nn.Module):
    """x + proj(attention(q, k, v)) over the H*W positions, ``heads`` heads."""

    def __init__(self, channels: int, emb_dim: int, adagn: str, heads: int, attend=math_attention):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.norm = AdaNorm(channels, emb_dim, adagn)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x, e)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-2, -1).unbind(1)  # each (B, heads, HW, C/heads)
        a = self.attend(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.proj(a.transpose(-2, -1).reshape(b, c, h, w))

    def forward_jvp(self, x: torch.Tensor, tx: torch.Tensor, e: torch.Tensor, te: torch.Tensor):
        """``forward`` on (primal, tangent) pairs (attention tangent: ``attention_jvp``)."""
        b, c, h, w = x.shape
        qkv, tqkv = conv_jvp(self.qkv, *self.norm.forward_jvp(x, tx, e, te))
        split = lambda z: z.reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-2, -1)
        qkv, tqkv = split(qkv).unbind(1), split(tqkv).unbind(1)  # each (B, heads, HW, C/heads)
        a, ta = attention_jvp(self.attend, *qkv, *tqkv)  # (B, heads, HW, C/heads)
        merge = lambda z: z.transpose(-2, -1).reshape(b, c, h, w)
        a, ta = conv_jvp(self.proj, merge(a), merge(ta))
        return x + a, tx + ta


def layer_jvp(layer: nn.Module, h: torch.Tensor, th: torch.Tensor, e, te) -> Pair:
    """A U-Net layer on (primal, tangent): blocks take the embedding, resampling does not."""
    if isinstance(layer, (ResBlock, AttnBlock)):
        return layer.forward_jvp(h, th, e, te)
    return apply_linear_op(layer, h, th)  # AvgPool2d / Upsample: linear, parameter-free


class UNet(nn.Module):
    """F(x, t, y) for images (B, C, H, W); H and W divisible by 2^(levels-1)."""

    def __init__(
        self,
        channels: int,
        resolution: int,
        cond: CondConfig = CondConfig(),
        width: int = 32,
        depth: int = 1,  # residual blocks per level
        channel_mult: tuple[int, ...] = (1, 2),
        attn_resolutions: tuple[int, ...] = (4,),
        heads: int = 4,
        attend=math_attention,  # attention op on (B, heads, N, d)
        block_cond: BlockCond = "both",  # which block norms see the embedding
    ):
        super().__init__()
        emb_dim, adagn, dropout = cond.emb_dim, cond.adagn, cond.dropout
        self.num_classes = cond.num_classes
        self.cond = Conditioning(cond)
        check(block_cond, BlockCond, "net.block_cond")
        first = block_cond == "both"
        block = lambda cin, cout: ResBlock(cin, cout, emb_dim, adagn, dropout, first)
        attn = lambda ch: AttnBlock(ch, emb_dim, adagn, heads, attend)
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)

        # Encoder: depth blocks per level, attention at attn_resolutions, 2x average pooling.
        self.enc, skips, ch, res = nn.ModuleList(), [width], width, resolution
        for level, mult in enumerate(channel_mult):
            for _ in range(depth):
                self.enc.append(block(ch, width * mult))
                ch = width * mult
                if res in attn_resolutions:
                    self.enc.append(attn(ch))
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.enc.append(nn.AvgPool2d(2))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList([block(ch, ch), attn(ch), block(ch, ch)])

        # Decoder: depth + 1 blocks per level, each eating one skip, 2x nearest upsampling.
        self.dec = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(depth + 1):
                self.dec.append(block(ch + skips.pop(), width * mult))
                ch = width * mult
                if res in attn_resolutions:
                    self.dec.append(attn(ch))
            if level > 0:
                self.dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
                res *= 2
        self.out_norm = AdaNorm(ch, emb_dim, adagn)
        self.conv_out = nn.Conv2d(ch, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        e = self.cond(t, y)  # (B, E)
        h = self.conv_in(x)  # (B, W, H, W)
        skips = [h]
        for layer in self.enc:
            if isinstance(layer, AttnBlock):
                skips[-1] = h = layer(h, e)  # the skip is taken after the level's attention
            else:
                h = layer(h, e) if isinstance(layer, ResBlock) else layer(h)
                skips.append(h)
        for layer in self.mid:
            h = layer(h, e)
        for layer in self.dec:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), e)
            elif isinstance(layer, AttnBlock):
                h = layer(h, e)
            else:
                h = layer(h)
        return self.conv_out(nn.functional.silu(self.out_norm(h, e)))

    def forward_jvp(
        self,
        x: torch.Tensor,
        tx: torch.Tensor,
        t: torch.Tensor,
        tt: torch.Tensor,
        y: torch.Tensor | None = None,
    ) -> Pair:
        """(F(x, t, y), J_x F t_x + dF/dt t_t) in one pass (fast JVP, see ``nets.jvp``).

        The same walk as ``forward``, on (primal, tangent) pairs; skips hold pairs too.
        """
        e, te = self.cond.forward_jvp(t, tt, y)  # (B, E)
        h, th = conv_jvp(self.conv_in, x, tx)  # (B, W, H, W)
        skips = [(h, th)]
        for layer in self.enc:
            h, th = layer_jvp(layer, h, th, e, te)
            if isinstance(layer, AttnBlock):
                skips[-1] = (h, th)  # the skip is taken after the level's attention
            else:
                skips.append((h, th))
        for layer in self.mid:
            h, th = layer.forward_jvp(h, th, e, te)
        for layer in self.dec:
            if isinstance(layer, ResBlock):
                s, ts = skips.pop()
                h, th = torch.cat([h, s], dim=1), torch.cat([th, ts], dim=1)
            h, th = layer_jvp(layer, h, th, e, te)
        h, th = silu_jvp(*self.out_norm.forward_jvp(h, th, e, te))
        return conv_jvp(self.conv_out, h, th)

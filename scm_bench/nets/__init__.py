"""Networks F(x, t, y) with the paper's switchable parts, built from a trial spec."""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from scm_bench.nets.attend import make_attend
from scm_bench.nets.dit import DiT
from scm_bench.nets.mlp import MLP
from scm_bench.nets.unet import UNet

Arch = Literal["mlp", "unet", "dit"]


def build_net(spec, shape: tuple[int, ...], sigma_d: float, num_classes: int = 0) -> nn.Module:
    """The backbone ``spec.net.arch`` for samples of ``shape`` (a TrialSpec's net section)."""
    n = spec.net
    cond = n.conditioning(sigma_d, num_classes)
    if n.arch == "mlp":
        if len(shape) != 1:
            raise ValueError(f"net.arch=mlp needs vector data, got sample shape {shape}")
        return MLP(shape[0], cond, width=n.width, depth=n.depth)
    if len(shape) != 3:
        raise ValueError(f"net.arch={n.arch} needs image data, got sample shape {shape}")
    attend = make_attend(spec.attention.kernel, spec.attention.block_size)
    images = dict(width=n.width, depth=n.depth, heads=n.heads, attend=attend)
    if n.arch == "unet":
        return UNet(
            *shape[:2], cond, channel_mult=n.channel_mult, attn_resolutions=n.attn_resolutions,
            block_cond=n.block_cond, **images,
        )  # fmt: skip
    if n.arch == "dit":
        return DiT(*shape[:2], cond, patch_size=n.patch_size, **images)
    raise ValueError(f"net.arch must be one of {', '.join(get_args(Arch))}; got {n.arch!r}")

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
    common = dict(
        sigma_d=sigma_d,
        emb_dim=n.emb_dim,
        time_transform=n.time_transform,
        time_embedding=n.time_embedding,
        fourier_scale=n.fourier_scale,
        adagn=n.adagn,
        dropout=n.dropout,
        num_classes=num_classes,
    )
    if n.arch == "mlp":
        if len(shape) != 1:
            raise ValueError(f"net.arch=mlp needs vector data, got sample shape {shape}")
        return MLP(shape[0], width=n.width, depth=n.depth, **common)
    if len(shape) != 3:
        raise ValueError(f"net.arch={n.arch} needs image data, got sample shape {shape}")
    attend = make_attend(spec.attention.kernel, spec.attention.block_size)
    if n.arch == "unet":
        return UNet(
            shape[0],
            shape[1],
            width=n.width,
            depth=n.depth,
            channel_mult=n.channel_mult,
            attn_resolutions=n.attn_resolutions,
            heads=n.heads,
            attend=attend,
            **common,
        )
    if n.arch == "dit":
        return DiT(
            shape[0],
            shape[1],
            width=n.width,
            depth=n.depth,
            patch_size=n.patch_size,
            heads=n.heads,
            attend=attend,
            **common,
        )
    raise ValueError(f"net.arch must be one of {', '.join(get_args(Arch))}; got {n.arch!r}")

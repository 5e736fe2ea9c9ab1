"""Networks F(x, t, y) with the paper's switchable parts, built from a trial spec."""

from __future__ import annotations

from torch import nn

from scm_bench.core.choices import Choices
from scm_bench.nets.attend import make_attend
from scm_bench.nets.dit import DiT
from scm_bench.nets.mlp import MLP
from scm_bench.nets.unet import UNet

# Backbones: fn(spec, shape, cond) -> nn.Module F(x, t, y) (a TrialSpec, the shape of one
# sample, the CondConfig of net.*); a plugin registers more.
ARCHS = Choices("net.arch")
Arch = ARCHS.alias


def build_net(spec, shape: tuple[int, ...], sigma_d: float, num_classes: int = 0) -> nn.Module:
    """The backbone ``spec.net.arch`` for samples of ``shape`` (a TrialSpec's net section)."""
    cond = spec.net.conditioning(sigma_d, num_classes)
    return ARCHS.get(spec.net.arch)(spec, shape, cond)


@ARCHS.register("mlp", "residual MLP for vector data (toy2d)")
def mlp(spec, shape: tuple[int, ...], cond) -> nn.Module:
    if len(shape) != 1:
        raise ValueError(f"net.arch=mlp needs vector data, got sample shape {shape}")
    return MLP(shape[0], cond, width=spec.net.width, depth=spec.net.depth)


def _image_args(spec, shape: tuple[int, ...]) -> dict:
    n = spec.net
    if len(shape) != 3:
        raise ValueError(f"net.arch={n.arch} needs image data, got sample shape {shape}")
    attend = make_attend(spec.attention.kernel, spec.attention.block_size)
    return dict(width=n.width, depth=n.depth, heads=n.heads, attend=attend)


@ARCHS.register("unet", "EDM2-like U-Net for images")
def unet(spec, shape: tuple[int, ...], cond) -> nn.Module:
    n = spec.net
    return UNet(
        *shape[:2], cond, channel_mult=n.channel_mult, attn_resolutions=n.attn_resolutions,
        block_cond=n.block_cond, **_image_args(spec, shape),
    )  # fmt: skip


@ARCHS.register("dit", "diffusion transformer (patches, attention) for images")
def dit(spec, shape: tuple[int, ...], cond) -> nn.Module:
    return DiT(*shape[:2], cond, patch_size=spec.net.patch_size, **_image_args(spec, shape))

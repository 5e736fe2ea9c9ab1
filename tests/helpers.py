"""Small nets, weight perturbation and trial specs shared by the core, net and training tests."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import yaml

from scm_bench.nets.dit import DiT
from scm_bench.nets.embed import CondConfig
from scm_bench.nets.mlp import MLP
from scm_bench.nets.unet import UNet
from scm_bench.spec.schema import TrialSpec

SIGMA_D = 0.5
MLP_SHAPE = (8, 2)  # (B, dim)
UNET_SHAPE = (4, 1, 8, 8)  # (B, C, H, W)


def split_cond(kw: dict) -> tuple[CondConfig, dict]:
    """(CondConfig from the conditioning keywords, the net's own keywords); emb_dim 32."""
    names = set(CondConfig.__dataclass_fields__)
    cond = CondConfig(**({"sigma_d": SIGMA_D, "emb_dim": 32} | {k: v for k, v in kw.items()
                                                                  if k in names}))  # fmt: skip
    return cond, {k: v for k, v in kw.items() if k not in names}


def small_mlp(**kw) -> MLP:
    """Width 32, two blocks: cheap enough to build dozens per test file."""
    cond, kw = split_cond(kw)
    return MLP(2, cond, **(dict(width=32, depth=2) | kw))


def small_unet(**kw) -> UNet:
    """Width 16 on 8x8 with channel_mult (1, 2) and attention at 4x4 (math attention)."""
    cond, kw = split_cond(kw)
    args = dict(width=16, depth=1, channel_mult=(1, 2), heads=2)
    return UNet(1, 8, cond, attn_resolutions=(4,), **(args | kw))


def small_dit(**kw) -> DiT:
    """Width 32, two blocks, patch 2 on 8x8 (16 tokens), math attention unless ``attend``."""
    cond, kw = split_cond(kw)
    return DiT(1, 8, cond, **(dict(width=32, depth=2, patch_size=2, heads=2) | kw))


def small_net(arch: str, **kw) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """(net, batch shape) for 'mlp', 'unet' or 'dit'."""
    if arch == "mlp":
        return small_mlp(**kw), MLP_SHAPE
    if arch == "dit":
        return small_dit(**kw), UNET_SHAPE
    return small_unet(**kw), UNET_SHAPE


def perturb_(net: torch.nn.Module, std: float = 0.2, seed: int = 1) -> torch.nn.Module:
    """Add N(0, std^2) noise to every parameter in place, so zero-initialised layers (AdaNorm
    projections, the U-Net's output conv) stop making F trivially zero or t-independent."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(std * torch.randn(p.shape, generator=gen))
    return net


def expand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) broadcasting against x."""
    return t.reshape(-1, *([1] * (x.ndim - 1)))


def trigflow_batch(shape, t, seed=2, dtype=torch.float64, x_scale=1.0):
    """x0 (std x_scale * sigma_d), z (std sigma_d), x_t and dx_t/dt = cos t z - sin t x0."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=gen, dtype=dtype) * SIGMA_D * x_scale
    z = torch.randn(shape, generator=gen, dtype=dtype) * SIGMA_D
    c, s = torch.cos(expand(t, x0)), torch.sin(expand(t, x0))
    return x0, z, c * x0 + s * z, c * z - s * x0


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def deep_update(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and k in out else v
    return out


# The quickstart's base (ablations/base/toy2d.yaml): MLP 64 x 3 on the 2-D checkerboard,
# teacher 400 steps, student 200 steps, batch 256.
QUICKSTART = {
    "data": {"name": "toy2d", "variant": "checkerboard"},
    "net": {"arch": "mlp", "width": 64, "depth": 3},
    "tangent": {"warmup_steps": 50},
    "train": {
        "steps": 200,
        "batch_size": 256,
        "lr": 1e-3,
        "log_every": 10,
        "checkpoint_every": 50,
    },  # fmt: skip
    "teacher": {"steps": 400, "lr": 2e-3, "batch_size": 256},
    "eval": {"n_samples": 2000, "grid": 0},
    "device": "cpu",
}

# A few-second trial for loop mechanics (determinism, resume, divergence).
TINY = {
    "data": {"name": "toy2d", "variant": "moons"},
    "net": {"arch": "mlp", "width": 32, "depth": 2, "emb_dim": 32},
    "student": {"init": "scratch"},
    "tangent": {"warmup_steps": 10},
    "train": {"steps": 30, "batch_size": 32, "log_every": 5, "checkpoint_every": 10},
    "teacher": {"steps": 20, "batch_size": 32},
    "eval": {"n_samples": 64, "grid": 0},
    "device": "cpu",
}


def spec(base: dict, **over) -> TrialSpec:
    """A TrialSpec from a base dict with nested overrides (``net={"dropout": 0.1}``)."""
    return TrialSpec.model_validate(deep_update(base, over))


class FakeInception(torch.nn.Module):
    """clean-fid's Inception interface, (B, 3, 299, 299) -> (B, 2048): a stand-in for the
    torchscript weights file, for tests that must not download anything."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 2048)
        )

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def fake_inception_file(folder: Path) -> Path:
    """``folder/inception-2015-12-05.pt``: a scripted FakeInception where clean-fid looks."""
    from scm_bench.metrics.features import INCEPTION_FILE

    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(FakeInception()).save(str(folder / INCEPTION_FILE))
    return folder / INCEPTION_FILE


def yaml_trial_count(path: Path, seeds: list | None = None) -> int:
    """Trials a grid spec's YAML asks for, read from the file itself (not through the spec
    loader): the product of its axes' lengths, times each zip group's length, times its seeds
    (``seeds`` when given, as ``--set seeds=...`` does). The spec states its own seeds (a base's
    would need the loader's merge, which this count is meant to check)."""
    doc = yaml.safe_load(Path(path).read_text())
    grid = math.prod(len(values) for values in (doc.get("axes") or {}).values())
    zipped = math.prod(len(next(iter(group.values()))) for group in doc.get("zip") or [])
    return grid * zipped * len(seeds if seeds is not None else doc["seeds"])

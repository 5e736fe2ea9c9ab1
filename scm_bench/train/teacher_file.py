"""A pretrained teacher read from a file (``teacher.checkpoint``), as TrigFlow's F.

The file holds a state dict (name -> tensor): ``.safetensors`` (needs the safetensors package)
or a torch file read with ``weights_only=True`` (nothing is unpickled). A dict holding the state
dict under one of ``ema``, ``model``, ``state_dict``, ``net`` (scm-bench's own checkpoint.pt
keeps it under ``ema``) is opened. Keys are renamed by ``teacher.key_map`` (prefix -> prefix)
and must then match this trial's network exactly, names and shapes.

``teacher.parameterization: edm``: the file's network is EDM's raw F_theta inside the denoiser
(Karras et al. 2022, Table 1)

    D(x; sigma) = c_skip x + c_out F_theta(c_in x, c_noise),   c_noise = ln(sigma) / 4,
    c_skip = sigma_d^2 / (sigma^2 + sigma_d^2),  c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2),
    c_in = 1 / sqrt(sigma^2 + sigma_d^2).

TrigFlow's time is sigma = sigma_d tan t with x_t = cos(t) x_sigma (sCM Sec. 2.2). There
c_skip = cos^2 t, c_out = sigma_d sin t and c_in x_sigma = x_t / sigma_d, and EDM's PF-ODE
dx/dsigma = (x - D) / sigma becomes, by the chain rule,

    dx_t/dt = (cos(t) x_t - D(x_t / cos t; sigma_d tan t)) / sin t
            = -sigma_d F_theta(x_t / sigma_d, c_noise).

TrigFlow's PF-ODE is dx_t/dt = sigma_d F(x_t / sigma_d, t), so F(x, t) = -F_theta(x, ln(sigma_d
tan t) / 4): the same network with ``net.time_transform: edm`` (c_noise(t) = ln(sigma_d tan t) / 4)
and its output layer negated, a linear map, so the conversion is exact. tests/test_teacher_file.py
checks the velocity against EDM's own ODE in float64.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scm_bench.errors import RunError
from scm_bench.nets import build_net

NESTED = ("ema", "model", "state_dict", "net")  # containers a state dict may sit in
OUTPUT_LAYER = {"unet": "conv_out", "dit": "out", "mlp": "out"}  # F's last (linear) layer


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """name -> tensor from a .safetensors file or a torch file (weights_only=True)."""
    where = f"teacher.checkpoint: {path}"
    if not path.is_file():
        raise RunError(f"{where}: no such file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            msg = f"{where}: reading .safetensors needs `pip install safetensors`"
            raise RunError(msg) from None
        return load_file(str(path), device="cpu")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, or one that needs unpickling code
        kind = type(err).__name__
        raise RunError(f"{where}: not readable with weights_only=True ({kind}): save the "
                       "state dict itself (name -> tensor)") from None  # fmt: skip
    if isinstance(data, dict):
        for key in NESTED:
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise RunError(f"{where}: expected a state dict (name -> tensor) or one under {NESTED}")
    return data


def rename(state: dict[str, torch.Tensor], key_map: dict[str, str]) -> dict[str, torch.Tensor]:
    """Each key's first matching prefix in ``key_map`` replaced by its value."""
    out = {}
    for key, value in state.items():
        for old, new in key_map.items():
            if key.startswith(old):
                key = new + key.removeprefix(old)
                break
        out[key] = value
    return out


def edm_to_trigflow(state: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """EDM's raw F_theta -> TrigFlow's F = -F_theta (the output layer's weight and bias negated;
    the time input is c_noise(t) = ln(sigma_d tan t) / 4 through net.time_transform: edm)."""
    layer = OUTPUT_LAYER[arch]
    return {k: -v if k.startswith(f"{layer}.") else v for k, v in state.items()}


def check_keys(net: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """RunError naming missing, unexpected and mis-shaped keys (a few of each)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]  # fmt: skip
    problems = [f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                for label, keys in (("missing", missing), ("unexpected", extra),
                                    ("shape (file vs net)", shapes)) if keys]  # fmt: skip
    if problems:
        raise RunError(
            f"{where}: does not match net ({'; '.join(problems)}); rename keys with "
            "teacher.key_map or set net.* to the file's architecture (docs/paper-scale.md)"
        )


def load_file_teacher(spec, data, device) -> torch.nn.Module:
    """The frozen teacher F of ``spec.teacher.checkpoint`` on ``device``."""
    path = Path(spec.teacher.checkpoint).expanduser()
    if spec.teacher.parameterization == "edm" and spec.net.time_transform != "edm":
        raise RunError(
            "teacher.parameterization: edm needs net.time_transform: edm (the network's time "
            f"input is EDM's c_noise = ln(sigma) / 4); got {spec.net.time_transform!r}"
        )
    state = rename(read_state_dict(path), spec.teacher.key_map)
    teacher = build_net(spec, data.shape, data.sigma_d, data.num_classes)
    check_keys(teacher, state, f"teacher.checkpoint: {path}")
    if spec.teacher.parameterization == "edm":
        state = edm_to_trigflow(state, spec.net.arch)
    teacher.load_state_dict(state)
    return teacher.to(device).eval().requires_grad_(False)

"""Mechanism probes of a finished trial at fixed weights (columns: ``scm_bench.metrics.probes``).

On the EMA network, one fixed held-out batch and fixed noise (seeded apart from the trial, so
every variant and seed sees the same inputs), at each time of ``probe_times``:
- dfdt: sin(t) x RMS of dF/dt along t alone (the explicit time derivative, sCM Fig. 4);
- g_norm: ||g||, the raw tangent of the trial's own objective with warmup done (students);
- fp16_nonfinite: share of non-finite elements of the JVP run in float16 with the trial's
  ordering (students; sCM Sec. 5.1). On a CPU only for trials whose own JVP runs in low
  precision: float16 convolutions have no fast CPU kernels (about 100 s for the digits U-Net,
  30x the other two probes), while on a GPU it costs what they cost.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from scm_bench import rundir
from scm_bench.core.jvp import JVPConfig, tangent_of_net
from scm_bench.core.losses import SCMLoss
from scm_bench.core.trigflow import noise
from scm_bench.metrics.probes import PROBE_BATCH, probe_times, summarize
from scm_bench.safe_files import read_json_or_none
from scm_bench.train.setup import Parts

MATCHED = ("dfdt", "g_p99", "g_max", "fp16_nonfinite")  # the scalar columns probed at steps
PROBES_AT = "probes_at.json"  # in the trial folder: matched probes survive a resume
PROBE_SEED = 777  # the probe's noise (fixed: variants and seeds share it)
DONE = 10**9  # a step far past any warmup: r = 1


def dfdt(net, x_t: torch.Tensor, t: torch.Tensor, y, sigma_d: float, cfg: JVPConfig):
    """(B,) sin(t) x RMS over elements of dF/dt(x_t / sigma_d, t) along t alone: the JVP of
    ``tangent_of_net`` with no x-tangent is cos t sin t sigma_d dF/dt."""
    _, cs_df = tangent_of_net(net, x_t, t, torch.zeros_like(x_t), sigma_d, y, cfg)
    return cs_df.flatten(1).pow(2).mean(1).sqrt() / (torch.cos(t) * sigma_d)


def fp16_nonfinite(loss: SCMLoss, net, x0, z, t, x_t, y) -> torch.Tensor:
    """(B,) share of non-finite elements of the float16 JVP with the trial's ordering."""
    dxdt = loss.dxdt(x0, z, t, x_t, y)
    cfg = replace(loss.jvp, precision="float16")
    _, df = tangent_of_net(net, x_t, t, dxdt, loss.sigma_d, y, cfg)
    return (~torch.isfinite(df)).flatten(1).float().mean(1)


def probe_batch(parts: Parts) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(x0, y, z): the first PROBE_BATCH held-out samples, their labels, seeded noise."""
    data = parts.data
    x0 = data.reference("test", PROBE_BATCH)
    y = None if data.test_y is None else data.test_y[: x0.shape[0]]
    gen = torch.Generator().manual_seed(PROBE_SEED)
    z = torch.randn(x0.shape, generator=gen) * data.sigma_d
    dev = parts.device
    return x0.to(dev), None if y is None else y.to(dev), z.to(dev)


@torch.no_grad()
def probe(parts: Parts) -> dict[str, float]:
    """Probe columns of the trial's EMA network (dfdt only for a teacher)."""
    net, loss, sd = parts.ema.eval(), parts.loss, parts.data.sigma_d
    student = isinstance(loss, SCMLoss)
    x0, y, z = probe_batch(parts)
    times = probe_times(sd)
    exact = replace(loss.jvp, precision="float32") if student else JVPConfig()  # dfdt's JVP
    names = ("dfdt", "g_norm", "fp16_nonfinite") if student else ("dfdt",)
    if student and loss.jvp.precision == "float32" and parts.device.type != "cuda":
        names = names[:2]  # no float16 probe of a float32 JVP on a CPU: the module docstring
    cells: dict[str, list] = {k: [] for k in names}
    for row in times:
        per_bin: dict[str, list] = {k: [] for k in cells}
        for value in row:
            t = torch.full((x0.shape[0],), float(value), device=x0.device)
            x_t = noise(x0, z, t)
            per_bin["dfdt"].append(dfdt(net, x_t, t, y, sd, exact))
            if student:
                _, diag = loss(net, x0, y, step=DONE, t=t, z=z)
                per_bin["g_norm"].append(diag["g_norm"])
            if "fp16_nonfinite" in per_bin:
                per_bin["fp16_nonfinite"].append(fp16_nonfinite(loss, net, x0, z, t, x_t, y))
        for k, v in per_bin.items():
            cells[k].append(torch.stack(v).double().cpu().numpy())
    return summarize({k: np.stack(v) for k, v in cells.items()})


def probe_at(parts: Parts, steps, step: int, out_dir) -> None:
    """At a step of ``eval.probe_steps`` (0: before the first step), the MATCHED probe columns
    as ``<name>_at<step>``, kept in ``out_dir/probes_at.json``. The global RNG is restored, so
    probing never changes the training that follows."""
    if step not in steps:
        return
    devices = [parts.device] if parts.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        cols = probe(parts)
    path = out_dir / PROBES_AT
    done = read_json_or_none(path, expect=dict)[0] or {}
    done |= {f"{k}_at{step}": v for k, v in cols.items() if k in MATCHED}
    rundir.write_json(path, done)


def probes_at(out_dir) -> dict[str, float]:
    """The matched probe columns this trial recorded (empty when none)."""
    return read_json_or_none(out_dir / PROBES_AT, expect=dict)[0] or {}

"""`scm-bench plan SPEC`: what a spec will cost before it runs.

Per phase (teachers, students, evaluation): FLOPs of one training step at the spec's shapes,
counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no memory, no
compute), times steps and trials (seeds included); GPU-hours on a named device at a stated
model-FLOPs utilization (MFU); and peak memory per worker. The counted pieces per network:

- forward: F(x, t, y) (no graph);
- train: forward + backward of a mean-square loss (a teacher step);
- jvp: the fast JVP pass ``forward_jvp`` (F and its tangent, no graph).

A student step (sCM Algorithm 1) is composed from them as the loss runs it: with
train.precision float32 one pass gives F_theta with its graph and the tangent (jvp + train -
forward); with a 16-bit train.precision the JVP pass (in jvp.precision) and an autocast forward
+ backward (jvp + train); sCD adds the teacher's forward. tests/test_compute_plan.py checks the
composition against the FLOPs of the real loss and its backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from scm_bench.core.sampling import ode_nfe
from scm_bench.errors import RunError
from scm_bench.nets import build_net

GPU = Literal["h100", "h200", "a100"]


@dataclass(frozen=True)
class Device:
    """Dense peak FLOP/s of one GPU (vendor data sheets, SXM parts, without sparsity)."""

    name: str
    tf32: float  # float32 training: cuDNN convolutions run in TF32 by default
    bf16: float  # bfloat16 / float16 tensor cores
    memory_gib: float


DEVICES: dict[str, Device] = {
    "h100": Device("NVIDIA H100 SXM", 494.7e12, 989.4e12, 80),
    "h200": Device("NVIDIA H200 SXM", 494.7e12, 989.4e12, 141),
    "a100": Device("NVIDIA A100 SXM 80GB", 156e12, 312e12, 80),
}
BYTES_PER_PARAM = 4 + 4 + 8 + 4  # float32 weights, gradients, Adam's two moments, EMA copy
PROBE_BATCH = 2  # FLOPs and activations are counted at this batch and scaled per sample


def data_shape(data) -> tuple[tuple[int, ...], int]:
    """(sample shape, classes) of a data section without reading the data. image_folder with
    class_cond assumes ImageNet's 1000 classes (only the label embedding depends on it)."""
    classes = 0
    if data.class_cond:
        classes = {"cifar10": 10, "digits": 10, "image_folder": 1000}.get(data.name, 0)
    shapes = {"toy2d": (2,), "digits": (1, 8, 8), "cifar10": (3, 32, 32)}
    return shapes.get(data.name, (3, data.resolution, data.resolution)), classes


@dataclass(frozen=True)
class NetCost:
    """Counted FLOPs per sample of one network, its parameters and activation bytes."""

    params: int
    forward: float
    train: float  # forward + backward
    jvp: float  # forward_jvp, no graph
    act_bytes: float  # saved for backward per sample (float32)


def _inputs(shape, classes):
    b = PROBE_BATCH
    x = torch.randn(b, *shape, device="meta")
    y = torch.zeros(b, dtype=torch.long, device="meta") if classes else None
    return x, torch.rand(b, device="meta"), y


def _count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / PROBE_BATCH


@cache
def _net_cost(spec_json: str, shape: tuple[int, ...], classes: int) -> NetCost:
    from scm_bench.spec.schema import TrialSpec

    spec = TrialSpec.model_validate_json(spec_json)
    with torch.device("meta"):
        net = build_net(spec, shape, 0.5, classes)
    x, t, y = _inputs(shape, classes)
    saved = []

    def train_step():
        hooks = torch.autograd.graph.saved_tensors_hooks(
            lambda v: saved.append(v.numel() * 4) or v, lambda v: v
        )
        with hooks:
            out = net(x, t, y)
        out.square().mean().backward()

    with torch.no_grad():
        forward = _count(lambda: net(x, t, y))
        jvp = _count(lambda: net.forward_jvp(x, x, t, t, y))
    train = _count(train_step)
    params = sum(p.numel() for p in net.parameters())
    return NetCost(params, forward, train, jvp, sum(saved) / PROBE_BATCH)


def net_cost(spec) -> NetCost:
    """The counted costs of a trial's network (cached per net section and data shape)."""
    shape, classes = data_shape(spec.data)
    return _net_cost(spec.model_dump_json(include={"net", "attention"}), shape, classes)


def step_flops(spec, cost: NetCost) -> tuple[float, float]:
    """(FLOPs per sample at 16-bit peak, FLOPs per sample at the float32 / TF32 peak) of one
    training step of this trial."""
    low = spec.train.precision != "float32"
    if not spec.is_student:
        return (cost.train, 0.0) if low else (0.0, cost.train)
    jvp_low = spec.jvp.precision in ("float16", "bfloat16")
    jvp, rest = cost.jvp, cost.train if low else cost.train - cost.forward
    rest += cost.forward if spec.distils else 0.0  # the teacher's dx/dt
    return (jvp * jvp_low + rest * low, jvp * (not jvp_low) + rest * (not low))


def sample_nfe(spec) -> int:
    """Network evaluations per generated sample over the evaluated samplers."""
    if not spec.is_student:
        return ode_nfe(spec.sampling.teacher_steps, spec.sampling.solver)
    return sum(int(name.removesuffix("step")) for name in spec.eval.samplers)


@dataclass(frozen=True)
class Phase:
    name: str
    trials: int
    steps: int
    batch: int
    params: int
    flops_step: float  # one optimizer step (the global batch)
    flops_total: float
    hours: float  # GPU-hours on the device at the MFU
    memory_gib: float  # peak per worker (estimate)


def phase(name, specs, device: Device, mfu: float, workers: int) -> Phase:
    """One phase over its trials: training, or evaluation when ``name`` is 'evaluation'."""
    hours = total = 0.0
    spec = specs[0]
    for s in specs:
        cost = net_cost(s)
        if name == "evaluation":
            n = s.eval.n_samples * s.eval.sample_seeds * sample_nfe(s)
            low, high = (0.0, cost.forward * n)  # sampling runs in float32
        else:
            low, high = (f * s.train.batch_size * s.train.steps for f in step_flops(s, cost))
        total += low + high
        hours += (low / device.bf16 + high / device.tf32) / mfu / 3600
    cost = net_cost(spec)
    per_worker = spec.train.batch_size / workers
    teacher = cost.params * 4 if spec.uses_teacher() and spec.is_student else 0
    memory = cost.params * BYTES_PER_PARAM + teacher + cost.act_bytes * per_worker
    steps = 0 if name == "evaluation" else spec.train.steps
    if name == "evaluation":  # sampling: the weights (no graph, no optimizer)
        memory = cost.params * 4
    low, high = step_flops(spec, cost)
    return Phase(name, len(specs), steps, spec.train.batch_size, cost.params,
                 (low + high) * spec.train.batch_size, total, hours, memory / 2**30)  # fmt: skip


def plan(trials, gpu: str = "h100", mfu: float = 0.4, workers: int = 1) -> list[Phase]:
    """Teachers (one per distinct teacher), students, and the evaluation of both."""
    device = DEVICES[gpu]
    teachers = {t.spec.teacher_trial().digest(): t.spec.teacher_trial() for t in trials
                if t.spec.needs_teacher()}  # fmt: skip
    students = [t.spec for t in trials]
    phases = []
    if teachers:
        phases.append(phase("teachers", list(teachers.values()), device, mfu, workers))
    phases.append(phase("students", students, device, mfu, workers))
    evaluated = students + list(teachers.values())
    phases.append(phase("evaluation", evaluated, device, mfu, workers))
    return phases


def _si(x: float) -> str:
    """1.2e15 -> '1.2P'."""
    if x <= 0:
        return "0"
    k = min(int(math.log10(x) // 3), 6)
    return f"{x / 10 ** (3 * k):.3g}{' kMGTPE'[k]}".rstrip()


def plan_lines(trials, gpu: str = "h100", mfu: float = 0.4, workers: int = 1) -> list[str]:
    """The table `scm-bench plan SPEC` prints."""
    if not 0 < mfu <= 1:
        raise RunError(f"--mfu: a model-FLOPs utilization in (0, 1], got {mfu:g}")
    device = DEVICES[gpu]
    phases = plan(trials, gpu, mfu, workers)
    out = [
        f"# compute plan on {device.name} at MFU {mfu:g} (peaks: TF32 {_si(device.tf32)}FLOP/s, "
        f"BF16 {_si(device.bf16)}FLOP/s), {workers} worker(s) per trial, memory in GiB",
        f"{'phase':11s} {'trials':>6s} {'params':>8s} {'steps':>8s} {'batch':>6s} "
        f"{'FLOP/step':>10s} {'FLOP total':>10s} {'GPU-h':>9s} {'mem/worker':>10s}",
    ]
    for p in phases:
        train = p.steps > 0  # evaluation has no steps, batch or step FLOPs
        steps, batch = (f"{p.steps:d}", f"{p.batch:d}") if train else ("-", "-")
        out.append(
            f"{p.name:11s} {p.trials:6d} {_si(p.params):>8s} {steps:>8s} {batch:>6s} "
            f"{_si(p.flops_step) if train else '-':>10s} {_si(p.flops_total):>10s} "
            f"{p.hours:9.3g} {p.memory_gib:10.3g}"
        )
    total = sum(p.hours for p in phases)
    fits = max(p.memory_gib for p in phases) <= device.memory_gib
    out.append(f"total: {total:.3g} GPU-hours; peak memory per worker "
               f"{'fits' if fits else 'EXCEEDS'} {device.memory_gib:g} GiB")  # fmt: skip
    return out


def preset_plans(gpu: str = "h100", mfu: float = 0.4) -> dict[str, dict]:
    """For `scm-bench ls ablations`: each paper preset's parameter counts and planned GPU-hours,
    with the fingerprint of its resolved trials (``spec.docs.fingerprint``)."""
    from scm_bench.spec import load_trials
    from scm_bench.spec.bundled import PAPER, bundled
    from scm_bench.spec.docs import fingerprint

    out = {}
    for name in (n for n in bundled() if n.startswith(f"{PAPER}/")):
        loaded = load_trials(name)
        phases = plan(loaded.trials, gpu, mfu, loaded.spec.resources.workers)
        out[name] = {
            "fingerprint": fingerprint(loaded.trials),
            "params": sorted({net_cost(t.spec).params for t in loaded.trials}),
            "gpu_hours": round(sum(p.hours for p in phases), 1),
            "device": gpu,
            "mfu": mfu,
        }
    return out


if __name__ == "__main__":  # python -m scm_bench.train.compute_plan > ablations/paper/plans.json
    import json

    print(json.dumps(preset_plans(), indent=2))

"""One optimizer step: the batch's random inputs, the loss in the training precision, gradients
averaged across data-parallel workers, the divergence check and the update."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from scm_bench.core.ema import ema_update
from scm_bench.core.losses import label_keep
from scm_bench.core.precision import MixedPrecision
from scm_bench.train.parallel import World
from scm_bench.train.setup import Parts


class Stopwatch:
    """Seconds spent inside ``with stopwatch():`` blocks (CUDA synchronized around each)."""

    def __init__(self, device: torch.device):
        self.cuda, self.seconds, self.used = device.type == "cuda", 0.0, False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        self.used = True
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - start


def nonfinite_grad(module: torch.nn.Module) -> str | None:
    """Name of the first parameter with a non-finite gradient, if any."""
    for name, p in module.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return name
    return None


def learning_rate(lr: float, decay_steps: int, step: int) -> float:
    """lr / sqrt(max(step / t_ref, 1)) (EDM2's inverse square root decay); constant for t_ref 0."""
    return lr if decay_steps == 0 else lr / max(step / decay_steps, 1.0) ** 0.5


def ema_decay(decay: float, step: int) -> float:
    """EMA decay with warmup: min(decay, (1 + step) / (10 + step)), so short runs track the net."""
    return min(decay, (1 + step) / (10 + step))


@dataclass(frozen=True)
class Inputs:
    """This worker's slice of a step's random inputs: x0 (b, ...), labels, t (b,), z like x0,
    and the teacher's label-dropout mask."""

    x0: torch.Tensor
    y: torch.Tensor | None
    t: torch.Tensor
    z: torch.Tensor
    keep: torch.Tensor | None


def draw_inputs(parts: Parts, gen: torch.Generator, world: World) -> Inputs:
    """The global batch (train.batch_size) drawn in the order one process always drew it (x0
    and y, t, z, then the teacher's label-dropout mask), then this worker's slice on its device:
    every worker draws the same batch, so the generators stay in step across workers."""
    x0, y = parts.data.batch(parts.spec.train.batch_size, gen)
    t, z = parts.loss.sample(x0.shape, gen)
    p = parts.loss.label_dropout  # the teacher's classifier-free guidance training
    keep = label_keep(x0.shape[0], p, gen) if y is not None and p > 0 else None

    def mine(v: torch.Tensor | None) -> torch.Tensor | None:
        return None if v is None else world.shard(v).to(parts.device)

    return Inputs(mine(x0), mine(y), mine(t), mine(z), mine(keep))


def train_step(
    parts: Parts, inp: Inputs, step: int, world: World, amp: MixedPrecision
) -> tuple[dict[str, float], dict[str, torch.Tensor], str | None]:
    """(scalar values, per-sample diagnostics of the global batch, what went non-finite or None).

    The optimizer steps only when nothing went non-finite (float16: an overflowed step is
    skipped by the loss scaler, not a divergence, while the scale stays >= 1).
    """
    spec, t0 = parts.spec, time.perf_counter()
    jvp_clock = Stopwatch(parts.device)  # the JVP pass (one pass: with F_theta)
    target = parts.ema if spec.student.target == "ema" else None  # theta^- (students)
    with amp.autocast():
        loss, diag = parts.loss(
            parts.net, inp.x0, inp.y, step=step, target=target, t=inp.t, z=inp.z,
            keep=inp.keep, timer=jvp_clock,
        )  # fmt: skip
    diag = {k: world.gather(v.detach()) for k, v in diag.items()}  # (B,) each
    mean = world.gather(loss.detach().float()).mean()  # the global batch's loss
    values = {"loss": float(mean)}

    # Gradients of the global mean loss, averaged across workers; the divergence check.
    bad, skipped = (None if torch.isfinite(mean) else "loss"), False
    params = [p for group in parts.opt.param_groups for p in group["params"]]
    if bad is None:
        parts.opt.zero_grad(set_to_none=True)
        amp.backward(loss.float().mean())
        world.average_gradients(params)
        amp.unscale_(parts.opt)
        bad = nonfinite_grad(parts.net)
        if bad is None and parts.adaptive is not None:  # w_phi is optimized too
            bad = (name := nonfinite_grad(parts.adaptive)) and f"adaptive.{name}"
        bad = f"grad:{bad}" if bad else None
        skipped = bad is not None and amp.overflow_is_skipped()  # float16 overflow
        bad = None if skipped else bad
    if bad is not None:
        if "nonfinite_tangent" in diag and diag["nonfinite_tangent"].sum() > 0:
            bad += " (non-finite tangent)"
        return values, diag, bad

    # The update (skipped by the float16 scaler after an overflow), EMA, logged values.
    grads = [p.grad for p in parts.net.parameters() if p.grad is not None]
    values["grad_norm"] = 0.0 if skipped else float(torch.nn.utils.get_total_norm(grads))
    for group in parts.opt.param_groups:
        group["lr"] = learning_rate(spec.train.lr, spec.train.lr_decay_steps, step)
    amp.step(parts.opt)
    ema_update(parts.ema, parts.net, ema_decay(spec.train.ema_decay, step))
    if parts.device.type == "cuda":
        torch.cuda.synchronize()
    values["step_time"] = time.perf_counter() - t0
    for k in ("g_norm", "jvp_norm", "nonfinite_tangent", "weight"):
        if k in diag:
            values[k] = float(diag[k].float().mean())
    if jvp_clock.used:  # continuous-time students: the JVP pass
        values["jvp_time"] = jvp_clock.seconds
    values.update(parts.loss.scalars(step))
    if amp.scaler is not None:
        values["amp_skipped"] = float(skipped)
    return values, diag, None

"""One trial: data -> net -> loss -> steps -> eval -> checkpoint, without Ray.

``train_trial`` is what ``scm-bench train`` and every Ray Tune trial call. Divergence is an
outcome: a non-finite loss or gradient stops the trial and is recorded, never raised.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch

from scm_bench import rundir
from scm_bench.core.precision import MixedPrecision
from scm_bench.spec.schema import TrialSpec
from scm_bench.train.evaluate import curve_point, evaluate
from scm_bench.train.model import export_model
from scm_bench.train.parallel import World
from scm_bench.train.probes import probe, probe_at, probes_at
from scm_bench.train.provenance import hardware, package_commit, versions
from scm_bench.train.setup import Parts, build_parts
from scm_bench.train.step import draw_inputs, train_step

__all__ = ["train_trial"]


class Window:
    """Accumulates per-step diagnostics between two history rows."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.n = 0
        self.grad_max = 0.0
        self.tbin = torch.zeros(3, rundir.T_BINS, dtype=torch.float64)  # count, sum ||g||, sum w

    def add(self, values: dict[str, float], diag: dict[str, torch.Tensor]) -> None:
        self.n += 1
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.grad_max = max(self.grad_max, values["grad_norm"])
        if "g_norm" in diag:
            b = rundir.t_bin(diag["t"].detach().cpu())
            for row, val in (
                (0, torch.ones_like(b, dtype=torch.float64)),
                (1, diag["g_norm"].cpu().double()),
                (2, diag["weight"].cpu().double()),
            ):
                self.tbin[row].index_add_(0, b, val)

    def row(self, step: int, last: dict[str, float]) -> dict:
        out = {k: v / self.n for k, v in self.sums.items()}
        out.update(step=step, grad_norm=last["grad_norm"], grad_norm_max=self.grad_max)
        count = self.tbin[0]
        if count.sum() > 0:  # per-bin means; NaN for bins no sample fell in
            means = torch.where(count > 0, self.tbin[1:] / count.clamp_min(1), float("nan"))
            out["g_norm_tbin"], out["weight_tbin"] = means.tolist()
        return out


def state_of(
    parts: Parts, step: int, gen: torch.Generator, window: Window, amp: MixedPrecision
) -> dict:
    return {
        "amp": amp.state_dict(),  # float16: the loss scale
        "step": step,
        "window": vars(window),  # the open logging window, so resumed history rows match
        "net": parts.net.state_dict(),
        "ema": parts.ema.state_dict(),
        "adaptive": parts.adaptive.state_dict() if parts.adaptive else None,
        "opt": parts.opt.state_dict(),
        "rng": torch.get_rng_state(),
        "gen": gen.get_state(),
    }


def restore(
    parts: Parts, ckpt: dict, gen: torch.Generator, window: Window, amp: MixedPrecision
) -> int:
    amp.load_state_dict(ckpt.get("amp"))
    parts.net.load_state_dict(ckpt["net"])
    parts.ema.load_state_dict(ckpt["ema"])
    if parts.adaptive is not None:
        parts.adaptive.load_state_dict(ckpt["adaptive"])
    parts.opt.load_state_dict(ckpt["opt"])
    torch.set_rng_state(ckpt["rng"])
    gen.set_state(ckpt["gen"])
    vars(window).update(ckpt.get("window", {}))
    return ckpt["step"]


class Phases:
    """Seconds per phase of a trial: ``lap(name)`` closes the phase that ends now."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated, or this process's max resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def provenance() -> dict:
    """What this trial ran on, recorded in its result.json: the commit of the package's checkout
    ('+dirty' with uncommitted changes; None when installed), package versions and hardware."""
    return {"commit": package_commit(), "versions": versions(), "hardware": hardware()}


def train_trial(
    spec: TrialSpec,
    out_dir: Path,
    teacher_dir: Path | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> dict:
    """Train and evaluate one trial in ``out_dir``; resumes from its checkpoint; returns the
    result dict also written to ``out_dir/result.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = rundir.trial_outcome(out_dir)  # None when absent or damaged (moved aside)
    if previous is not None:
        if previous.get("status") in rundir.FINISHED:  # an outcome: never redone
            return previous
        (out_dir / "result.json").unlink()  # a recorded failure: retry from the checkpoint
    rundir.write_json(out_dir / "trial.json", spec.model_dump(mode="json"))
    if spec.needs_teacher() and teacher_dir is None:  # library / `train` use: train it here
        teacher_dir = out_dir / "teacher"
        train_trial(spec.teacher_trial(), teacher_dir, on_log=on_log)
    start_wall = time.perf_counter()
    clock = Phases()

    # Setup, or resume from the last checkpoint.
    parts = build_parts(spec, teacher_dir)
    world = World.current()  # data-parallel workers (resources.workers); rank 0 owns out_dir
    world.check_batch(spec.train.batch_size, "train.batch_size")
    amp = MixedPrecision(spec.train.precision, parts.device)
    gen = torch.Generator().manual_seed(spec.seed)
    ckpt_path, hist_path = out_dir / "checkpoint.pt", out_dir / "history.jsonl"
    step, window = 0, Window()
    ckpt = world.broadcast(rundir.load_checkpoint(ckpt_path) if world.main else None)
    if ckpt is not None:
        step = restore(parts, ckpt, gen, window, amp)
    rundir.truncate_history(hist_path, step)
    clock.lap("setup")  # data, nets, the teacher's weights, the checkpoint
    result = {"status": rundir.OK, "steps_done": step, "diverged_step": None, "diverged_what": None}

    # Training steps (matched probes at eval.probe_steps, 0: the initial weights).
    matched = spec.eval.probe_steps if spec.eval.probe and world.main else ()
    if step == 0:
        probe_at(parts, matched, step, out_dir)
    parts.net.train()
    while step < spec.train.steps:
        step += 1
        values, diag, bad = train_step(parts, draw_inputs(parts, gen, world), step, world, amp)
        if bad is not None:
            result.update(status=rundir.DIVERGED, diverged_step=step, diverged_what=bad)
            break
        window.add(values, diag)
        probe_at(parts, matched, step, out_dir)

        # Logging and checkpointing (on_log sees a row once its step's checkpoint is saved).
        row = None
        if step % spec.train.log_every == 0 or step == spec.train.steps:
            row = window.row(step, values)
            every = spec.eval.curve_every
            if every and step % every == 0 and world.main:
                row.update(curve_point(parts))  # sample quality against step
            rundir.append_history(hist_path, row)
            window = Window()
        if step % spec.train.checkpoint_every == 0 or step == spec.train.steps:
            rundir.save_checkpoint(ckpt_path, state_of(parts, step, gen, window, amp))
        if row is not None and on_log is not None:
            on_log(row)
    result["steps_done"] = step if result["status"] == rundir.OK else step - 1
    clock.lap("train")  # the steps, with their logging and checkpoints

    # Evaluation of a finished trial.
    if result["status"] == rundir.OK and world.main:  # rank 0 evaluates for all workers
        result["metrics"] = evaluate(parts, out_dir)
        export_model(parts, out_dir / rundir.MODEL_FILE)  # the sampling net: load_model()
    clock.lap("evaluate")  # samples, sample metrics, grids, the exported model
    if spec.eval.probe and world.main:  # a diverged trial too: its EMA weights are finite
        result["metrics"] = result.get("metrics", {}) | probe(parts) | probes_at(out_dir)
    clock.lap("probe")
    result["peak_mem_mb"] = peak_memory_mb(parts.device)
    result["wall_time"] = time.perf_counter() - start_wall
    result["phases"] = clock.seconds  # where the wall time went (benchmarks/trial_overhead.py)
    result["device"] = str(parts.device)
    result.update(provenance())
    rundir.write_json(out_dir / "result.json", result)
    return result

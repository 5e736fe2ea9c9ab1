"""Measured training steps of a spec's phases against its compute plan, as Markdown rows.

    python benchmarks/preset_steps.py paper/cifar10 --device cuda --steps 100 \
        --set train.batch_size=128 [--synthetic]

For each distinct network x phase of the spec (a teacher, then each student method, the first
trial of each): ``--steps`` training steps (loss, backward, Adam, EMA) after 3 warm-up steps;
the median step time (CUDA: wall; CPU: this process's CPU time), samples per second, peak
memory (CUDA max allocated, or this process's max RSS on the CPU), the plan's FLOPs per step
(``scm-bench plan``) and the FLOP/s achieved. The last column, on CUDA: the MFU against the
device's dense peak (BF16 for a 16-bit train.precision, else TF32); on the CPU: measured /
planned step time with the plan's peak replaced by the float32 matmul FLOP/s measured here
(the factor docs/paper-scale.md records). ``--synthetic``: data.root is a new temporary folder
of random CIFAR-10 batches or class folders of PNGs, so nothing is downloaded (timing only).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scm_bench.core.precision import MixedPrecision
from scm_bench.spec import load_trials
from scm_bench.train.compute_plan import DEVICES, net_cost, step_flops
from scm_bench.train.loop import peak_memory_mb
from scm_bench.train.parallel import World
from scm_bench.train.setup import build_parts
from scm_bench.train.step import draw_inputs, train_step


def synthetic_root(data_name: str) -> str:
    """A new folder of random data in the layout data.name reads (timing only)."""
    root, rng = Path(tempfile.mkdtemp(prefix="scm-bench-synthetic-")), np.random.default_rng(0)
    if data_name == "cifar10":
        from scm_bench.data.cifar10 import TEST_FILE, TRAIN_FILES

        for name in (*TRAIN_FILES, TEST_FILE):
            batch = {b"data": rng.integers(0, 256, (256, 3072), dtype=np.uint8),
                     b"labels": [int(v) for v in rng.integers(0, 10, 256)]}  # fmt: skip
            (root / name).write_bytes(pickle.dumps(batch))
        return str(root)
    from PIL import Image

    for c in range(4):  # image_folder: class subfolders, resized to data.resolution
        (root / f"class{c}").mkdir()
        for k in range(64):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{k}.png")
    return str(root)


def clock(device: torch.device) -> float:
    """Wall seconds on CUDA; on the CPU this process's CPU seconds (``time.process_time``),
    which time the others holding a shared machine's cores does not count."""
    return time.perf_counter() if device.type == "cuda" else time.process_time()


def matmul_flops(device: torch.device, n: int = 1024, reps: int = 10) -> float:
    """Float32 matmul FLOP/s measured on this device (the CPU's stand-in for a peak)."""
    a = torch.randn(n, n, device=device)
    a @ a
    sync(device)
    start = clock(device)
    for _ in range(reps):
        a @ a
    sync(device)
    return 2 * n**3 * reps / (clock(device) - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(spec, steps: int, teacher_dir=None) -> tuple[float, float, object]:
    """(median seconds per step, peak MiB, parts) over ``steps`` steps after 3 warm-up steps."""
    parts = build_parts(spec, teacher_dir)
    if parts.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    amp, world = MixedPrecision(spec.train.precision, parts.device), World()
    gen, times = torch.Generator().manual_seed(0), []
    for step in range(1, steps + 4):
        inp = draw_inputs(parts, gen, world)
        sync(parts.device)
        start = clock(parts.device)
        _, _, bad = train_step(parts, inp, step, world, amp)
        sync(parts.device)
        if bad is not None:
            raise RuntimeError(f"step {step}: non-finite {bad}")
        if step > 3:
            times.append(clock(parts.device) - start)
    return statistics.median(times), peak_memory_mb(parts.device), parts


def row(name: str, phase: str, spec, seconds: float, mib: float, ref: float | None) -> str:
    """One Markdown row; ``ref``: the CPU's measured matmul FLOP/s (None on CUDA)."""
    cost = net_cost(spec)
    low, high = step_flops(spec, cost)
    batch = spec.train.batch_size
    flops = (low + high) * batch
    if ref is None:  # CUDA: MFU against the dense peak of the precision the step mostly uses
        gpu = next((k for k in DEVICES if k in torch.cuda.get_device_name().lower()), None)
        peak = None if gpu is None else (DEVICES[gpu].bf16 if low > high else DEVICES[gpu].tf32)
        last = "-" if peak is None else f"{flops / seconds / peak:.2f}"
    else:  # CPU: measured / planned step time at the measured matmul rate
        last = f"{seconds / (flops / ref):.2f}"
    return (f"| {name} | {phase} | {cost.params / 1e6:.1f}M | {batch} | {seconds * 1e3:.1f} | "
            f"{batch / seconds:.0f} | {mib:.0f} | {flops / 1e12:.3g} | "
            f"{flops / seconds / 1e12:.3g} | {last} |")  # fmt: skip


def phases(trials) -> list[tuple[str, object]]:
    """(phase, spec): each distinct teacher, then the first trial of each method x net."""
    out, seen = [], set()
    for t in trials:
        if t.spec.needs_teacher() and (key := t.spec.teacher_trial().digest()) not in seen:
            seen.add(key)
            out.append(("teacher", t.spec.teacher_trial()))
        key = (t.spec.method, t.spec.net.model_dump_json())
        if key not in seen:
            seen.add(key)
            out.append((t.spec.method, t.spec))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", help="a spec file or bundled name, e.g. paper/cifar10")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=20, help="timed steps per phase")
    p.add_argument("--synthetic", action="store_true", help="random data in a new temp folder")
    p.add_argument("--header", action="store_true", help="print the table header first")
    p.add_argument("--threads", type=int, default=1, help="CPU: torch intra-op threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = [*args.set, f"device={args.device}"]
    if args.synthetic:
        data = load_trials(args.spec, args.set).trials[0].spec.data.name
        sets.append(f"data.root={synthetic_root(data)}")
    trials = load_trials(args.spec, sets).trials
    device = torch.device(args.device)
    ref = None if device.type == "cuda" else matmul_flops(device)
    if args.header:
        where = torch.cuda.get_device_name() if ref is None else f"CPU ({os.cpu_count()} cores)"
        last = "MFU" if ref is None else "measured / planned"
        print(f"{where}, torch {torch.__version__}, median of {args.steps} steps\n")
        print("| spec | phase | params | batch | step ms | samples/s | peak MiB | TFLOP/step | "
              f"TFLOP/s | {last} |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    teacher_dir = None
    for phase, spec in phases(trials):
        seconds, mib, parts = timed_steps(spec, args.steps, teacher_dir if phase != "teacher"
                                          else None)  # fmt: skip
        if phase == "teacher":  # the students of this teacher start from / distil it
            teacher_dir = Path(tempfile.mkdtemp(prefix="scm-bench-teacher-"))
            torch.save({"ema": parts.ema.state_dict()}, teacher_dir / "checkpoint.pt")
        print(row(args.spec, phase, spec, seconds, mib, ref), flush=True)
        del parts
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())

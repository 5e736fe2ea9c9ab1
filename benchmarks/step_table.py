"""Print the Markdown tables of sCM training-step cost and sampling throughput vs the teacher.

    python benchmarks/step_table.py [--rounds 15] [--nets unet dit] [--threads 1]

For each net of ``test_bench_step.NETS`` (batch 128, float32, CPU): the teacher step, the sCT
step with the fast JVP, the sCT step with plain torch.func.jvp (``jvp.backend=autograd``) and
the sCD step (fast; it adds a teacher forward), each a full training step (loss, backward,
Adam). Time: the median over ``--rounds`` rounds in which the steps run interleaved, so load
from other processes hits all of them alike. Peak: the tensor memory one step allocates
(``peak_memory_bytes``: the profiler's CPU allocation records; Adam state and weights already
exist and are not counted, gradients are). Sampling: 1-step consistency sampling vs the
teacher's Heun solver (35 NFE), samples per second, medians of interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # silence the profiler's start/stop log lines
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_bench_* live next to this file

import torch  # noqa: E402
from test_bench_step import (  # noqa: E402
    BATCH,
    NETS,
    SAMPLERS,
    STEPS,
    StepBench,
    peak_memory_bytes,
    sampler,
)

from scm_bench.report.meta import cpu_name  # noqa: E402

LABELS = {
    "teacher": "teacher (TrigFlow)",
    "sct": "sCT, fast JVP",
    "sct_autograd": "sCT, torch.func.jvp",
    "scd": "sCD, fast JVP",
}


def sync() -> None:
    """Wait for queued CUDA work, so wall time covers the GPU's part of a step."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_ms(fns: dict, rounds: int, warmup: int = 2) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) of each zero-argument function over interleaved rounds.

    CPU time (``time.process_time``, this process only) does not count the time other
    processes hold the core, so on a shared machine it is the steadier of the two."""
    times = {name: [] for name in fns}
    for r in range(warmup + rounds):
        for name, fn in fns.items():
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            if r >= warmup:
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        name: tuple(statistics.median(t[i] for t in ts) * 1e3 for i in (0, 1))
        for name, ts in times.items()
    }


def step_rows(net: str, rounds: int, device: str = "cpu") -> list[str]:
    benches = {step: StepBench(net, step, device=device) for step in STEPS}
    ms = median_ms({step: b.step for step, b in benches.items()}, rounds)
    peak = {step: peak_memory_bytes(b.step, device) / 2**20 for step, b in benches.items()}
    params = sum(p.numel() for p in benches["teacher"].net.parameters())
    (wall0, cpu0), rows = ms["teacher"], []
    for step in STEPS:
        wall, cpu = ms[step]
        mib, mib0 = peak[step], peak["teacher"]
        rows.append(
            f"| {net} ({params / 1e3:.0f}k) | {LABELS[step]} | {wall:.1f} | {wall / wall0:.2f} | "
            f"{cpu:.1f} | {cpu / cpu0:.2f} | {mib:.1f} | {mib / mib0:.2f} |"
        )
    return rows


def sampling_rows(net: str, rounds: int, device: str = "cpu") -> list[str]:
    bench = StepBench(net, "sct", device=device)
    with torch.no_grad():
        ms = median_ms({name: sampler(bench, name, BATCH) for name in SAMPLERS}, rounds)
    rows = []
    for name, nfe in SAMPLERS.items():
        label = "1-step sCM" if name == "1step" else f"teacher, Heun, {nfe} NFE"
        (wall, cpu), cpu0 = ms[name], ms["teacher"][1]
        rows.append(
            f"| {net} | {label} | {nfe} | {wall:.1f} | {BATCH / wall * 1e3:.0f} | "
            f"{cpu:.1f} | {BATCH / cpu * 1e3:.0f} | {cpu0 / cpu:.1f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (medians)")
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU: {cpu_name()}"
    print(
        f"batch {BATCH}, float32, {where} ({os.cpu_count()} cores, "
        f"{args.threads} torch thread(s), load average {load}), torch {torch.__version__}, "
        f"median of {args.rounds} interleaved rounds; peak = "
        + ("torch.cuda.max_memory_allocated\n" if args.device == "cuda" else "profiled tensors\n")
    )
    print(
        "| net (params) | training step | wall ms | / teacher | CPU ms | / teacher "
        "| peak MiB | / teacher |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for net in args.nets:
        print("\n".join(step_rows(net, args.rounds, args.device)), flush=True)
    print(
        f"\n| net | sampler (batch {BATCH}) | NFE | wall ms | samples / s | CPU ms "
        "| samples / CPU s | speed-up (CPU) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for net in args.nets:
        print("\n".join(sampling_rows(net, max(3, args.rounds // 3), args.device)), flush=True)


if __name__ == "__main__":
    main()

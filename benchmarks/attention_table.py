"""Print the Markdown table of attention JVP cost: fused flash JVP vs func.jvp through math.

    python benchmarks/attention_table.py [--rounds 3] [--block 128] [--seq-lens 1024 2048 4096]

Time: primal + tangent, best of ``--rounds`` (the methods interleaved, so load from other
processes hits both alike). Peak: tensor memory measured by ``peak_memory_bytes`` (the profiler's
allocation records on CPU, ``torch.cuda.max_memory_allocated`` on CUDA).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # silence the profiler's start/stop log lines
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

import torch  # noqa: E402
from test_bench_attention import (  # noqa: E402
    BATCH,
    BLOCK,
    HEAD_DIM,
    HEADS,
    METHODS,
    SEQ_LENS,
    peak_memory_bytes,
    qkv_and_tangents,
)


def best_time_ms(fns: dict, rounds: int) -> dict[str, float]:
    """Best wall time of each zero-argument function over ``rounds`` interleaved rounds."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per method")
    parser.add_argument("--block", type=int, default=BLOCK, help="fused: attention.block_size")
    parser.add_argument("--seq-lens", type=int, nargs="+", default=list(SEQ_LENS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"B x heads = {BATCH} x {HEADS}, head dim {HEAD_DIM}, float32, {args.device} "
        f"({torch.get_num_threads()} threads), fused block {args.block}, best of {args.rounds}\n"
    )
    print(
        "| N | fused ms | fused 1-pass ms | math ms "
        "| fused peak MiB | fused 1-pass peak MiB | math peak MiB | math / fused peak |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with torch.no_grad():
        for n in args.seq_lens:
            data = qkv_and_tangents(n, device=args.device)
            fns = {name: partial(fn, *data, args.block) for name, fn in METHODS.items()}
            ms = best_time_ms(fns, args.rounds)
            mib = {name: peak_memory_bytes(fn, args.device) / 2**20 for name, fn in fns.items()}
            print(
                f"| {n} | {ms['fused']:.0f} | {ms['fused_1pass']:.0f} | {ms['math']:.0f} "
                f"| {mib['fused']:.1f} | {mib['fused_1pass']:.1f} | {mib['math']:.1f} "
                f"| {mib['math'] / mib['fused']:.1f}x |"
            )


if __name__ == "__main__":
    main()

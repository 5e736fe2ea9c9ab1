"""Print Markdown tables of attention JVP cost on CUDA: Triton kernel vs blockwise vs math.

    python benchmarks/attention_gpu_table.py [--seq-lens 1024 2048 4096 8192 16384]
        [--dtypes float32 bfloat16] [--rounds 5] [--flash-block 512]

Each method returns (y, t_y) for (B x heads = 1 x 8, N, d = 64) inputs, the shapes of
``test_bench_attention.py``:
- triton: ``triton_attention_jvp``, y and t_y in one Triton kernel pass (online softmax).
- flash: ``flash_attention_jvp``, the same pass as blockwise PyTorch ops (``--flash-block``).
- math: torch.func.jvp through ``math_attention`` (N x N scores, probabilities, tangents);
  skipped where its estimated peak exceeds the free GPU memory, "OOM" where it runs out.

Time: CUDA events around one call, the median of ``--rounds`` after a warm-up call (which
compiles the kernel). Peak: ``torch.cuda.max_memory_allocated`` above what was live before the
call (``peak_memory_bytes``), outputs included. "t_y vs flash": the relative L2 difference of the
Triton tangent from the blockwise one (both accumulate in float32). Exits 2 without CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_bench_* live next to this file
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

import torch  # noqa: E402
from test_bench_attention import (  # noqa: E402
    BATCH,
    HEAD_DIM,
    HEADS,
    peak_memory_bytes,
    qkv_and_tangents,
    rel_err,
)

from scm_bench.nets.attention import flash_attention_jvp  # noqa: E402
from scm_bench.nets.layers import math_attention  # noqa: E402

SEQ_LENS = (1024, 2048, 4096, 8192, 16384)
MATH_N2_TENSORS = 6  # forward AD through math attention holds about this many (B, h, N, N)


def cuda_ms(fn, rounds: int) -> float:
    """Median milliseconds of ``fn()`` between two CUDA events, after one warm-up call."""
    fn()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def math_fits(n: int, dtype: torch.dtype) -> bool:
    """Whether math attention's N x N tensors (estimated) fit in the free GPU memory."""
    need = MATH_N2_TENSORS * BATCH * HEADS * n * n * torch.finfo(dtype).bits // 8
    return need < 0.9 * torch.cuda.mem_get_info()[0]


def methods(block: int) -> dict:
    """name -> fn(primals, tangents) -> (y, t_y)."""
    from scm_bench.nets.attention_triton import triton_attention_jvp

    return {
        "triton": lambda p, t: triton_attention_jvp(*p, *t),
        "flash": lambda p, t: flash_attention_jvp(*p, *t, block_size=block),
        "math": lambda p, t: torch.func.jvp(math_attention, p, t),
    }


def table(dtype: torch.dtype, args) -> None:
    """One Markdown table (one row per N) for one input dtype."""
    fns = methods(args.flash_block)
    print(
        f"\n#### Attention JVP (y and t_y) on {torch.cuda.get_device_name()}, "
        f"{str(dtype).removeprefix('torch.')}\n\nB x heads = {BATCH} x {HEADS}, head dim "
        f"{HEAD_DIM}; CUDA events, median of {args.rounds}; flash block {args.flash_block}; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}\n"
    )
    print(
        "| N | triton ms | flash ms | math ms | triton peak MiB | flash peak MiB "
        "| math peak MiB | t_y vs flash |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.seq_lens:
        data = qkv_and_tangents(n, dtype=dtype, device="cuda")
        ms, mib = {}, {}
        for name, fn in fns.items():
            if name == "math" and not math_fits(n, dtype):
                ms[name] = mib[name] = "skipped"
                continue
            call = partial(fn, *data)
            try:
                ms[name] = f"{cuda_ms(call, args.rounds):.1f}"
                mib[name] = f"{peak_memory_bytes(call, 'cuda') / 2**20:.0f}"
            except torch.OutOfMemoryError:
                ms[name] = mib[name] = "OOM"
            del call
            torch.cuda.empty_cache()
        err = rel_err(fns["triton"](*data)[1].float(), fns["flash"](*data)[1].float())
        print(
            f"| {n} | {ms['triton']} | {ms['flash']} | {ms['math']} | {mib['triton']} "
            f"| {mib['flash']} | {mib['math']} | {err:.1e} |",
            flush=True,
        )
        del data
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", type=int, nargs="+", default=list(SEQ_LENS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16", "float16"])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per method (median)")
    parser.add_argument("--flash-block", type=int, default=512, help="flash: tile size")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("attention_gpu_table.py: no CUDA device (this benchmark runs on a GPU only)")
        return 2
    with torch.no_grad():
        for dtype in args.dtypes:
            table(getattr(torch, dtype), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Attention primal + tangent: fused flash JVP vs torch.func.jvp through math attention.

Methods, each returning (y, t_y) for (B x heads = 8, N, d = 64) float32 inputs:
- fused: torch.func.jvp through ``flash_attention`` (the autograd.Function: forward, then the
  jvp pass reusing the forward's logsumexp). What the ``autograd`` JVP backend runs.
- fused_1pass: ``flash_attention_jvp``, y and t_y in one online-softmax pass. What a net's
  one-pass ``forward_jvp`` runs when no graph is recorded.
- math: torch.func.jvp through ``math_attention`` (N x N scores, probabilities and tangents).
- triton (CUDA only, skipped otherwise): ``triton_attention_jvp``, one Triton kernel pass.

Time comes from pytest-benchmark; peak memory is measured separately (``peak_memory_bytes``)
and stored in ``benchmark.extra_info["peak_mib"]``. Full run (about a minute on 2 idle cores):

    pytest benchmarks/test_bench_attention.py

With ``--benchmark-disable`` (CI) the same tests run at N / 16 and N / 8 (blocks likewise) in a
few seconds, as correctness checks. ``benchmarks/attention_table.py`` prints the Markdown table.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import torch

from scm_bench.nets.attention import flash_attention, flash_attention_jvp
from scm_bench.nets.layers import math_attention

SEQ_LENS = (1024, 2048, 4096)
BATCH, HEADS, HEAD_DIM = 1, 8, 64  # batch x heads = 8
BLOCK = 512  # attention.block_size; on CPU 512 beats 128 (fewer, larger ops; see the README)
QUICK = 16  # --benchmark-disable divides N and the block by this


def qkv_and_tangents(n: int, seed: int = 0, dtype=torch.float32, device="cpu"):
    """Primals (q, k, v) and tangents, each (BATCH, HEADS, n, HEAD_DIM)."""
    gen = torch.Generator(device).manual_seed(seed)
    shape = (BATCH, HEADS, n, HEAD_DIM)
    xs = [torch.randn(shape, generator=gen, dtype=dtype, device=device) for _ in range(6)]
    return tuple(xs[:3]), tuple(xs[3:])


def fused_jvp(primals, tangents, block_size: int = BLOCK):
    """(y, t_y) via torch.func.jvp through the blockwise flash attention (forward + jvp pass)."""
    return torch.func.jvp(partial(flash_attention, block_size=block_size), primals, tangents)


def fused_1pass(primals, tangents, block_size: int = BLOCK):
    """(y, t_y) in one blockwise online-softmax pass."""
    return flash_attention_jvp(*primals, *tangents, block_size=block_size)


def math_jvp(primals, tangents, block_size: int = BLOCK):
    """(y, t_y) via torch.func.jvp through softmax(QK^T/sqrt d)V with plain ops (N x N)."""
    return torch.func.jvp(math_attention, primals, tangents)


METHODS = {"fused": fused_jvp, "fused_1pass": fused_1pass, "math": math_jvp}


def peak_memory_bytes(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak tensor memory that ``fn()`` allocates above what was live when it started.

    CUDA: the caching allocator's own counter, ``torch.cuda.max_memory_allocated``.
    CPU: the profiler with ``profile_memory=True`` records every CPU tensor allocation and free
    (bytes, +/-) with a timestamp; the running sum of those records, in time order, is the live
    tensor memory, and its maximum is the peak. This counts tensor storage (what the algorithm
    controls), not interpreter or allocator overhead. Outputs still alive at the end count.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        if e.device_type() == torch.autograd.DeviceType.CPU:
            live += e.nbytes()  # + on allocation, - on free
            peak = max(peak, live)
    return peak


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(autouse=True)
def one_thread_when_quick(request):
    """Under --benchmark-disable the tiny checks run on one thread: two intra-op threads per
    process oversubscribe a busy 2-core CI machine (see tests/conftest.py)."""
    threads = torch.get_num_threads()
    if request.config.getoption("benchmark_disable", False):
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("n", SEQ_LENS)
@pytest.mark.parametrize("method", list(METHODS))
def test_attention_jvp_time_and_peak_memory(benchmark, method, n):
    """Times (primal + tangent) and records peak memory; the result matches float64 math."""
    block = BLOCK // QUICK if benchmark.disabled else BLOCK
    n = n // QUICK if benchmark.disabled else n
    benchmark.group = f"attention JVP, N={n}"
    primals, tangents = qkv_and_tangents(n)
    run = partial(METHODS[method], primals, tangents, block)
    with torch.no_grad():
        peak = peak_memory_bytes(run)
        benchmark.extra_info.update(n=n, block=block, peak_mib=peak / 2**20)
        y, ty = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
        if n <= 1024:  # float64 reference is cheap here
            y64, ty64 = math_jvp(*(tuple(x.double() for x in xs) for xs in (primals, tangents)))
            assert rel_err(y.double(), y64) < 1e-5
            assert rel_err(ty.double(), ty64) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton kernel runs on CUDA")
@pytest.mark.parametrize("n", SEQ_LENS)
def test_triton_attention_jvp_time_and_peak_memory_on_cuda(benchmark, n):
    """The Triton kernel on CUDA (its own tile size); the result matches float64 math."""
    from scm_bench.nets.attention_triton import triton_attention_jvp

    n = n // QUICK if benchmark.disabled else n
    benchmark.group = f"attention JVP (CUDA), N={n}"
    primals, tangents = qkv_and_tangents(n, device="cuda")

    def run():
        out = triton_attention_jvp(*primals, *tangents)
        torch.cuda.synchronize()  # time the kernel, not its launch
        return out

    with torch.no_grad():
        peak = peak_memory_bytes(run, "cuda")
        benchmark.extra_info.update(n=n, peak_mib=peak / 2**20)
        y, ty = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
        if n <= 1024:
            y64, ty64 = math_jvp(*(tuple(x.double() for x in xs) for xs in (primals, tangents)))
            assert rel_err(y.double(), y64) < 1e-5
            assert rel_err(ty.double(), ty64) < 1e-5


def test_fused_peak_memory_is_linear_in_n_and_far_below_math(request):
    """Doubling N at most doubles the fused peak (math: x4); at N = 4096 it is >= 10x below."""
    quick = request.config.getoption("benchmark_disable", False)
    lens = tuple(n // 8 for n in SEQ_LENS) if quick else SEQ_LENS  # 128..512: N^2 dominates
    block = BLOCK // 8 if quick else BLOCK
    peaks = {}
    with torch.no_grad():
        for method in METHODS:
            for n in lens:
                run = partial(METHODS[method], *qkv_and_tangents(n), block)
                peaks[method, n] = peak_memory_bytes(run)
    for small, big in zip(lens, lens[1:], strict=False):
        assert peaks["fused", big] / peaks["fused", small] < 2.2  # linear: <= 2, quadratic: 4
        assert peaks["fused_1pass", big] / peaks["fused_1pass", small] < 2.2
        assert peaks["math", big] / peaks["math", small] > 3.0  # the math path is quadratic
    if not quick:
        assert peaks["math", 4096] / peaks["fused", 4096] >= 10

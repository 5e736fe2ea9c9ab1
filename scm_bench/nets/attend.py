"""The attention op of the nets (spec: ``attention.kernel``) and its (y, t_y) pair for the
one-pass ``forward_jvp``.

- flash: blockwise online-softmax attention with a fused JVP, O(N) memory (paper); on a CUDA
  tensor it runs the Triton kernel when Triton is importable, elsewhere the PyTorch blockwise
  loop (``attention.FusedAttention``).
- math: softmax(QK^T)V on the full N x N matrix, closed-form JVP, O(N^2) memory.
- triton: always the Triton kernel (``attention_triton``); needs a CUDA GPU, or
  ``TRITON_INTERPRET=1`` for CPU tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from scm_bench.core.choices import check
from scm_bench.errors import RunError
from scm_bench.nets.attention import FusedAttention
from scm_bench.nets.attention_triton import TritonAttention, triton_available
from scm_bench.nets.jvp import generic_jvp, math_attention_jvp
from scm_bench.nets.layers import math_attention

Tensor = torch.Tensor
AttentionKernel = Literal["flash", "math", "triton"]


class FlashAttend(FusedAttention):
    """``attention.kernel=flash``: the Triton kernel for CUDA tensors when Triton is there,
    else the blockwise PyTorch loop. A plain object, so nets holding it pickle and deepcopy."""

    def _triton(self, q: Tensor) -> TritonAttention | None:
        return TritonAttention() if q.is_cuda and triton_available() else None

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        fast = self._triton(q)
        return fast(q, k, v) if fast else super().__call__(q, k, v)

    def jvp(self, q: Tensor, k: Tensor, v: Tensor, tq, tk, tv) -> tuple[Tensor, Tensor]:
        fast = self._triton(q)
        return fast.jvp(q, k, v, tq, tk, tv) if fast else super().jvp(q, k, v, tq, tk, tv)

    def __repr__(self) -> str:
        return f"FlashAttend(block_size={self.block_size})"


def attention_jvp(attend, q: Tensor, k: Tensor, v: Tensor, tq, tk, tv) -> tuple[Tensor, Tensor]:
    """(attend(q, k, v), its tangent) for ``forward_jvp``: the primal keeps its graph, the
    tangent has none. An op with its own ``jvp`` (flash, triton) uses it; ``math_attention``
    the closed form ``math_attention_jvp``; any other op ``generic_jvp`` (torch.func.jvp).
    """
    if hasattr(attend, "jvp"):
        return attend.jvp(q, k, v, tq, tk, tv)
    if attend is math_attention:
        return math_attention_jvp(q, k, v, tq, tk, tv)
    return generic_jvp(attend, (q, k, v), (tq, tk, tv))


def make_attend(kernel: AttentionKernel, block_size: int = 128) -> Callable[..., Tensor]:
    """attend(q, k, v) for ``attention.kernel`` (``block_size``: the flash loop's tiles)."""
    check(kernel, AttentionKernel, "attention.kernel")
    if kernel == "math":
        return math_attention
    if kernel == "triton":
        if not triton_available():
            raise RunError(
                "attention.kernel: triton needs a CUDA GPU with Triton (TRITON_INTERPRET=1 runs "
                "it on the CPU, slowly, for tests); use attention.kernel: flash"
            )
        return TritonAttention()
    return FlashAttend(block_size)

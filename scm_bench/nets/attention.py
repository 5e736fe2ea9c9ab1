"""Attention with a fused, blockwise JVP (sCM Sec. 5 / App. F, "JVP of attention").

y = softmax(S) V, S = Q K^T * scale, scale = 1 / sqrt(d), P = softmax(S) row-wise.
Its tangent along (t_Q, t_K, t_V):

    t_S = (t_Q K^T + Q t_K^T) * scale
    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V

PyTorch's fused SDPA kernels have no forward-mode AD; forward AD through ``math_attention``
materializes S, P, t_S and t_P (O(N^2) memory). Here every pass walks (query block x key block)
tiles, so the largest temporaries are (B, heads, block, block) and memory grows linearly in N:

- forward: online softmax (running max m and running sum l, rescaled by exp(m_old - m_new) as
  each key block arrives) -> y and the row logsumexp lse = m + log l.
- jvp: one more pass; each tile's P = exp(S - lse) is exact (lse is known from the forward),
  so the tangent accumulators need no rescaling.
- backward: the FlashAttention-2 backward, recomputing P per tile from lse.

``flash_attention_jvp`` computes y and t_y together in a single online-softmax pass, for
callers that hold the tangents explicitly (the autograd.Function cannot: PyTorch runs
``forward`` before it shows ``jvp`` the tangents).

Lower-precision inputs (float16 / bfloat16) are accumulated in float32; float32 and float64
accumulate in their own dtype. Outputs are cast back to the input dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from scm_bench.nets.layers import math_attention

Tensor = torch.Tensor


def _acc_dtype(x: Tensor) -> torch.dtype:
    """float32 accumulation for half / bfloat16, else the input dtype (float32, float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def _blocks(n: int, block: int) -> list[slice]:
    """Consecutive slices of length ``block`` covering range(n); the last may be shorter."""
    return [slice(i, min(i + block, n)) for i in range(0, n, block)]


def _tangent_logits(q: Tensor, tq, k: Tensor, tk, scale: float) -> Tensor | None:
    """t_S tile = (t_Q K^T + Q t_K^T) * scale; None when both tangents are absent."""
    ts = None
    if tq is not None:
        ts = tq @ k.transpose(-2, -1)  # (B, h, bq, bk)
    if tk is not None:
        qtk = q @ tk.transpose(-2, -1)  # (B, h, bq, bk)
        ts = qtk if ts is None else ts.add_(qtk)
    return None if ts is None else ts.mul_(scale)


def _flash_forward(q, k, v, block: int, tq=None, tk=None, tv=None):
    """Online-softmax pass: y, lse and (if any tangent is given) t_y, blockwise.

    Per query block, over key blocks j (m: running max, l: running sum, all rows):
        m' = max(m, rowmax S_j),  a = exp(m - m'),  P~_j = exp(S_j - m')
        l   <- a l + rowsum P~_j              acc_y <- a acc_y + P~_j V_j
        g   <- a g + rowsum(P~_j o t_S_j)     acc_t <- a acc_t + (P~_j o t_S_j) V_j + P~_j t_V_j
    then y = acc_y / l and t_y = acc_t / l - (g / l) o y, the PAPER.md tangent formula.
    q: (B, h, N, d), k, v: (B, h, M, d) -> y (B, h, N, d), lse (B, h, N), t_y or None.
    """
    acc, scale = _acc_dtype(q), q.shape[-1] ** -0.5
    with_t = any(t is not None for t in (tq, tk, tv))
    y = torch.empty(q.shape, dtype=acc, device=q.device)  # (B, h, N, d) in the accumulation dtype
    lse = torch.empty(q.shape[:-1], dtype=acc, device=q.device)  # (B, h, N)
    ty = torch.empty_like(y) if with_t else None
    kb = [(k[..., j, :].to(acc), v[..., j, :].to(acc)) for j in _blocks(k.shape[-2], block)]
    tkb = [None if t is None else t[..., j, :].to(acc) for j in _blocks(k.shape[-2], block)
           for t in (tk, tv)]  # fmt: skip
    for i in _blocks(q.shape[-2], block):
        qi = q[..., i, :].to(acc)  # (B, h, bq, d)
        tqi = None if tq is None else tq[..., i, :].to(acc)
        m = torch.full(qi.shape[:-1] + (1,), -torch.inf, dtype=acc, device=q.device)  # (B,h,bq,1)
        l, g = torch.zeros_like(m), torch.zeros_like(m)
        acc_y, acc_t = torch.zeros_like(qi), torch.zeros_like(qi)  # (B, h, bq, d)
        for j, (kj, vj) in enumerate(kb):
            tkj, tvj = tkb[2 * j], tkb[2 * j + 1]
            s = (qi @ kj.transpose(-2, -1)).mul_(scale)  # (B, h, bq, bk)
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            a = torch.exp(m - m_new)  # (B, h, bq, 1) rescales what was accumulated so far
            p = torch.exp_(s.sub_(m_new))  # unnormalized P~_j, in place of S_j
            l = l.mul_(a).add_(p.sum(dim=-1, keepdim=True))
            acc_y = acc_y.mul_(a).baddbmm_(p, vj) if False else acc_y.mul_(a).add_(p @ vj)
            if with_t:
                acc_t.mul_(a)
                ts = _tangent_logits(qi, tqi, kj, tkj, scale)
                if ts is not None:
                    pts = ts.mul_(p)  # P~_j o t_S_j, in place of t_S_j
                    g = g.mul_(a).add_(pts.sum(dim=-1, keepdim=True))
                    acc_t.add_(pts @ vj)
                if tvj is not None:
                    acc_t.add_(p @ tvj)
            m = m_new
        y[..., i, :] = acc_y.div_(l)
        lse[..., i] = (m + l.log()).squeeze(-1)
        if with_t:
            ty[..., i, :] = acc_t.div_(l).sub_(g.div_(l) * y[..., i, :])
    return y, lse, ty

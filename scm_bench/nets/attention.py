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


def _flash_forward(q: Tensor, k: Tensor, v: Tensor, block: int, tq=None, tk=None, tv=None):
    """Online-softmax pass: y, lse and (if any tangent is given) t_y, blockwise.

    Per query block, over key blocks j (m: running row max, l: running row sum):
        m' = max(m, rowmax S_j),  a = exp(m - m'),  P~_j = exp(S_j - m')
        l <- a l + rowsum P~_j                acc_y <- a acc_y + P~_j V_j
        g <- a g + rowsum(P~_j o t_S_j)       acc_t <- a acc_t + (P~_j o t_S_j) V_j + P~_j t_V_j
    then y = acc_y / l, lse = m + log l and t_y = acc_t / l - (g / l) o y (the tangent formula).
    q, tq: (B, h, N, d); k, v, tk, tv: (B, h, M, d) -> y (B, h, N, d), lse (B, h, N), t_y | None.
    """
    acc, scale = _acc_dtype(q), q.shape[-1] ** -0.5
    with_t = any(t is not None for t in (tq, tk, tv))
    y = q.new_empty(q.shape, dtype=acc)  # (B, h, N, d), accumulation dtype
    lse = q.new_empty(q.shape[:-1], dtype=acc)  # (B, h, N)
    ty = torch.empty_like(y) if with_t else None
    cols = [(j, k[..., j, :].to(acc), v[..., j, :].to(acc)) for j in _blocks(k.shape[-2], block)]
    for i in _blocks(q.shape[-2], block):
        qi = q[..., i, :].to(acc)  # (B, h, bq, d)
        tqi = None if tq is None else tq[..., i, :].to(acc)
        m = qi.new_full(qi.shape[:-1] + (1,), -torch.inf)  # (B, h, bq, 1)
        rsum, g = torch.zeros_like(m), torch.zeros_like(m)  # (B, h, bq, 1)
        acc_y, acc_t = torch.zeros_like(qi), torch.zeros_like(qi)  # (B, h, bq, d)
        for j, kj, vj in cols:
            s = (qi @ kj.transpose(-2, -1)).mul_(scale)  # S_j: (B, h, bq, bk)
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            a = torch.exp(m - m_new)  # (B, h, bq, 1): rescales everything accumulated so far
            p = s.sub_(m_new).exp_()  # P~_j, in place of S_j
            rsum.mul_(a).add_(p.sum(dim=-1, keepdim=True))
            acc_y.mul_(a).add_(p @ vj)
            m = m_new
            if not with_t:
                continue
            g.mul_(a)
            acc_t.mul_(a)
            tkj = None if tk is None else tk[..., j, :].to(acc)
            ts = _tangent_logits(qi, tqi, kj, tkj, scale)  # t_S_j: (B, h, bq, bk)
            if ts is not None:
                pts = ts.mul_(p)  # P~_j o t_S_j, in place of t_S_j
                g.add_(pts.sum(dim=-1, keepdim=True))
                acc_t.add_(pts @ vj)
            if tv is not None:
                acc_t.add_(p @ tv[..., j, :].to(acc))
        y[..., i, :] = acc_y.div_(rsum)
        lse[..., i] = (m + rsum.log()).squeeze(-1)
        if with_t:
            ty[..., i, :] = acc_t.div_(rsum).sub_(g.div_(rsum) * acc_y)
    return y, lse, ty


def _flash_tangent(
    q: Tensor, k: Tensor, v: Tensor, y: Tensor, lse: Tensor, block: int, tq=None, tk=None, tv=None
) -> Tensor:
    """t_y = sum_j [(P_j o t_S_j) V_j + P_j t_V_j] - rowsum(P o t_S) o y, blockwise.

    P_j = exp(S_j - lse) is the exact softmax tile (lse from the forward), so nothing is
    rescaled. Shapes as in ``_flash_forward``; returns t_y (B, h, N, d) in the accumulation dtype.
    """
    acc, scale = _acc_dtype(q), q.shape[-1] ** -0.5
    ty = q.new_zeros(q.shape, dtype=acc)  # (B, h, N, d)
    if all(t is None for t in (tq, tk, tv)):
        return ty
    cols = [(j, k[..., j, :].to(acc), v[..., j, :].to(acc)) for j in _blocks(k.shape[-2], block)]
    for i in _blocks(q.shape[-2], block):
        qi = q[..., i, :].to(acc)  # (B, h, bq, d)
        tqi = None if tq is None else tq[..., i, :].to(acc)
        lse_i = lse[..., i, None].to(acc)  # (B, h, bq, 1)
        g = lse_i.new_zeros(lse_i.shape)  # rowsum(P o t_S): (B, h, bq, 1)
        acc_t = ty[..., i, :]  # (B, h, bq, d), a view that accumulates in place
        for j, kj, vj in cols:
            p = (qi @ kj.transpose(-2, -1)).mul_(scale).sub_(lse_i).exp_()  # P_j: (B, h, bq, bk)
            tkj = None if tk is None else tk[..., j, :].to(acc)
            ts = _tangent_logits(qi, tqi, kj, tkj, scale)  # t_S_j: (B, h, bq, bk)
            if ts is not None:
                pts = ts.mul_(p)  # P_j o t_S_j
                g.add_(pts.sum(dim=-1, keepdim=True))
                acc_t.add_(pts @ vj)
            if tv is not None:
                acc_t.add_(p @ tv[..., j, :].to(acc))
        acc_t.sub_(g * y[..., i, :].to(acc))
    return ty


def _flash_backward(
    q: Tensor, k: Tensor, v: Tensor, y: Tensor, lse: Tensor, dy: Tensor, block: int
) -> tuple[Tensor, Tensor, Tensor]:
    """FlashAttention-2 backward, P_ij = exp(S_ij - lse_i) recomputed per tile:

    dV_j = sum_i P_ij^T dY_i,  dP_ij = dY_i V_j^T,  dS_ij = P_ij o (dP_ij - D_i) * scale,
    dQ_i = sum_j dS_ij K_j,    dK_j = sum_i dS_ij^T Q_i,   D_i = rowsum(dY_i o Y_i).
    Returns dq, dk, dv in the accumulation dtype, shaped like q, k, v.
    """
    acc, scale = _acc_dtype(q), q.shape[-1] ** -0.5
    dy = dy.to(acc)
    dd = (dy * y.to(acc)).sum(dim=-1, keepdim=True)  # D: (B, h, N, 1)
    dq = q.new_zeros(q.shape, dtype=acc)  # (B, h, N, d)
    dk, dv = k.new_zeros(k.shape, dtype=acc), v.new_zeros(v.shape, dtype=acc)  # (B, h, M, d)
    rows = [
        (i, q[..., i, :].to(acc), lse[..., i, None].to(acc)) for i in _blocks(q.shape[-2], block)
    ]
    for j in _blocks(k.shape[-2], block):
        kj, vj = k[..., j, :].to(acc), v[..., j, :].to(acc)  # (B, h, bk, d)
        for i, qi, lse_i in rows:
            p = (qi @ kj.transpose(-2, -1)).mul_(scale).sub_(lse_i).exp_()  # P_ij: (B, h, bq, bk)
            dv[..., j, :] += p.transpose(-2, -1) @ dy[..., i, :]
            ds = (dy[..., i, :] @ vj.transpose(-2, -1)).sub_(dd[..., i, :]).mul_(p).mul_(scale)
            dq[..., i, :] += ds @ kj
            dk[..., j, :] += ds.transpose(-2, -1) @ qi
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """softmax(Q K^T / sqrt(d)) V with a blockwise forward, jvp and backward (O(N) memory).

    forward returns (y, lse); lse (B, h, N) is non-differentiable and only feeds jvp/backward.
    """

    @staticmethod
    def forward(q: Tensor, k: Tensor, v: Tensor, block: int) -> tuple[Tensor, Tensor]:
        y, lse, _ = _flash_forward(q, k, v, block)
        return y.to(q.dtype), lse

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, block = inputs
        y, lse = output
        ctx.block = block
        ctx.mark_non_differentiable(lse)
        ctx.save_for_backward(q, k, v, y, lse)
        ctx.save_for_forward(q, k, v, y, lse)

    @staticmethod
    def jvp(ctx, tq, tk, tv, _tblock):
        q, k, v, y, lse = ctx.saved_tensors
        ty = _flash_tangent(q, k, v, y, lse, ctx.block, tq, tk, tv)
        return ty.to(q.dtype), None

    @staticmethod
    def backward(ctx, dy, _dlse):
        q, k, v, y, lse = ctx.saved_tensors
        dq, dk, dv = _flash_backward(q, k, v, y, lse, dy, ctx.block)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None


def flash_attention(q: Tensor, k: Tensor, v: Tensor, block_size: int = 128) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V, blockwise; works under torch.func.jvp, forward_ad and backward.

    q: (B, heads, N, d), k, v: (B, heads, M, d) -> (B, heads, N, d).
    """
    return FlashAttention.apply(q, k, v, block_size)[0]


def flash_attention_jvp(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    tq: Tensor | None,
    tk: Tensor | None,
    tv: Tensor | None,
    block_size: int = 128,
) -> tuple[Tensor, Tensor]:
    """(y, t_y) in one online-softmax pass (no autograd): the fused JVP of attention.

    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V,  t_S = (t_Q K^T + Q t_K^T) / sqrt(d).
    A tangent passed as None counts as zero. Shapes as in ``flash_attention``.
    """
    tq = torch.zeros_like(q) if all(t is None for t in (tq, tk, tv)) else tq
    y, _, ty = _flash_forward(q, k, v, block_size, tq, tk, tv)
    return y.to(q.dtype), ty.to(q.dtype)


def make_attend(jvp: str, block_size: int = 128) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The attention op attend(q, k, v) for the switch ``attention.jvp``.

    fused: ``flash_attention`` with ``attention.block_size`` | autograd: ``math_attention``
    (forward AD through plain ops, O(N^2) memory).
    """
    if jvp == "fused":
        if block_size < 1:
            raise ValueError(f"attention.block_size must be >= 1, got {block_size}")
        return lambda q, k, v: flash_attention(q, k, v, block_size)
    if jvp == "autograd":
        return math_attention
    raise ValueError(f"attention.jvp must be fused or autograd, got {jvp!r}")

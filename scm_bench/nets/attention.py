"""Attention with a fused, blockwise JVP (sCM Sec. 5 / App. F, "JVP of attention").

y = softmax(S) V, S = Q K^T * scale, scale = 1 / sqrt(d), P = softmax(S) row-wise.
Its tangent along (t_Q, t_K, t_V):

    t_S = (t_Q K^T + Q t_K^T) * scale
    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V

PyTorch's fused SDPA kernels have no forward-mode AD; forward AD through ``math_attention``
materializes S, P, t_S and t_P (O(N^2) memory). Here every pass walks (query block x key block)
tiles, so the largest temporaries are (B * heads, block, block) and memory grows linearly in N:

- forward: online softmax (running max m and running sum l, rescaled by exp(m_old - m_new) as
  each key block arrives) -> y and the row logsumexp lse = m + log l.
- jvp: one more pass; each tile's P = exp(S - lse) is exact (lse is known from the forward),
  so the tangent accumulators need no rescaling.
- backward: the FlashAttention-2 backward, recomputing P per tile from lse.

``flash_attention_jvp`` computes y and t_y together in a single online-softmax pass, for
callers that hold the tangents explicitly (the autograd.Function cannot: PyTorch runs
``forward`` before it shows ``jvp`` the tangents).

Two layout tricks cut the per-tile op count (Python overhead dominates small tiles on CPU):
the scale is folded into Q, so t_S = [t_Q, Q] [K, t_K]^T * scale is one matmul; and V carries a
ones column, so one matmul P~ [V, 1] = [P~ V, rowsum P~] yields a row sum with the product.

float16 / bfloat16 inputs accumulate in float32, float32 / float64 in their own dtype; outputs
are cast back to the input dtype.
"""

from __future__ import annotations

import functools

import torch

Tensor = torch.Tensor


def _no_autocast(fn):
    """Run ``fn`` with autocast off: it picks its own accumulation dtype, and under autocast
    (train.precision bfloat16 / float16) torch.bmm would return 16-bit blocks that the float32
    accumulators' in-place baddbmm_ refuses."""

    @functools.wraps(fn)
    def inner(q: Tensor, *args, **kwargs):
        if q.device.type not in ("cpu", "cuda"):  # meta (compute plans): no autocast there
            return fn(q, *args, **kwargs)
        with torch.autocast(q.device.type, enabled=False):
            return fn(q, *args, **kwargs)

    return inner


def _acc_dtype(x: Tensor) -> torch.dtype:
    """float32 accumulation for half / bfloat16, else the input dtype (float32, float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def _blocks(n: int, block: int) -> list[slice]:
    """Consecutive slices of length ``block`` covering range(n); the last may be shorter."""
    return [slice(i, min(i + block, n)) for i in range(0, n, block)]


def _flat(x: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, h, N, d) -> (B * h, N, d) in the accumulation dtype (a view when nothing changes)."""
    return x.reshape(-1, *x.shape[-2:]).to(dtype)


def _append(x: Tensor, value: float) -> Tensor:
    """(BH, M, d) -> (BH, M, d + 1) with a constant last column: [V, 1] or [t_V, 0]."""
    return torch.cat([x, x.new_full(x.shape[:-1] + (1,), value)], dim=-1)


def _operands(q: Tensor, k: Tensor, v: Tensor, tq, tk, tv) -> dict[str, Tensor]:
    """Flattened operands in the accumulation dtype; a missing tangent counts as zero.

    qs = Q * scale, K, V1 = [V, 1]: (BH, N, d), (BH, M, d), (BH, M, d + 1)
    with tangents also qq = [t_Q, Q] * scale (BH, N, 2d) and kk = [K, t_K] (BH, M, 2d), so that
    qq kk^T = t_S (qs and K are then views into them), and tv0 = [t_V, 0] (BH, M, d + 1).
    """
    acc, scale, d = _acc_dtype(q), q.shape[-1] ** -0.5, q.shape[-1]
    qf, kf, vf = _flat(q, acc), _flat(k, acc), _flat(v, acc)
    if tq is None and tk is None and tv is None:
        return {"qs": qf * scale, "k": kf, "v1": _append(vf, 1.0)}
    flat_or_zero = lambda t, x: torch.zeros_like(x) if t is None else _flat(t, acc)
    qq = torch.cat([flat_or_zero(tq, qf), qf], dim=-1).mul_(scale)  # (BH, N, 2d)
    kk = torch.cat([kf, flat_or_zero(tk, kf)], dim=-1)  # (BH, M, 2d)
    return {
        "qs": qq[..., d:],
        "k": kk[..., :d],
        "v1": _append(vf, 1.0),
        "qq": qq,
        "kk": kk,
        "tv0": _append(flat_or_zero(tv, vf), 0.0),
    }


@_no_autocast
def _flash_forward(q: Tensor, k: Tensor, v: Tensor, block: int, tq=None, tk=None, tv=None):
    """Online-softmax pass: y, lse and (if any tangent is given) t_y, blockwise.

    Per query block, over key blocks j (m: running row max, l: running row sum):
        m' = max(m, rowmax S_j),  a = exp(m - m'),  P~_j = exp(S_j - m')
        l <- a l + rowsum P~_j                acc_y <- a acc_y + P~_j V_j
        g <- a g + rowsum(P~_j o t_S_j)       acc_t <- a acc_t + (P~_j o t_S_j) V_j + P~_j t_V_j
    then y = acc_y / l, lse = m + log l and t_y = acc_t / l - (g / l) o y (the tangent formula).
    q, tq: (B, h, N, d); k, v, tk, tv: (B, h, M, d) -> y (B, h, N, d), lse (B, h, N), t_y | None
    in the accumulation dtype.
    """
    ops = _operands(q, k, v, tq, tk, tv)
    with_t = "qq" in ops
    qs, d = ops["qs"], q.shape[-1]
    y, lse = torch.empty_like(qs), qs.new_empty(qs.shape[:-1])  # (BH, N, d), (BH, N)
    ty = torch.empty_like(qs) if with_t else None
    cols = _blocks(k.shape[-2], block)
    for i in _blocks(q.shape[-2], block):
        m = qs.new_full((qs.shape[0], i.stop - i.start, 1), -torch.inf)  # (BH, bq, 1)
        acc_y = qs.new_zeros(m.shape[:-1] + (d + 1,))  # [sum P~ V, l]: (BH, bq, d + 1)
        acc_t = torch.zeros_like(acc_y) if with_t else None  # [sum (P~ o t_S) V + P~ t_V, g]
        for j in cols:
            s = torch.bmm(qs[:, i], ops["k"][:, j].transpose(1, 2))  # S_j: (BH, bq, bk)
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            a = (m - m_new).exp_()  # (BH, bq, 1): rescales everything accumulated so far
            p = s.sub_(m_new).exp_()  # P~_j, in place of S_j
            acc_y.mul_(a).baddbmm_(p, ops["v1"][:, j])
            if with_t:
                pts = torch.bmm(ops["qq"][:, i], ops["kk"][:, j].transpose(1, 2)).mul_(p)
                acc_t.mul_(a).baddbmm_(pts, ops["v1"][:, j]).baddbmm_(p, ops["tv0"][:, j])
            m = m_new
        rsum = acc_y[..., d:]  # l: (BH, bq, 1)
        y[:, i] = acc_y[..., :d] / rsum
        lse[:, i] = (m + rsum.log()).squeeze(-1)
        if with_t:  # t_y = acc_t / l - (g / l) o y
            ty[:, i] = (acc_t[..., :d] - acc_t[..., d:] * y[:, i]) / rsum
    unflat = lambda x: None if x is None else x.reshape(q.shape[:-1] + x.shape[-1:])
    return unflat(y), lse.reshape(q.shape[:-1]), unflat(ty)


@_no_autocast
def _flash_tangent(
    q: Tensor, k: Tensor, v: Tensor, y: Tensor, lse: Tensor, block: int, tq=None, tk=None, tv=None
) -> tuple[Tensor, Tensor]:
    """t_y = sum_j [(P_j o t_S_j) V_j + P_j t_V_j] - g o y and t_lse = g = rowsum(P o t_S).

    P_j = exp(S_j - lse) is the exact softmax tile (lse from the forward), so nothing is
    rescaled. Shapes as in ``_flash_forward``; returns t_y (B, h, N, d) and t_lse (B, h, N) in
    the accumulation dtype.
    """
    ops = _operands(q, k, v, tq, tk, tv)
    if "qq" not in ops:
        return torch.zeros_like(q, dtype=_acc_dtype(q)), torch.zeros_like(lse)
    qs, d = ops["qs"], q.shape[-1]
    yf, lse = _flat(y, qs.dtype), lse.reshape(-1, lse.shape[-1], 1).to(qs.dtype)  # (BH, N, 1)
    tys, gs = [], []  # per query block; concatenated at the end (no in-place slice writes)
    cols = _blocks(k.shape[-2], block)
    for i in _blocks(q.shape[-2], block):
        acc_t = qs.new_zeros((qs.shape[0], i.stop - i.start, d + 1))  # [... V + P t_V, g]
        for j in cols:
            s = torch.bmm(qs[:, i], ops["k"][:, j].transpose(1, 2))  # S_j: (BH, bq, bk)
            p = s.sub_(lse[:, i]).exp_()  # P_j
            pts = torch.bmm(ops["qq"][:, i], ops["kk"][:, j].transpose(1, 2)).mul_(p)
            acc_t.baddbmm_(pts, ops["v1"][:, j]).baddbmm_(p, ops["tv0"][:, j])
        gs.append(acc_t[..., d:])  # g = rowsum(P o t_S): (BH, bq, 1)
        tys.append(acc_t[..., :d] - gs[-1] * yf[:, i])  # (BH, bq, d)
    return torch.cat(tys, 1).reshape(q.shape), torch.cat(gs, 1).reshape(q.shape[:-1])


@_no_autocast
def _flash_backward(
    q: Tensor, k: Tensor, v: Tensor, y: Tensor, lse: Tensor, dy: Tensor, dlse, block: int
) -> tuple[Tensor, Tensor, Tensor]:
    """FlashAttention-2 backward, P_ij = exp(S_ij - lse_i) recomputed per tile:

    dV_j = sum_i P_ij^T dY_i,  dP_ij = dY_i V_j^T,  dS_ij = P_ij o (dP_ij - D_i),
    dQ_i = scale sum_j dS_ij K_j,  dK_j = scale sum_i dS_ij^T Q_i,  D_i = rowsum(dY_i o Y_i),
    plus the lse path (d lse_i / dS_ij = P_ij): dS_ij += P_ij dlse_i, i.e. D_i -> D_i - dlse_i.
    Returns dq, dk, dv in the accumulation dtype, shaped like q, k, v.
    """
    acc, scale = _acc_dtype(q), q.shape[-1] ** -0.5
    qs, kf, vf, dyf = _flat(q, acc) * scale, _flat(k, acc), _flat(v, acc), _flat(dy, acc)
    lse = lse.reshape(-1, lse.shape[-1], 1).to(acc)  # (BH, N, 1)
    dd = (dyf * _flat(y, acc)).sum(dim=-1, keepdim=True)  # D: (BH, N, 1)
    if dlse is not None:
        dd = dd - dlse.reshape(dd.shape).to(acc)
    dq, dk, dv = torch.zeros_like(qs), torch.empty_like(kf), torch.empty_like(vf)
    rows = _blocks(q.shape[-2], block)
    for j in _blocks(k.shape[-2], block):
        dk_j, dv_j = torch.zeros_like(kf[:, j]), torch.zeros_like(vf[:, j])  # (BH, bk, d)
        for i in rows:
            p = torch.bmm(qs[:, i], kf[:, j].transpose(1, 2)).sub_(lse[:, i]).exp_()  # P_ij
            dv_j.baddbmm_(p.transpose(1, 2), dyf[:, i])
            ds = torch.bmm(dyf[:, i], vf[:, j].transpose(1, 2)).sub_(dd[:, i]).mul_(p)  # dS_ij
            dq[:, i] += torch.bmm(ds, kf[:, j])
            dk_j.baddbmm_(ds.transpose(1, 2), qs[:, i])  # qs carries the scale
        dk[:, j], dv[:, j] = dk_j, dv_j
    return dq.mul_(scale).reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)


class FlashAttention(torch.autograd.Function):
    """softmax(Q K^T / sqrt(d)) V with a blockwise forward, jvp and backward (O(N) memory).

    forward returns (y, lse), lse = logsumexp(S) (B, h, N), which jvp and backward reuse; both
    outputs carry tangents and gradients, so even the tangent can be differentiated (through
    plain per-tile ops, O(N^2) saved memory; sCM never does: its JVP is a stop-gradient target).
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
        ctx.save_for_backward(q, k, v, y, lse)
        ctx.save_for_forward(q, k, v, y, lse)

    @staticmethod
    def jvp(ctx, tq, tk, tv, _tblock):
        q, k, v, y, lse = ctx.saved_tensors
        ty, tlse = _flash_tangent(q, k, v, y, lse, ctx.block, tq, tk, tv)
        return ty.to(q.dtype), tlse

    @staticmethod
    def backward(ctx, dy, dlse):
        q, k, v, y, lse = ctx.saved_tensors
        dq, dk, dv = _flash_backward(q, k, v, y, lse, dy, dlse, ctx.block)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None


def flash_attention(q: Tensor, k: Tensor, v: Tensor, block_size: int = 128) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V, blockwise; works under torch.func.jvp, forward_ad and backward.

    q: (B, heads, N, d), k, v: (B, heads, M, d) -> (B, heads, N, d). Tiles are
    (B * heads, block_size, block_size); on CPU, 512 beats 128 (fewer, larger ops; see
    benchmarks/attention_table.py) at 8 MiB per float32 tile for B * heads = 8.
    """
    return FlashAttention.apply(q, k, v, block_size)[0]


@torch.no_grad()
def flash_attention_jvp(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    tq: Tensor | None,
    tk: Tensor | None,
    tv: Tensor | None,
    block_size: int = 128,
) -> tuple[Tensor, Tensor]:
    """(y, t_y) in one online-softmax pass, not recorded by autograd: the fused JVP of attention.

    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V,  t_S = (t_Q K^T + Q t_K^T) / sqrt(d).
    A tangent passed as None counts as zero. Shapes as in ``flash_attention``.
    """
    tq = torch.zeros_like(q) if all(t is None for t in (tq, tk, tv)) else tq
    y, _, ty = _flash_forward(q, k, v, block_size, tq, tk, tv)
    return y.to(q.dtype), ty.to(q.dtype)


class FusedAttention:
    """attend(q, k, v) = ``flash_attention(q, k, v, block_size)``, plus ``jvp`` for the nets'
    one-pass fast JVP (``forward_jvp``). A plain object, so nets holding it pickle and deepcopy."""

    def __init__(self, block_size: int = 128):
        if block_size < 1:
            raise ValueError(f"attention.block_size must be >= 1, got {block_size}")
        self.block_size = block_size

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return flash_attention(q, k, v, self.block_size)

    def jvp(self, q: Tensor, k: Tensor, v: Tensor, tq, tk, tv) -> tuple[Tensor, Tensor]:
        """(y, t_y): y is recorded by autograd when gradients are on (so F trains), t_y never.

        Without a graph to record: one online-softmax pass (``flash_attention_jvp``); with one:
        the autograd forward, then the tangent pass that reuses its logsumexp.
        """
        if not (torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))):
            return flash_attention_jvp(q, k, v, tq, tk, tv, self.block_size)
        y, lse = FlashAttention.apply(q, k, v, self.block_size)
        with torch.no_grad():
            qd, kd, vd, yd, lsed = (x.detach() for x in (q, k, v, y, lse))
            ty, _ = _flash_tangent(qd, kd, vd, yd, lsed, self.block_size, tq, tk, tv)
        return y, ty.to(q.dtype)

    def __repr__(self) -> str:
        return f"FusedAttention(block_size={self.block_size})"

"""Attention and its JVP in one Triton kernel (sCM Sec. 5 / App. F, "JVP of attention").

y = softmax(S) V, S = Q K^T * scale, scale = 1 / sqrt(d), P = softmax(S) row-wise; along the
tangents (t_Q, t_K, t_V):

    t_S = (t_Q K^T + Q t_K^T) * scale
    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V

One program per (query block, batch x head) walks the key blocks once with an online softmax
(running max m, running sum l; everything accumulated so far is rescaled by exp(m_old - m_new)),
accumulating the primal [P~ V, l] and, when tangents are given, the tangent [(P~ o t_S) V +
P~ t_V, rowsum(P~ o t_S)] beside it; no N x M matrix ever reaches memory. It also writes the
row logsumexp lse = m + log l, which the backward reuses: the primal trains through an
autograd.Function whose backward is the blockwise FlashAttention-2 backward of
``attention._flash_backward`` (PyTorch ops per tile; the tangent itself needs no backward).

Precision: the accumulators, softmax statistics, lse and rowsum(P o t_S) are float32 for every
input dtype (float32 / bfloat16 / float16). Matmul operands stay in the input dtype (tensor
cores for 16-bit; P and P o t_S are rounded to it, as in FlashAttention); float32 operands use
IEEE float32 unless ``torch.set_float32_matmul_precision`` allows TF32.

CPU tensors run in Triton's interpreter (numpy), only when ``TRITON_INTERPRET=1`` is set: slow,
for tests. It mis-multiplies bfloat16 (``create_dot`` runs np.matmul on the raw uint16 bits),
so there every matmul operand is upcast to float32 first.
"""

from __future__ import annotations  # the kernel's annotations stay strings: no Triton needed

import functools
import os

import torch

from scm_bench.nets.attention import _flash_backward, _flash_tangent

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch builds ship without Triton
    triton = tl = None

Tensor = torch.Tensor
BLOCK = None  # query and key tile: a power of two >= 16 (the smallest tl.dot); None = auto
BACKWARD_BLOCK = 256  # tile of the PyTorch backward (_flash_backward)
_DTYPES = ("float32", "bfloat16", "float16")


def triton_available() -> bool:
    """Triton imports and can run: on a CUDA device, or in its interpreter on CPU."""
    return triton is not None and (
        torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"
    )


def _attention_kernel(
    Q, K, V, TQ, TK, TV,  # (BH, N, D), (BH, M, D) x 2, and the tangents likewise
    Y, TY, LSE,  # out: y, t_y (BH, N, D) in the input dtype, lse (BH, N) float32
    N, M, D, scale, qk_scale,  # 1 / sqrt(d) and log2(e) / sqrt(d): S in log2 units for exp2
    TANGENT: tl.constexpr,  # False: y and lse only (TQ, TK, TV and TY are not touched)
    DOT: tl.constexpr,  # dtype of the matmul operands (accumulation is float32)
    PRECISION: tl.constexpr,  # float32 operands: "ieee" or "tf32"
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Per query block, over key blocks j (exp2 in place of exp: log2(e) folded into qk_scale):
        m' = max(m, rowmax S_j),  a = exp(m - m'),  P~_j = exp(S_j - m')
        l <- a l + rowsum P~_j                acc <- a acc + P~_j V_j
        g <- a g + rowsum(P~_j o t_S_j)       acc_t <- a acc_t + (P~_j o t_S_j) V_j + P~_j t_V_j
    then y = acc / l, lse = m + log l and t_y = (acc_t - g o y) / l.
    Padding (rows >= N, keys >= M, columns >= D) loads zeros; padded keys get S = -inf.
    Only Triton builtins: row max / sum are tl.reduce with the combine functions tl.max / tl.sum
    use (those two are @jit functions, which the interpreter can call only if TRITON_INTERPRET
    was set when Triton was imported; tl.reduce with these two runs natively either way).
    """
    bh = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    dims = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    q_at = bh * N * D + rows[:, None] * D + dims[None, :]  # (BLOCK_M, BLOCK_D)
    q_in = (rows[:, None] < N) & (dims[None, :] < D)
    q = tl.load(Q + q_at, mask=q_in, other=0.0).to(DOT)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row max (log2 units)
    l_i = tl.full([BLOCK_M], 0.0, tl.float32)  # running row sum of P~
    acc = tl.full([BLOCK_M, BLOCK_D], 0.0, tl.float32)
    if TANGENT:
        tq = tl.load(TQ + q_at, mask=q_in, other=0.0).to(DOT)
        g = tl.full([BLOCK_M], 0.0, tl.float32)
        acc_t = tl.full([BLOCK_M, BLOCK_D], 0.0, tl.float32)
    for start in range(0, M, BLOCK_N):
        keys = start + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
        kv_at = bh * M * D + keys[:, None] * D + dims[None, :]  # (BLOCK_N, BLOCK_D)
        kv_in = (keys[:, None] < M) & (dims[None, :] < D)
        k = tl.load(K + kv_at, mask=kv_in, other=0.0).to(DOT)
        v = tl.load(V + kv_at, mask=kv_in, other=0.0).to(DOT)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # S_j log2(e)
        s = tl.where(keys[None, :] < M, s, float("-inf"))  # (BLOCK_M, BLOCK_N)
        m_new = tl.maximum(m_i, tl.reduce(s, 1, tl.standard._elementwise_max))  # rowmax
        a = tl.exp2(m_i - m_new)  # (BLOCK_M,): rescales everything accumulated so far
        p = tl.exp2(s - m_new[:, None])  # P~_j, float32
        l_i = l_i * a + tl.reduce(p, 1, tl.standard._sum_combine)  # rowsum
        acc = acc * a[:, None] + tl.dot(p.to(DOT), v, input_precision=PRECISION)
        if TANGENT:
            tk = tl.load(TK + kv_at, mask=kv_in, other=0.0).to(DOT)
            tv = tl.load(TV + kv_at, mask=kv_in, other=0.0).to(DOT)
            ts = tl.dot(tq, tl.trans(k), input_precision=PRECISION)
            ts = tl.dot(q, tl.trans(tk), ts, input_precision=PRECISION) * scale  # t_S_j
            pts = p * ts  # P~_j o t_S_j: (BLOCK_M, BLOCK_N), float32
            g = g * a + tl.reduce(pts, 1, tl.standard._sum_combine)
            acc_t = acc_t * a[:, None] + tl.dot(pts.to(DOT), v, input_precision=PRECISION)
            acc_t = tl.dot(p.to(DOT), tv, acc_t, input_precision=PRECISION)
        m_i = m_new
    y = acc / l_i[:, None]
    tl.store(Y + q_at, y.to(Y.dtype.element_ty), mask=q_in)
    lse = (m_i + tl.log2(l_i)) * 0.6931471805599453  # log2 units -> natural log: * ln 2
    tl.store(LSE + bh * N + rows, lse, mask=rows < N)
    if TANGENT:
        ty = (acc_t - g[:, None] * y) / l_i[:, None]
        tl.store(TY + q_at, ty.to(TY.dtype.element_ty), mask=q_in)


@functools.cache
def _kernel(interpret: bool):
    """The kernel run by the interpreter, or compiled for the GPU: chosen per call (by
    ``_interpret``), not by TRITON_INTERPRET at import as ``@triton.jit`` would, so one process
    (a pytest session) can run both."""
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(_attention_kernel)
    return triton.JITFunction(_attention_kernel)


def _interpret(x: Tensor) -> bool:
    """Interpreter for CPU tensors, and for any tensor while TRITON_INTERPRET=1 (Triton's switch
    for debugging kernels: the interpreter copies CUDA tensors to the host and back)."""
    return x.device.type == "cpu" or os.environ.get("TRITON_INTERPRET") == "1"


def _block_size(block: int | None, q: Tensor) -> int:
    """``block``, or by default 64 (tiles of at most 256 bytes per row: a 64-row float32 tangent
    kernel at head dim 128 would need ~230 KB of shared memory, more than an H100 has)."""
    row_bytes = max(16, triton.next_power_of_2(q.shape[-1])) * q.element_size()
    return block or max(16, 64 * 256 // max(row_bytes, 256))


def _check(q: Tensor, k: Tensor, v: Tensor, tangents: tuple, block: int) -> None:
    """Shapes, dtypes and devices the kernel handles, or a ValueError naming what is wrong."""
    if q.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("triton attention runs on CUDA; on CPU only with TRITON_INTERPRET=1")
    if block < 16 or block & (block - 1):
        raise ValueError(f"attention.block_size must be a power of two >= 16, got {block}")
    if str(q.dtype).removeprefix("torch.") not in _DTYPES:
        raise ValueError(f"triton attention takes {', '.join(_DTYPES)}, got {q.dtype}")
    if q.ndim != 4 or k.shape != v.shape or k.shape[:2] + k.shape[3:] != q.shape[:2] + q.shape[3:]:
        raise ValueError(f"q (B, h, N, d), k, v (B, h, M, d), got {q.shape}, {k.shape}, {v.shape}")
    for t, x in zip(tangents, (q, k, v), strict=True):
        if t is not None and t.shape != x.shape:
            raise ValueError(f"a tangent must be shaped like its primal: {t.shape} vs {x.shape}")
    if any(x.dtype != q.dtype or x.device != q.device for x in (k, v, *tangents) if x is not None):
        raise ValueError("q, k, v and tangents must share one dtype and device")


def _launch(q: Tensor, k: Tensor, v: Tensor, block: int, tq=None, tk=None, tv=None):
    """Run the kernel: y (B, h, N, d) in q's dtype, lse (B, h, N) float32, and t_y like y when
    any tangent is given (None counts as zero), else None."""
    if triton is None:
        raise RuntimeError("attention kernel triton needs the triton package (pip install triton)")
    tangents, block = (tq, tk, tv), _block_size(block, q)
    _check(q, k, v, tangents, block)
    (b, h, n, d), m = q.shape, k.shape[-2]
    tangent = any(t is not None for t in tangents)
    # (B, h, N, d) -> contiguous, read by the kernel as (B * h, N, d): O(N d) copies at most.
    q, k, v = (x.detach().contiguous() for x in (q, k, v))
    tq, tk, tv = q, k, v  # placeholders without tangents: the kernel never reads them
    if tangent:
        zero = lambda t, x: torch.zeros_like(x) if t is None else t.detach().contiguous()
        tq, tk, tv = (zero(t, x) for t, x in zip(tangents, (q, k, v), strict=True))
    y, lse = torch.empty_like(q), q.new_empty((b, h, n), dtype=torch.float32)
    ty = torch.empty_like(y) if tangent else y
    interpret = _interpret(q)
    dot = tl.float32 if interpret else getattr(tl, str(q.dtype).removeprefix("torch."))
    highest = torch.get_float32_matmul_precision() == "highest"
    precision = "ieee" if dot == tl.float32 and highest else "tf32"  # "tf32": Triton's default
    stages = 2 if dot == tl.float32 else 3  # float32 tiles: 2 buffered stages fit shared memory
    grid = (triton.cdiv(n, block), b * h)
    _kernel(interpret)[grid](
        q, k, v, tq, tk, tv, y, ty, lse, n, m, d, d**-0.5, d**-0.5 * 1.4426950408889634,
        TANGENT=tangent, DOT=dot, PRECISION=precision,
        BLOCK_M=block, BLOCK_N=block, BLOCK_D=max(16, triton.next_power_of_2(d)),
        num_warps=4, num_stages=stages,
    )  # fmt: skip
    return y, lse, ty if tangent else None


class _TritonAttention(torch.autograd.Function):
    """(y, lse, t_y) from one kernel pass; t_y (None without tangents) is not differentiable.

    backward: ``_flash_backward`` from the saved lse (d lse flows in too). jvp (forward-mode AD,
    e.g. torch.func.jvp through a net): ``_flash_tangent``, the blockwise PyTorch tangent pass
    from the saved lse (under torch.func the saved tensors are functorch wrappers, which have
    no storage for a kernel to read).
    """

    @staticmethod
    def forward(q, k, v, tq, tk, tv, block: int, backward_block: int):
        return _launch(q, k, v, block, tq, tk, tv)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, *_, ctx.block, ctx.backward_block = inputs
        y, lse, ty = output
        ctx.save_for_backward(q, k, v, y, lse)
        ctx.save_for_forward(q, k, v, y, lse)
        if ty is not None:
            ctx.mark_non_differentiable(ty)

    @staticmethod
    def backward(ctx, dy, dlse, _dty):
        q, k, v, y, lse = ctx.saved_tensors
        dq, dk, dv = _flash_backward(q, k, v, y, lse, dy, dlse, ctx.backward_block)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None, None

    @staticmethod
    def jvp(ctx, gq, gk, gv, *_):
        q, k, v, y, lse = ctx.saved_tensors
        ty, tlse = _flash_tangent(q, k, v, y, lse, ctx.backward_block, gq, gk, gv)
        return ty.to(q.dtype), tlse, None


def _zero_if_none(q: Tensor, tq, tk, tv) -> tuple:
    """All three tangents None (a JVP along zero): t_Q = 0, so the kernel still runs its tangent."""
    if tq is None and tk is None and tv is None:
        return torch.zeros_like(q), tk, tv
    return tq, tk, tv


def triton_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_size: int | None = BLOCK,  # None: 64, less for wide float32 heads
    backward_block: int = BACKWARD_BLOCK,
) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V by the Triton kernel; differentiable (backward and forward AD).

    q: (B, heads, N, d), k, v: (B, heads, M, d) -> (B, heads, N, d) in q's dtype.
    """
    return _TritonAttention.apply(q, k, v, None, None, None, block_size, backward_block)[0]


@torch.no_grad()
def triton_attention_jvp(
    q: Tensor, k: Tensor, v: Tensor, tq, tk, tv, block_size: int | None = BLOCK
) -> tuple[Tensor, Tensor]:
    """(y, t_y) in one kernel pass, not recorded by autograd: the fused JVP of attention.

    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V,  t_S = (t_Q K^T + Q t_K^T) / sqrt(d).
    A tangent passed as None counts as zero. Shapes as in ``triton_attention``.
    """
    y, _, ty = _launch(q, k, v, block_size, *_zero_if_none(q, tq, tk, tv))
    return y, ty


class TritonAttention:
    """attend(q, k, v) = ``triton_attention(q, k, v)``, plus ``jvp`` for the nets' one-pass fast
    JVP (``forward_jvp``), like ``attention.FusedAttention``. A plain object: nets holding it
    pickle and deepcopy."""

    def __init__(self, block_size: int | None = BLOCK, backward_block: int = BACKWARD_BLOCK):
        if block_size is not None and (block_size < 16 or block_size & (block_size - 1)):
            raise ValueError(f"attention.block_size must be a power of two >= 16, got {block_size}")
        self.block_size, self.backward_block = block_size, backward_block

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return triton_attention(q, k, v, self.block_size, self.backward_block)

    def jvp(self, q: Tensor, k: Tensor, v: Tensor, tq, tk, tv) -> tuple[Tensor, Tensor]:
        """(y, t_y) from one kernel pass: y is recorded by autograd when gradients are on (so F
        trains; backward from the saved lse), t_y never."""
        if not (torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))):
            return triton_attention_jvp(q, k, v, tq, tk, tv, self.block_size)
        tangents = _zero_if_none(q, tq, tk, tv)
        y, _, ty = _TritonAttention.apply(q, k, v, *tangents, self.block_size, self.backward_block)
        return y, ty

    def __repr__(self) -> str:
        return f"TritonAttention(block_size={self.block_size})"

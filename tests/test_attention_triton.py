"""The Triton attention kernel, run by Triton's interpreter on CPU tensors: its y, t_y, lse and
gradients equal math attention (torch.func.jvp, float64) and the blockwise flash JVP, for
lengths that are not multiples of the 16-token block and for cross-attention (M != N)."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from helpers import rel_err

pytest.importorskip("triton")

from scm_bench.nets.attention import flash_attention_jvp  # noqa: E402
from scm_bench.nets.attention_triton import (  # noqa: E402
    TritonAttention,
    _block_size,
    _launch,
    triton_attention,
    triton_attention_jvp,
    triton_available,
)
from scm_bench.nets.layers import math_attention  # noqa: E402

BLOCK = 16  # the kernel's query and key tile: N = 37 spans 3 blocks, the last one masked
SHAPES = [(16, 16), (37, 37), (37, 21)]  # (N, M): one block, ragged, cross-attention
IDS = ["one_block", "ragged", "cross"]


@pytest.fixture(autouse=True, scope="module")
def interpreter():
    """TRITON_INTERPRET=1 for this module only (CPU tensors need it; set per call, not per
    import, so a CUDA test in the same process still compiles its kernel)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        yield


def data(n: int, m: int, dtype=torch.float32, seed: int = 0):
    """Primals q (2, 2, n, 16), k, v (2, 2, m, 16) and tangents shaped alike."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, 2, n, 16), (2, 2, m, 16), (2, 2, m, 16)] * 2
    xs = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    return tuple(xs[:3]), tuple(xs[3:])


def reference(primals, tangents):
    """(y, t_y) by torch.func.jvp through math attention, in float64."""
    as64 = lambda xs: tuple(x.double() for x in xs)
    return torch.func.jvp(math_attention, as64(primals), as64(tangents))


@pytest.mark.parametrize("n,m", SHAPES, ids=IDS)
def test_y_and_tangent_equal_math_jvp_and_the_blockwise_flash_jvp(n, m):
    primals, tangents = data(n, m)
    y, ty = triton_attention_jvp(*primals, *tangents, block_size=BLOCK)
    y64, ty64 = reference(primals, tangents)
    y_flash, ty_flash = flash_attention_jvp(*primals, *tangents, block_size=BLOCK)
    assert y.dtype == ty.dtype == torch.float32 and y.shape == ty.shape == primals[0].shape
    assert ty64.abs().max() > 0.5  # a real tangent
    assert (y.double() - y64).abs().max() <= 1e-5
    assert (ty.double() - ty64).abs().max() <= 1e-5
    assert (y - y_flash).abs().max() <= 1e-5
    assert (ty - ty_flash).abs().max() <= 1e-5


@pytest.mark.parametrize("n,m", SHAPES[1:], ids=IDS[1:])
def test_lse_equals_logsumexp_of_the_scores(n, m):
    """The row logsumexp the backward reuses (a natural log, though the kernel works in log2)."""
    (q, k, v), _ = data(n, m)
    _, lse, ty = _launch(q, k, v, BLOCK)
    lse64 = torch.logsumexp(q.double() @ k.double().transpose(-2, -1) / 4.0, dim=-1)  # sqrt(16)
    assert ty is None and lse.dtype == torch.float32 and lse.shape == (2, 2, n)
    assert (lse.double() - lse64).abs().max() <= 1e-5


@pytest.mark.parametrize("n,m", SHAPES[1:], ids=IDS[1:])
def test_gradients_of_triton_attention_equal_math_attention(n, m):
    """The backward (attention._flash_backward from the kernel's lse) gives math's gradients."""
    primals, _ = data(n, m)
    dy = torch.randn(primals[0].shape, generator=torch.Generator().manual_seed(9))
    grads = {}
    for name, attend in (("triton", TritonAttention(BLOCK, backward_block=16)), ("math", None)):
        ins = [x.double().requires_grad_() if attend is None else x.clone().requires_grad_()
               for x in primals]  # fmt: skip
        y = math_attention(*ins) if attend is None else attend(*ins)
        (y.to(dy.dtype) * dy).sum().backward()
        grads[name] = [x.grad for x in ins]
    for g, g64 in zip(grads["triton"], grads["math"], strict=True):
        assert (g.double() - g64).abs().max() <= 1e-5


def test_forward_ad_through_triton_attention_equals_math_jvp():
    """torch.func.jvp and forward_ad dual numbers through triton_attention: the Function's jvp
    (the blockwise tangent pass from the kernel's lse)."""
    primals, tangents = data(37, 21)
    y64, ty64 = reference(primals, tangents)
    call = lambda q, k, v: triton_attention(q, k, v, block_size=BLOCK, backward_block=16)
    y, ty = torch.func.jvp(call, primals, tangents)
    with fwAD.dual_level():
        dual = fwAD.unpack_dual(call(*map(fwAD.make_dual, primals, tangents)))
    for out, out64 in ((y, y64), (ty, ty64), (dual.primal, y64), (dual.tangent, ty64)):
        assert (out.double() - out64).abs().max() <= 1e-5


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_half_precision_inputs_match_float64_math_on_the_rounded_inputs(dtype, tol):
    """Outputs in the input dtype; float32 accumulation leaves only the output rounding
    (interpreter: float32 matmul operands; bfloat16 eps = 2^-8, float16 eps = 2^-11)."""
    primals, tangents = data(37, 21, dtype=dtype)
    y, ty = triton_attention_jvp(*primals, *tangents, block_size=BLOCK)
    y64, ty64 = reference(primals, tangents)
    assert y.dtype == ty.dtype == dtype
    assert rel_err(y, y64) < tol
    assert rel_err(ty, ty64) < tol


def test_none_tangents_count_as_zero():
    primals, (tq, tk, tv) = data(37, 21)
    zeros = [torch.zeros_like(x) for x in primals]
    y, ty = triton_attention_jvp(*primals, None, tk, None, block_size=BLOCK)
    _, ty_ref = triton_attention_jvp(*primals, zeros[0], tk, zeros[2], block_size=BLOCK)
    assert torch.equal(ty, ty_ref)
    _, ty0 = triton_attention_jvp(*primals, None, None, None, block_size=BLOCK)
    assert torch.equal(ty0, torch.zeros_like(ty0))


def test_jvp_keeps_the_graph_of_y_only_and_matches_the_call():
    """TritonAttention.jvp: one pass; with grads on, y carries a graph whose gradient equals the
    call's, t_y has none; under no_grad neither does."""
    attend = TritonAttention(BLOCK)
    primals, tangents = data(37, 37)
    ins = [x.clone().requires_grad_() for x in primals]
    y, ty = attend.jvp(*ins, *tangents)
    assert y.requires_grad and not ty.requires_grad
    y_call = attend(*ins)
    assert torch.equal(y.detach(), y_call.detach())
    g = torch.autograd.grad(y.sum(), ins)
    g_call = torch.autograd.grad(y_call.sum(), ins)
    assert all(torch.equal(a, b) for a, b in zip(g, g_call, strict=True))
    with torch.no_grad():
        y_ng, ty_ng = attend.jvp(*ins, *tangents)
    assert not y_ng.requires_grad and torch.equal(ty_ng, ty)


def test_non_contiguous_inputs_give_the_contiguous_result():
    """The U-Net's q, k, v are transposed views (B, heads, HW, C/heads)."""
    primals, tangents = data(37, 37)
    views = [x.transpose(-2, -1).contiguous().transpose(-2, -1) for x in (*primals, *tangents)]
    assert not views[0].is_contiguous()
    y, ty = triton_attention_jvp(*views, block_size=BLOCK)
    y_ref, ty_ref = triton_attention_jvp(*primals, *tangents, block_size=BLOCK)
    assert torch.equal(y, y_ref) and torch.equal(ty, ty_ref)


def test_default_tile_is_64_rows_fewer_for_wide_float32_heads_and_gives_the_same_values():
    """block_size=None: 64 (one masked tile for N = 37 here), 32 for float32 at head dim 128."""
    wide = lambda dtype: torch.empty(1, 1, 1, 128, dtype=dtype)
    assert _block_size(None, wide(torch.float32)) == 32
    assert _block_size(None, wide(torch.bfloat16)) == _block_size(None, torch.empty(1, 16)) == 64
    primals, tangents = data(37, 21)
    y, ty = TritonAttention().jvp(*primals, *tangents)
    y16, ty16 = triton_attention_jvp(*primals, *tangents, block_size=BLOCK)
    assert (y - y16).abs().max() <= 1e-6 and (ty - ty16).abs().max() <= 1e-6


def test_object_pickles_and_bad_inputs_name_the_problem(monkeypatch):
    attend = pickle.loads(pickle.dumps(TritonAttention(32)))
    assert repr(attend) == "TritonAttention(block_size=32)"
    with pytest.raises(ValueError, match="attention.block_size must be a power of two >= 16"):
        TritonAttention(24)
    primals, _ = data(16, 16)
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        triton_attention(*(x.double() for x in primals))
    with pytest.raises(ValueError, match="q \\(B, h, N, d\\)"):
        triton_attention(primals[0], primals[1][..., :8], primals[2])
    assert triton_available()
    monkeypatch.delenv("TRITON_INTERPRET")
    if not torch.cuda.is_available():
        assert not triton_available()
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            triton_attention(*primals)

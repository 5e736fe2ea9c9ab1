"""The fused flash-attention JVP equals autodiff through math attention; the DiT's JVP is exact."""

from __future__ import annotations

import os
import pickle
from functools import partial

import pytest
import torch
from torch.autograd import forward_ad
from torch.nn.functional import scaled_dot_product_attention

from scm_bench.errors import RunError
from scm_bench.nets.attend import FlashAttend, attention_jvp, make_attend
from scm_bench.nets.attention import FusedAttention, flash_attention, flash_attention_jvp
from scm_bench.nets.dit import DiT
from scm_bench.nets.embed import CondConfig
from scm_bench.nets.layers import math_attention

# (B, heads, N query, M key, head dim, block): N a multiple of the block, N not a multiple,
# N smaller than one block, cross-attention shapes (N != M), a single-row query.
SHAPES = [
    (2, 2, 64, 64, 16, 16),
    (2, 3, 100, 100, 16, 32),
    (1, 2, 7, 7, 8, 32),
    (2, 2, 50, 37, 8, 16),
    (1, 1, 1, 20, 4, 8),
]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def qkv_and_tangents(shape, seed=0, dtype=torch.float64):
    b, h, n, m, d, _ = shape
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=gen, dtype=dtype)
    k, v = (torch.randn(b, h, m, d, generator=gen, dtype=dtype) for _ in range(2))
    return (q, k, v), tuple(torch.randn(x.shape, generator=gen, dtype=dtype) for x in (q, k, v))


@pytest.mark.parametrize("shape", SHAPES)
def test_fused_tangent_equals_func_jvp_through_math_attention(shape):
    primals, tangents = qkv_and_tangents(shape)
    y_ref, ty_ref = torch.func.jvp(math_attention, primals, tangents)
    fused = lambda q, k, v: flash_attention(q, k, v, shape[-1])
    y, ty = torch.func.jvp(fused, primals, tangents)
    assert rel_err(y, y_ref) < 1e-6
    assert rel_err(ty, ty_ref) < 1e-6


@pytest.mark.parametrize("shape", SHAPES)
def test_single_pass_jvp_equals_func_jvp_through_math_attention(shape):
    primals, tangents = qkv_and_tangents(shape, seed=1)
    y_ref, ty_ref = torch.func.jvp(math_attention, primals, tangents)
    y, ty = flash_attention_jvp(*primals, *tangents, block_size=shape[-1])
    assert rel_err(y, y_ref) < 1e-6
    assert rel_err(ty, ty_ref) < 1e-6


@pytest.mark.parametrize("shape", SHAPES[1:3])
@pytest.mark.parametrize("dual", [(0,), (1,), (2,), (0, 2), (0, 1, 2)])
def test_fused_tangent_under_forward_ad_with_some_inputs_dual(shape, dual):
    """forward_ad passes no tangent (None) for plain inputs; those count as zero."""
    primals, tangents = qkv_and_tangents(shape, seed=2)
    zeroed = tuple(t if i in dual else torch.zeros_like(t) for i, t in enumerate(tangents))
    _, ty_ref = torch.func.jvp(math_attention, primals, zeroed)
    with forward_ad.dual_level():
        args = [
            forward_ad.make_dual(p, t) if i in dual else p
            for i, (p, t) in enumerate(zip(primals, tangents, strict=True))
        ]
        y, ty = forward_ad.unpack_dual(flash_attention(*args, block_size=shape[-1]))
    assert rel_err(y, math_attention(*primals)) < 1e-6
    assert rel_err(ty, ty_ref) < 1e-6


@pytest.mark.parametrize("shape", SHAPES)
def test_primal_and_gradient_equal_sdpa(shape):
    primals, _ = qkv_and_tangents(shape, seed=3)
    grad_out = torch.randn(primals[0].shape, dtype=torch.float64)
    ref_in = [p.clone().requires_grad_() for p in primals]
    ref = scaled_dot_product_attention(*ref_in)
    ref_grads = torch.autograd.grad(ref, ref_in, grad_out)
    ins = [p.clone().requires_grad_() for p in primals]
    y = flash_attention(*ins, block_size=shape[-1])
    grads = torch.autograd.grad(y, ins, grad_out)
    assert rel_err(y, ref) < 1e-10
    for g, g_ref in zip(grads, ref_grads, strict=True):
        assert rel_err(g, g_ref) < 1e-10


def test_gradcheck_forward_and_backward_modes_and_gradient_of_the_tangent():
    """Finite-difference gradcheck (both AD modes) and d(tangent)/d(inputs) equals math's."""
    primals, tangents = qkv_and_tangents((1, 2, 11, 11, 4, 4), seed=6)
    ins = [x.clone().requires_grad_() for x in primals + tangents]
    fused = lambda q, k, v: flash_attention(q, k, v, 4)
    assert torch.autograd.gradcheck(fused, ins[:3], check_forward_ad=True)
    grads = []
    for attend in (math_attention, fused):
        y, ty = torch.func.jvp(attend, tuple(ins[:3]), tuple(ins[3:]))
        grads.append(torch.autograd.grad(ty.square().sum() + (y * ty).sum(), ins))
    for g, g_ref in zip(grads[1], grads[0], strict=True):
        assert rel_err(g, g_ref) < 1e-10


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_accumulate_in_float32(dtype):
    """Output and tangent keep the input dtype and are as close to float64 as its rounding."""
    shape = (1, 2, 100, 100, 16, 32)
    primals, tangents = qkv_and_tangents(shape, seed=4)
    y_ref, ty_ref = torch.func.jvp(math_attention, primals, tangents)
    low = lambda xs: tuple(x.to(dtype) for x in xs)
    y, ty = torch.func.jvp(
        lambda q, k, v: flash_attention(q, k, v, 32), low(primals), low(tangents)
    )
    assert y.dtype == ty.dtype == dtype
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3  # a few units of the input's rounding
    assert rel_err(y.double(), y_ref) < tol
    assert rel_err(ty.double(), ty_ref) < tol


def test_make_attend_picks_the_op_and_names_the_field_on_a_bad_value():
    assert make_attend("math", 64) is math_attention
    fused = make_attend("flash", 32)
    assert isinstance(fused, FlashAttend)
    assert pickle.loads(pickle.dumps(fused)).block_size == 32  # nets holding it pickle
    primals, _ = qkv_and_tangents(SHAPES[1])
    assert rel_err(fused(*primals), math_attention(*primals)) < 1e-12
    with pytest.raises(ValueError, match=r"attention\.kernel.*flash, math, triton.*'fused'"):
        make_attend("fused", 64)
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        with pytest.raises(RunError, match=r"attention\.kernel: triton needs a CUDA GPU"):
            make_attend("triton")
    with pytest.raises(ValueError, match=r"attention\.block_size"):
        make_attend("flash", 0)


def small_dit(
    adagn="double", time_embedding="positional", attend=math_attention, classes=0, dropout=0.0
):
    """A float64 DiT on 8x8 images (16 tokens) with every weight random, zero-inits included."""
    torch.manual_seed(0)
    cond = CondConfig(0.5, 32, time_embedding=time_embedding, adagn=adagn, dropout=dropout,
                      num_classes=classes)  # fmt: skip
    net = DiT(2, 8, cond, width=32, depth=2, patch_size=2, heads=2, attend=attend).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def dit_inputs(batch=3):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(batch, 2, 8, 8, generator=gen, dtype=torch.float64)
    t = 0.2 + 1.2 * torch.rand(batch, generator=gen, dtype=torch.float64)
    tx = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return (x, t), (tx, torch.ones_like(t))


@pytest.mark.parametrize("time_embedding", ["positional", "fourier"])
@pytest.mark.parametrize("adagn", ["double", "single", "scale"])
def test_dit_jvp_equals_float64_central_difference(adagn, time_embedding):
    net = small_dit(adagn, time_embedding, attend=make_attend("flash", 5))  # 16 tokens, block 5
    (x, t), (tx, tt) = dit_inputs()
    out, tangent = torch.func.jvp(net, (x, t), (tx, tt))
    eps = 1e-6
    with torch.no_grad():
        fd = (net(x + eps * tx, t + eps * tt) - net(x - eps * tx, t - eps * tt)) / (2 * eps)
    assert out.shape == x.shape
    assert rel_err(tangent, fd) < 1e-4


def test_dit_fused_and_autograd_attention_agree_on_outputs_tangents_and_gradients():
    math_net = small_dit("double", classes=10)
    fused_net = small_dit("double", classes=10, attend=make_attend("flash", 6))
    fused_net.load_state_dict(math_net.state_dict())
    (x, t), tangents = dit_inputs()
    labels = torch.tensor([0, 3, 10])  # 10 = the null label
    results = []
    for net in (math_net, fused_net):
        out, tangent = torch.func.jvp(partial(net, y=labels), (x, t), tangents)
        (out * tangent.detach()).sum().backward()  # sCM-like: primal trained, JVP detached
        results.append((out, tangent, [p.grad for p in net.parameters()]))
    (out0, tan0, grads0), (out1, tan1, grads1) = results
    assert rel_err(out1, out0) < 1e-10
    assert rel_err(tan1, tan0) < 1e-10
    for g1, g0 in zip(grads1, grads0, strict=True):
        assert rel_err(g1, g0) < 1e-10


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("attend", [FusedAttention(16), math_attention], ids=["fused", "math"])
def test_attention_jvp_pair_for_the_fast_path(attend, grad):
    """(y, t_y) equals func.jvp through math; y has a graph exactly when grads are on, t_y never."""
    primals, tangents = qkv_and_tangents(SHAPES[1], seed=7)
    y_ref, ty_ref = torch.func.jvp(math_attention, primals, tangents)
    ins = [p.clone().requires_grad_(grad) for p in primals]
    y, ty = attention_jvp(attend, *ins, *tangents)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(ty, ty_ref) < 1e-10
    assert y.requires_grad == grad and not ty.requires_grad


@pytest.mark.parametrize("adagn", ["double", "single", "scale"])
@pytest.mark.parametrize("kernel", ["flash", "math"])
def test_dit_fast_forward_jvp_equals_func_jvp_and_trains_like_forward(kernel, adagn):
    """The one-pass forward_jvp (dropout 0.3, same RNG state) gives func.jvp's F and tangent,
    and F's gradient equals that of the plain forward."""
    net = small_dit(adagn, classes=10, attend=make_attend(kernel, 5), dropout=0.3).train()
    (x, t), (tx, tt) = dit_inputs()
    labels = torch.tensor([0, 3, 10])
    rng = torch.get_rng_state()
    with torch.no_grad():
        ref, tref = torch.func.jvp(partial(net, y=labels), (x, t), (tx, tt))
    torch.set_rng_state(rng)
    out, tangent = net.forward_jvp(x, tx, t, tt, labels)
    assert rel_err(out, ref) < 1e-10 and rel_err(tangent, tref) < 1e-10
    assert not tangent.requires_grad
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    torch.set_rng_state(rng)
    ref_grads = torch.autograd.grad(net(x, t, labels).square().sum(), list(net.parameters()))
    for g, g_ref in zip(grads, ref_grads, strict=True):
        assert rel_err(g, g_ref) < 1e-10

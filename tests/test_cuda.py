"""On a CUDA device: the compiled Triton attention kernel equals math attention's JVP (float32,
bfloat16), every net's forward_jvp on CUDA equals the CPU one, and the sCT loss on CUDA equals
the CPU loss for the same inputs. Skipped without CUDA (scripts/gpu_check.sh runs it)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import SIGMA_D, perturb_, rel_err, small_net, trigflow_batch

from scm_bench.nets.attention import FusedAttention
from scm_bench.nets.jvp import math_attention_jvp
from scm_bench.nets.layers import math_attention

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")
ARCHS = ("mlp", "unet", "dit")


@pytest.fixture(autouse=True)
def exact_float32():
    """IEEE float32 matmuls (also the kernel's: "ieee" dots) and convolutions (cuDNN defaults
    to TF32 for convolutions)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    with torch.backends.cudnn.flags(allow_tf32=False):
        yield
    torch.set_float32_matmul_precision(precision)


def triton_module():
    return pytest.importorskip("scm_bench.nets.attention_triton")


def data(n: int, m: int, dtype, heads: int = 4, d: int = 64, seed: int = 0):
    """Primals q (2, heads, n, d), k, v (2, heads, m, d) and tangents alike, on CUDA (drawn on
    the CPU, so the values do not depend on the device)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, heads, n, d), (2, heads, m, d), (2, heads, m, d)] * 2
    xs = [torch.randn(s, generator=gen).to(CUDA, dtype) for s in shapes]
    return tuple(xs[:3]), tuple(xs[3:])


# The kernel, compiled: against math attention's JVP in float64 on the same device.


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("n,m", [(256, 256), (300, 300), (300, 177), (1000, 40)])
def test_triton_kernel_equals_math_attention_jvp(dtype, tol, n, m):
    at = triton_module()
    primals, tangents = data(n, m, dtype)
    y, ty = at.triton_attention_jvp(*primals, *tangents)
    y64, ty64 = math_attention_jvp(*(x.double() for x in (*primals, *tangents)))
    assert y.dtype == ty.dtype == dtype
    assert rel_err(y, y64) < tol and rel_err(ty, ty64) < tol


@pytest.mark.parametrize("d", [16, 128])
def test_triton_kernel_at_other_head_dims_and_its_gradients(d):
    """Head dims 16 (the small nets) and 128 (float32 tile 32); backward via _flash_backward."""
    at = triton_module()
    primals, tangents = data(300, 200, torch.float32, heads=2, d=d)
    y, ty = at.triton_attention_jvp(*primals, *tangents)
    y64, ty64 = math_attention_jvp(*(x.double() for x in (*primals, *tangents)))
    assert rel_err(y, y64) < 1e-5 and rel_err(ty, ty64) < 1e-5
    ins = [x.clone().requires_grad_() for x in primals]
    ins64 = [x.double().requires_grad_() for x in primals]
    dy = torch.randn_like(y)
    (at.triton_attention(*ins) * dy).sum().backward()
    (math_attention(*ins64) * dy.double()).sum().backward()
    for x, x64 in zip(ins, ins64, strict=True):
        assert rel_err(x.grad, x64.grad) < 1e-5


# Every net: forward_jvp on CUDA equals forward_jvp on the CPU.


def net_and_inputs(arch: str, dtype=torch.float64, **kw):
    """A perturbed eval-mode net (CPU), its batch shape, and forward_jvp's inputs: x = x_t /
    sigma_d, t_x = (dx_t/dt) / sigma_d, t and t_t = 1."""
    torch.manual_seed(0)  # the initial weights
    net, shape = small_net(arch, **kw)
    net = perturb_(net, seed=1).eval().to(dtype)
    t = torch.linspace(0.2, 1.4, shape[0], dtype=dtype)
    _, _, x_t, dxdt = trigflow_batch(shape, t, dtype=dtype)
    return net, shape, (x_t / SIGMA_D, dxdt / SIGMA_D, t, torch.ones_like(t))


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_jvp_on_cuda_equals_cpu(arch):
    net, _, ins = net_and_inputs(arch)
    with torch.no_grad():
        f, tf = net.forward_jvp(*ins)
        f_cuda, tf_cuda = copy.deepcopy(net).to(CUDA).forward_jvp(*(x.to(CUDA) for x in ins))
    assert tf.abs().max() > 1e-2  # a real tangent
    assert rel_err(f_cuda.cpu(), f) < 1e-10 and rel_err(tf_cuda.cpu(), tf) < 1e-10


def test_dit_with_triton_attention_on_cuda_equals_blockwise_on_cpu():
    """A float32 DiT whose attention is TritonAttention (CUDA) vs FusedAttention (CPU)."""
    at = triton_module()
    net, _, ins = net_and_inputs("dit", torch.float32, attend=FusedAttention(16))
    net_cuda = copy.deepcopy(net).to(CUDA)
    for block in net_cuda.blocks:
        block.attn.attend = at.TritonAttention()
    with torch.no_grad():
        f, tf = net.forward_jvp(*ins)
        f_cuda, tf_cuda = net_cuda.forward_jvp(*(x.to(CUDA) for x in ins))
    assert rel_err(f_cuda.cpu(), f) < 1e-5 and rel_err(tf_cuda.cpu(), tf) < 1e-5


# The sCT loss: CUDA equals CPU.


def sct_loss_and_grads(arch: str, device: torch.device):
    """Per-sample sCT loss and the net's gradients on ``device``, float64, fixed t and noise."""
    from scm_bench.core.jvp import JVPConfig
    from scm_bench.core.losses import SCMLoss
    from scm_bench.core.tangent import TangentConfig

    net, shape, _ = net_and_inputs(arch)
    net = net.train().to(device)
    t = torch.linspace(0.1, 1.5, shape[0], dtype=torch.float64)
    x0, z, _, _ = trigflow_batch(shape, t)
    loss_fn = SCMLoss(
        SIGMA_D, "sct", tangent=TangentConfig(warmup_steps=0), jvp=JVPConfig(precision="float64")
    )
    loss, _ = loss_fn(net, x0.to(device), step=1, t=t.to(device), z=z.to(device))
    loss.sum().backward()
    return loss.detach().cpu(), [p.grad.cpu() for p in net.parameters()]


@pytest.mark.parametrize("arch", ARCHS)
def test_sct_loss_and_gradients_on_cuda_equal_cpu(arch):
    loss, grads = sct_loss_and_grads(arch, torch.device("cpu"))
    loss_cuda, grads_cuda = sct_loss_and_grads(arch, CUDA)
    assert loss.abs().max() > 0
    assert rel_err(loss_cuda, loss) < 1e-10
    for g, g_cuda in zip(grads, grads_cuda, strict=True):
        assert torch.allclose(g_cuda, g, rtol=1e-8, atol=1e-12)


def test_flash_kernel_switch_runs_the_triton_kernel_on_cuda(monkeypatch):
    """attention.kernel=flash picks the Triton kernel by itself for CUDA tensors."""
    at = triton_module()
    from scm_bench.nets.attend import make_attend

    calls = []
    original = at.TritonAttention.jvp
    monkeypatch.setattr(at.TritonAttention, "jvp", lambda *a: calls.append(1) or original(*a))
    primals, tangents = data(64, 64, torch.float32)
    y, ty = make_attend("flash").jvp(*primals, *tangents)
    y64, ty64 = math_attention_jvp(*(x.double() for x in (*primals, *tangents)))
    assert calls and rel_err(y.double(), y64) < 1e-5 and rel_err(ty.double(), ty64) < 1e-5

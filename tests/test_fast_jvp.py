"""The fast JVP backend (JVP-aware layers, one pass): its F and tangent equal torch.func.jvp's
and a float64 central difference for every net variant, and the sCT / sCD loss and gradients
built on it equal the autograd reference to ~1e-10 in float64."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from helpers import SIGMA_D, perturb_, rel_err, small_mlp, small_net, trigflow_batch

from scm_bench.core import losses
from scm_bench.core.jvp import JVPConfig, RngSnapshot, fast_path_applies, tangent_of_net
from scm_bench.core.losses import GuidedTeacher, SCMLoss
from scm_bench.core.tangent import TangentConfig
from scm_bench.core.weighting import AdaptiveWeight
from scm_bench.nets.attend import make_attend

F64 = torch.float64
ARCHS = ("mlp", "unet", "dit", "unet-fused", "dit-fused")  # -fused: blockwise flash attention
VARIANTS = list(
    itertools.product(
        ("identity", "edm", "scale1000"), ("positional", "fourier"), ("double", "single", "scale")
    )
)


def net64(arch: str, dropout: float = 0.0, seed: int = 1, **kw) -> tuple[torch.nn.Module, tuple]:
    """A perturbed float64 net (train mode, so dropout is active when > 0) and its batch shape.

    ``unet-fused`` / ``dit-fused``: attention through ``FusedAttention`` with 5-token blocks, so
    the 16 tokens of the 4x4 level or the 8x8 patch grid span several blocks."""
    if arch.endswith("-fused"):
        arch, kw = arch.removesuffix("-fused"), kw | {"attend": make_attend("flash", 5)}
    net, shape = small_net(arch, dropout=dropout, **kw)
    return perturb_(net, seed=seed).double().train(), shape


def both_backends(net, x_t, t, dxdt, ordering="rearranged", y=None, precision="float64"):
    """(F, tangent) from the fast and the autograd backend, each pass from one RNG state."""
    rng, out = RngSnapshot.take(), {}
    for backend in ("fast", "autograd"):
        out[backend] = tangent_of_net(
            net,
            x_t,
            t,
            dxdt,
            SIGMA_D,
            y,
            cfg=JVPConfig(ordering=ordering, precision=precision, backend=backend),
            rng=rng,
        )
    return out


# The tangent: fast == torch.func.jvp == float64 central difference.


def _every_case():
    """arch x variant x dropout, 180 cases; the half where (arch + variant + dropout) is even
    still meets every arch with every variant and both dropouts, and stays in the inner loop
    (`-m "not slow"`); the other half is marked slow (the full suite runs all 180)."""
    for (a, arch), (v, variant), (d, dropout) in itertools.product(
        enumerate(ARCHS), enumerate(VARIANTS), enumerate((0.0, 0.3))
    ):
        marks = () if (a + v + d) % 2 == 0 else (pytest.mark.slow,)
        yield pytest.param(arch, *variant, dropout, marks=marks)


@pytest.mark.parametrize("arch,transform,embedding,adagn,dropout", list(_every_case()))
def test_fast_tangent_equals_func_jvp_in_float64(arch, transform, embedding, adagn, dropout):
    """Every time transform x time embedding x AdaNorm mode, with and without dropout (the
    fast pass draws the reference pass's dropout masks), in both orderings."""
    net, shape = net64(
        arch, dropout, time_transform=transform, time_embedding=embedding, adagn=adagn
    )
    t = torch.linspace(0.2, 1.4, shape[0], dtype=F64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    assert fast_path_applies(net, JVPConfig(precision="float64"))
    for ordering in ("rearranged", "naive"):
        out = both_backends(net, x_t, t, dxdt, ordering)
        (f, d), (f_ref, d_ref) = out["fast"], out["autograd"]
        assert d_ref.abs().max() > 1e-2  # a real tangent
        assert rel_err(f, f_ref) < 1e-13
        assert rel_err(d, d_ref) < 1e-12, ordering


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fast_tangent_equals_float64_central_difference(arch, dropout):
    net, shape = net64(arch, dropout)
    t = torch.linspace(0.2, 1.4, shape[0], dtype=F64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    rng = RngSnapshot.take()
    f, d = tangent_of_net(net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(precision="float64"), rng=rng)
    f_fd, d_fd = tangent_of_net(
        net,
        x_t,
        t,
        dxdt,
        SIGMA_D,
        cfg=JVPConfig(precision="float64", backend="finite_difference"),
        rng=rng,
        fd_eps=1e-6,
    )
    assert rel_err(f, f_fd) < 1e-13
    assert rel_err(d, d_fd) < 1e-7


@pytest.mark.parametrize("arch", ARCHS)
def test_fast_tangent_with_class_labels_and_null_class(arch):
    net, shape = net64(arch, num_classes=3)
    t = torch.linspace(0.2, 1.4, shape[0], dtype=F64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    for y in (torch.arange(shape[0]) % 3, None):
        out = both_backends(net, x_t, t, dxdt, y=y)
        assert rel_err(out["fast"][1], out["autograd"][1]) < 1e-12


def test_fast_tangent_has_no_graph_and_f_keeps_it_only_when_asked():
    net, shape = net64("unet")
    t = torch.linspace(0.2, 1.4, shape[0], dtype=F64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    for keep in (False, True):
        f, d = tangent_of_net(
            net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(precision="float64"), keep_graph=keep
        )
        assert f.requires_grad is keep
        assert not d.requires_grad


def test_fast_falls_back_to_autograd_for_low_precision_and_casts():
    """float16 JVP of a float32 net, or a float64 JVP of a float32 net: bit-identical to the
    autograd backend (the same torch.func.jvp call)."""
    net, shape = small_net("mlp")
    perturb_(net).eval()
    t = torch.linspace(0.2, 1.4, shape[0])
    _, _, x_t, dxdt = trigflow_batch(shape, t, dtype=torch.float32)
    for precision in ("float16", "float64"):
        assert not fast_path_applies(net, JVPConfig(precision=precision))
        out = both_backends(net, x_t, t, dxdt, precision=precision)
        assert torch.equal(out["fast"][0], out["autograd"][0])
        assert torch.equal(out["fast"][1], out["autograd"][1])


def conv_calls(fn) -> int:
    """Number of aten convolutions that ``fn()`` runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::convolution")


def test_fast_pass_runs_one_tangent_convolution_per_conv_layer():
    """The fast pass runs each conv twice (primal, W * t_x); forward AD through the ordinary
    forward runs it at least three times (four with torch 2.14 on CPU)."""
    net, shape = net64("unet")
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    t = torch.linspace(0.2, 1.4, shape[0], dtype=F64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    calls = {
        backend: conv_calls(
            lambda b=backend: tangent_of_net(
                net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(precision="float64", backend=b)
            )
        )
        for backend in ("fast", "autograd")
    }
    assert calls["fast"] == 2 * n_conv
    assert calls["autograd"] >= 3 * n_conv


# The loss: backend=fast equals backend=autograd (and so Algorithm 1, see test_core.py).


def loss_and_grads(backend, arch, method, ordering, dropout, target=None):
    """Per-sample loss and every gradient (net, adaptive weight) for one backend, in float64,
    from identical nets, data and RNG state."""
    torch.manual_seed(0)
    net, shape = net64(arch, dropout)
    teacher = net64(arch, seed=2)[0].eval().requires_grad_(False)
    adaptive = AdaptiveWeight()
    with torch.no_grad():
        adaptive.linear.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(3))
    t = torch.linspace(0.1, 1.5, shape[0], dtype=F64)
    x0, z, _, _ = trigflow_batch(shape, t)
    loss_fn = SCMLoss(
        SIGMA_D,
        method,
        adaptive=adaptive,
        teacher=GuidedTeacher(teacher),
        tangent=TangentConfig(warmup_steps=100),
        jvp=JVPConfig(ordering=ordering, precision="float64", backend=backend),
    )
    torch.manual_seed(5)  # the dropout masks
    loss, _ = loss_fn(net, x0, step=30, t=t, z=z, target=target and target(net))
    loss.sum().backward()
    return loss, [p.grad for m in (net, adaptive) for p in m.parameters()]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["sct", "scd"])
@pytest.mark.parametrize("ordering", ["rearranged", "naive"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_scm_loss_and_gradients_fast_equal_autograd_in_float64(arch, method, ordering, dropout):
    loss, grads = loss_and_grads("fast", arch, method, ordering, dropout)
    ref, ref_grads = loss_and_grads("autograd", arch, method, ordering, dropout)
    assert rel_err(loss, ref) < 1e-10
    for g, g_ref in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, g_ref, rtol=1e-9, atol=1e-12)


def test_scm_loss_with_ema_target_fast_equals_autograd():
    """theta^- = EMA weights: the fast JVP runs on the target without a graph, then F_theta."""
    ema = lambda net: perturb_(copy.deepcopy(net), std=0.05, seed=7).requires_grad_(False)
    loss, grads = loss_and_grads("fast", "unet", "sct", "rearranged", 0.3, target=ema)
    ref, ref_grads = loss_and_grads("autograd", "unet", "sct", "rearranged", 0.3, target=ema)
    assert rel_err(loss, ref) < 1e-10
    for g, g_ref in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, g_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_fast_single_pass_gives_f_theta_equal_to_f_minus_with_dropout(monkeypatch, precision):
    """With theta^- = stop-gradient(theta) the one pass is both F_theta and F^-: with g forced
    to zero the loss is exactly zero under dropout, and it stays zero even when the RNG is not
    restored (there is no second pass to draw other masks)."""
    dtype = torch.float64 if precision == "float64" else torch.float32
    net = perturb_(small_mlp(dropout=0.5), seed=1).train().to(dtype)
    t = torch.linspace(0.1, 1.5, 8, dtype=dtype)
    x0, z, _, _ = trigflow_batch((8, 2), t, dtype=dtype)
    monkeypatch.setattr(losses, "shape_tangent", lambda g, *a: torch.zeros_like(g))
    monkeypatch.setattr(losses.RngSnapshot, "restore", lambda self: None)
    loss_fn = SCMLoss(
        SIGMA_D, "sct", tangent=TangentConfig(warmup_steps=0), jvp=JVPConfig(precision=precision)
    )
    loss, _ = loss_fn(net, x0, step=1, t=t, z=z)
    assert torch.equal(loss, torch.zeros_like(loss))
    loss.sum().backward()  # the graph of F_theta is the fast pass's own
    assert all(p.grad is not None for p in net.parameters())

"""Core: TrigFlow boundary condition, JVP orderings, the sCT/sCD loss against an independent
restatement of Algorithm 1, every technique switch, and low-precision tangents near pi/2."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from helpers import SIGMA_D, perturb_, rel_err, small_mlp, small_net, trigflow_batch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scm_bench.core import losses
from scm_bench.core.jvp import JVPConfig, RngSnapshot, tangent_of_net
from scm_bench.core.losses import GuidedTeacher, SCMLoss, TeacherLoss
from scm_bench.core.tangent import TangentConfig, scm_tangent, shape_tangent, warmup_ratio
from scm_bench.core.trigflow import Proposal, consistency_fn
from scm_bench.core.weighting import AdaptiveWeight

F64 = torch.float64
T8 = torch.tensor([0.05, 0.2, 0.4, 0.7, 0.9, 1.1, 1.3, 1.5], dtype=F64)  # (B,) = MLP batch


# Boundary condition and JVP orderings.


@pytest.mark.parametrize("arch", ["mlp", "unet"])
@pytest.mark.parametrize("transform", ["identity", "edm", "scale1000"])
def test_consistency_fn_is_identity_at_t0(arch, transform):
    net, shape = small_net(arch, time_transform=transform)
    perturb_(net).eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(consistency_fn(net, x, torch.zeros(shape[0]), SIGMA_D), x)
        assert not torch.allclose(consistency_fn(net, x, torch.full((shape[0],), 0.5), SIGMA_D), x)


@pytest.mark.parametrize("arch", ["mlp", "unet"])
@pytest.mark.parametrize("r", [0.3, 1.0])
def test_rearranged_and_naive_orderings_give_the_same_g_in_float64(arch, r):
    net, shape = small_net(arch)
    perturb_(net).eval()
    t = torch.linspace(0.05, 1.55, shape[0], dtype=F64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    g = {}
    for ordering in ("rearranged", "naive"):
        f, cs_dfdt = tangent_of_net(
            net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(ordering=ordering, precision="float64")
        )
        g[ordering] = scm_tangent(x_t, t, f, dxdt, cs_dfdt, SIGMA_D, r)
    assert g["naive"].abs().max() > 1e-2
    assert rel_err(g["rearranged"], g["naive"]) < 1e-12


# The loss against Algorithm 1, restated here from the paper.


def algorithm1(
    net, x0, t, z, *, method, teacher, r, mode, norm, adaptive, prior, target=None, c=0.1
):
    """Per-sample sCT / sCD loss, straight from sCM Algorithm 1, in float64.

    dF/dt is the total derivative of F(x_t(t) / sigma_d, t) along the PF-ODE: one forward-mode
    JVP with respect to (x_t, t) with tangents (dx_t/dt, 1).
    """
    sd = SIGMA_D
    cos, sin = torch.cos(t)[:, None], torch.sin(t)[:, None]  # (B, 1) for (B, 2) data
    x_t = cos * x0 + sin * z
    with torch.no_grad():
        dxdt = cos * z - sin * x0 if method == "sct" else sd * teacher(x_t / sd, t)
        f_minus_net = target if target is not None else net
        f_minus, dfdt = torch.func.jvp(
            lambda x, s: f_minus_net(x / sd, s), (x_t, t), (dxdt, torch.ones_like(t))
        )
    g = -(cos**2) * (sd * f_minus - dxdt) - r * cos * sin * (x_t + sd * dfdt)
    g_raw = g
    dim = x0.shape[1]
    if mode == "normalize":
        gn = g.norm(dim=1, keepdim=True) / (dim**0.5 if norm == "rms" else 1.0)
        g = g / (gn + c)
    elif mode == "clip":
        g = g.clamp(-1, 1)
    sq = ((net(x_t / sd, t) - f_minus - g) ** 2).sum(1) / dim
    if prior == "inv_tan":
        sq = sq / (sd * torch.tan(t))
    if adaptive is None:
        return sq, g_raw
    w = adaptive(t)
    return torch.exp(w) * sq - w, g_raw


def student_and_teacher():
    torch.manual_seed(0)
    net = perturb_(small_mlp(), seed=1).double()
    teacher = perturb_(small_mlp(), seed=2).double().eval().requires_grad_(False)
    with torch.no_grad():  # a fast teacher velocity, so sCD's g also reaches the clip bound
        teacher.out.weight.mul_(3.0)
    adaptive = AdaptiveWeight()
    with torch.no_grad():  # w_phi(t) away from its zero init, so e^w and -w both matter
        adaptive.linear.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(3))
    return net, teacher, adaptive


def grads(*modules) -> list[torch.Tensor]:
    return [p.grad.clone() for m in modules if m is not None for p in m.parameters()]


TANGENT_MODES = [("normalize", "l2"), ("normalize", "rms"), ("clip", "l2"), ("raw", "l2")]
WARMUP = [(0, 5, 1.0), (100, 30, 0.3)]  # (H, step, r)


@pytest.mark.parametrize("method", ["sct", "scd"])
@pytest.mark.parametrize("mode,norm", TANGENT_MODES)
@pytest.mark.parametrize("use_adaptive", [True, False])
@pytest.mark.parametrize("prior", ["none", "inv_tan"])
@pytest.mark.parametrize("warmup,step,r", WARMUP)
def test_scm_loss_and_gradient_equal_algorithm1(
    method, mode, norm, use_adaptive, prior, warmup, step, r
):
    net, teacher, adaptive = student_and_teacher()
    adaptive = adaptive if use_adaptive else None
    x0, z, _, _ = trigflow_batch((8, 2), T8, x_scale=5.0)  # wide data: clip binds somewhere
    ref_net, ref_adaptive = copy.deepcopy(net), copy.deepcopy(adaptive)

    loss_fn = SCMLoss(
        SIGMA_D,
        method,
        prior=prior,
        adaptive=adaptive,
        teacher=GuidedTeacher(teacher),
        tangent=TangentConfig(mode=mode, norm=norm, warmup_steps=warmup),
        jvp=JVPConfig(precision="float64"),
    )
    loss, diag = loss_fn(net, x0, step=step, t=T8, z=z)
    ref, g_raw = algorithm1(
        ref_net, x0, T8, z, method=method, teacher=teacher, r=r, mode=mode, norm=norm,
        adaptive=ref_adaptive, prior=prior,
    )  # fmt: skip
    if mode == "clip":  # the case is only a test of clipping if clipping changes something
        assert (g_raw.abs() > 1).any() and (g_raw.abs() < 1).any()

    assert loss.shape == (8,)
    assert rel_err(loss, ref) < 1e-10
    assert rel_err(diag["g_norm"], g_raw.norm(dim=1)) < 1e-10
    loss.sum().backward()
    ref.sum().backward()
    for a, b in zip(grads(net, adaptive), grads(ref_net, ref_adaptive), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-8, atol=1e-12)
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays frozen


@pytest.mark.parametrize(
    "ordering,backend,tol",
    [
        ("naive", "autograd", 1e-10),
        ("rearranged", "autograd", 1e-10),
        ("naive", "fast", 1e-10),
        ("rearranged", "finite_difference", 1e-7),
    ],
)
def test_scm_loss_other_jvp_orderings_and_backends_equal_algorithm1(ordering, backend, tol):
    net, teacher, adaptive = student_and_teacher()
    x0, z, _, _ = trigflow_batch((8, 2), T8)
    loss_fn = SCMLoss(
        SIGMA_D,
        "scd",
        adaptive=adaptive,
        teacher=GuidedTeacher(teacher),
        tangent=TangentConfig(warmup_steps=0),
        jvp=JVPConfig(ordering=ordering, backend=backend, precision="float64"),
    )
    loss, _ = loss_fn(net, x0, step=1, t=T8, z=z)
    ref, _ = algorithm1(
        net, x0, T8, z, method="scd", teacher=teacher, r=1.0, mode="normalize", norm="l2",
        adaptive=adaptive, prior="none",
    )  # fmt: skip
    assert rel_err(loss, ref) < tol


def test_scm_loss_in_float32_is_close_to_float64_algorithm1():
    """The default path (float32 net, float32 JVP) agrees with the float64 restatement."""
    net, teacher, adaptive = student_and_teacher()
    net32, teacher32 = copy.deepcopy(net).float(), copy.deepcopy(teacher).float()
    x0, z, _, _ = trigflow_batch((8, 2), T8)
    loss_fn = SCMLoss(
        SIGMA_D,
        "scd",
        adaptive=adaptive,
        teacher=GuidedTeacher(teacher32),
        tangent=TangentConfig(warmup_steps=0),
    )
    loss, _ = loss_fn(net32, x0.float(), step=1, t=T8.float(), z=z.float())
    ref, _ = algorithm1(
        net, x0, T8, z, method="scd", teacher=teacher, r=1.0, mode="normalize", norm="l2",
        adaptive=adaptive, prior="none",
    )  # fmt: skip
    assert loss.dtype == torch.float32
    assert rel_err(loss, ref) < 1e-4


def test_teacher_loss_equals_its_formula():
    """||sigma_d F(x_t / sigma_d, t) - v_t||^2 / (sigma_d^2 D), v_t = cos t z - sin t x0."""
    net, _, _ = student_and_teacher()
    x0, z, x_t, v = trigflow_batch((8, 2), T8)
    loss, diag = TeacherLoss(SIGMA_D, Proposal(-1.0, 1.4))(net, x0, t=T8, z=z)
    ref = ((SIGMA_D * net(x_t / SIGMA_D, T8) - v) ** 2).sum(1) / (SIGMA_D**2 * 2)
    assert rel_err(loss, ref) < 1e-12
    assert torch.equal(diag["t"], T8)


def test_teacher_label_dropout_one_uses_the_null_class_for_every_sample():
    net = perturb_(small_mlp(num_classes=3)).double()
    x0, z, x_t, v = trigflow_batch((8, 2), T8)
    y = torch.arange(8) % 3
    loss, _ = TeacherLoss(SIGMA_D, Proposal(-1.0, 1.4), label_dropout=1.0)(net, x0, y, t=T8, z=z)
    null = torch.full_like(y, 3)
    for labels, same in ((null, True), (y, False)):
        ref = ((SIGMA_D * net(x_t / SIGMA_D, T8, labels) - v) ** 2).sum(1) / (SIGMA_D**2 * 2)
        assert (rel_err(loss, ref) < 1e-12) is same


# Each switch does what it says.


def batches():
    """Arrays (B, D) with huge, small and zero entries (none so small that squaring them
    underflows float64 and the test's own norm loses precision)."""
    shapes = st.tuples(st.integers(1, 6), st.integers(1, 12))
    values = st.floats(-1e6, 1e6).filter(lambda v: v == 0 or abs(v) > 1e-100)
    return shapes.flatmap(lambda s: arrays(np.float64, s, elements=values))


@settings(max_examples=50, deadline=None)
@given(batches())
def test_clip_bounds_g_elementwise_and_keeps_small_entries(g):
    g = torch.from_numpy(g)
    out = shape_tangent(g, TangentConfig(mode="clip"))
    assert out.abs().max() <= 1.0
    small = g.abs() <= 1
    assert torch.equal(out[small], g[small])
    assert torch.equal(out[~small], g[~small].sign())


@settings(max_examples=50, deadline=None)
@given(batches(), st.sampled_from(["l2", "rms"]), st.floats(1e-3, 1.0))
def test_normalize_bounds_the_norm_below_one_and_keeps_direction(g, norm, c):
    g = torch.from_numpy(g)
    out = shape_tangent(g, TangentConfig(mode="normalize", norm=norm, c=c))
    n_in, n_out = g.norm(dim=1), out.norm(dim=1)
    if norm == "rms":
        n_in, n_out = n_in / g.shape[1] ** 0.5, n_out / g.shape[1] ** 0.5
    assert (n_out < 1).all()
    assert torch.allclose(n_out, n_in / (n_in + c), rtol=1e-12, atol=0)
    assert torch.allclose(out * (n_in + c)[:, None], g, rtol=1e-12, atol=1e-300)


def test_raw_mode_leaves_g_unchanged():
    g = torch.randn(4, 5) * 100
    assert torch.equal(shape_tangent(g, TangentConfig(mode="raw")), g)


@pytest.mark.parametrize("h", [1, 7, 50, 1000])
def test_warmup_ramps_linearly_to_one(h):
    ratios = [warmup_ratio(s, h) for s in range(0, 3 * h + 1)]
    assert ratios == [min(1.0, s / h) for s in range(0, 3 * h + 1)]
    assert ratios[0] == 0.0 and ratios[h] == 1.0 and ratios[-1] == 1.0
    loss_fn = SCMLoss(SIGMA_D, "sct", tangent=TangentConfig(warmup_steps=h))
    assert loss_fn.warmup_ratio(h // 2) == min(1.0, (h // 2) / h)


def test_warmup_zero_means_r_is_one_from_step_zero():
    assert [warmup_ratio(s, 0) for s in (0, 1, 10**6)] == [1.0, 1.0, 1.0]


def test_ema_target_is_the_network_used_for_f_minus():
    net, teacher, adaptive = student_and_teacher()
    ema = perturb_(copy.deepcopy(net), std=0.05, seed=7).eval()  # a different theta^-
    x0, z, _, _ = trigflow_batch((8, 2), T8)
    loss_fn = SCMLoss(
        SIGMA_D,
        "sct",
        adaptive=adaptive,
        tangent=TangentConfig(warmup_steps=0),
        jvp=JVPConfig(precision="float64"),
    )
    args = dict(method="sct", teacher=None, r=1.0, mode="normalize", norm="l2",
                adaptive=adaptive, prior="none")  # fmt: skip
    with_ema, _ = loss_fn(net, x0, step=1, t=T8, z=z, target=ema)
    with_self, _ = loss_fn(net, x0, step=1, t=T8, z=z)
    assert rel_err(with_ema, algorithm1(net, x0, T8, z, target=ema, **args)[0]) < 1e-10
    assert rel_err(with_self, algorithm1(net, x0, T8, z, **args)[0]) < 1e-10
    assert rel_err(with_ema, with_self) > 1e-3
    # The gradient flows into the student only, never into theta^-.
    with_ema.sum().backward()
    assert all(p.grad is None for p in ema.parameters())
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_dropout_masks_match_between_jvp_pass_and_gradient_pass(monkeypatch, precision):
    """With target = the net itself and dropout on, F_theta - F^- is exactly zero at the same
    weights; with g forced to zero the loss is exactly zero. Control: without restoring the RNG
    between the two passes the masks differ and the loss is not zero. (The two-pass autograd
    backend; the fast backend's single pass is covered in test_fast_jvp.py.)"""
    torch.manual_seed(0)
    net = perturb_(small_mlp(dropout=0.5), seed=1).train()
    dtype = torch.float64 if precision == "float64" else torch.float32
    net = net.to(dtype)
    x0, z, _, _ = trigflow_batch((8, 2), T8, dtype=dtype)
    monkeypatch.setattr(losses, "shape_tangent", lambda g, *a: torch.zeros_like(g))
    loss_fn = SCMLoss(
        SIGMA_D,
        "sct",
        tangent=TangentConfig(warmup_steps=0),
        jvp=JVPConfig(precision=precision, backend="autograd"),
    )
    loss, _ = loss_fn(net, x0, step=1, t=T8.to(dtype), z=z)
    assert torch.equal(loss, torch.zeros_like(loss))
    # Dropout really is active: two plain forward passes differ.
    xin = torch.randn(8, 2, dtype=dtype)
    assert not torch.equal(net(xin, T8.to(dtype)), net(xin, T8.to(dtype)))
    monkeypatch.setattr(losses.RngSnapshot, "restore", lambda self: None)
    loss, _ = loss_fn(net, x0, step=1, t=T8.to(dtype), z=z)
    assert (loss > 0).all()


@pytest.mark.parametrize(
    "precision,backend,tol",
    [
        ("float16", "autograd", 1e-2),
        ("bfloat16", "autograd", 5e-2),
        ("float64", "autograd", 1e-5),
        ("float32", "finite_difference", 1e-5),
    ],
)
def test_dropout_masks_match_across_jvp_precisions_and_backends(precision, backend, tol):
    """The JVP pass in another dtype (or the float64 difference quotient) draws the same dropout
    masks as the float32 gradient pass: F^- equals F_theta up to rounding, while two passes with
    fresh masks differ by O(1)."""
    torch.manual_seed(0)
    net = perturb_(small_mlp(dropout=0.5, width=64), std=0.1).train()
    t = torch.linspace(0.1, 1.5, 8)
    _, _, x_t, dxdt = trigflow_batch((8, 2), t, dtype=torch.float32)
    rng = RngSnapshot.take()
    f_minus, _ = tangent_of_net(
        net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(precision=precision, backend=backend), rng=rng
    )
    rng.restore()
    with torch.no_grad():
        f_theta = net(x_t / SIGMA_D, t)
        f_fresh = net(x_t / SIGMA_D, t)  # the RNG has moved on: new masks
    assert rel_err(f_minus, f_theta) < tol
    assert rel_err(f_fresh, f_theta) > 0.3


# Low precision near t -> pi/2.


def nonfinite_rows(net, x_t, t, dxdt, ordering, precision="float16"):
    _, d = tangent_of_net(
        net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(ordering=ordering, precision=precision)
    )
    return ~torch.isfinite(d).all(dim=1)  # (B,) bool


def near_half_pi(n=256):
    """n times pi/2 - delta, delta log-spaced from 1e-6 to 0.3, as float32."""
    delta = torch.logspace(-6, math.log10(0.3), n, dtype=F64)
    t = (math.pi / 2 - delta).float()
    _, _, x_t, dxdt = trigflow_batch((n, 2), t, dtype=torch.float32)
    return delta, t, x_t, dxdt


def edm_fourier_mlp(std: float) -> torch.nn.Module:
    """The paper's unstable parametrization: EDM c_noise and Fourier(16) time features."""
    torch.manual_seed(0)
    net = small_mlp(
        width=64, depth=3, emb_dim=64, time_transform="edm", time_embedding="fourier",
        fourier_scale=16.0, adagn="single",
    )  # fmt: skip
    return perturb_(net, std=std).eval()


# 256 times pi/2 - delta with delta in [1e-6, 0.3], MLP 64 x 3, EDM c_noise + Fourier(16), single
# AdaGN. With weights perturbed by N(0, 0.5^2) (large time gain) the naive tangent overflows at
# every time; with N(0, 0.1^2) (small time gain) it fails only where the rearranged one does.
# The rearranged failures are exactly the times where forward AD of tan, (1 + tan^2 t) *
# tangent, overflows float16 (tan_overflow_zone: tan t > sqrt(65504), delta < TAN_ZONE): tan^2 t
# overflows before the cos t sin t factor can help. No ordering fixes an overflow inside c_noise.
TAN_ZONE = math.atan(1 / math.sqrt(torch.finfo(torch.float16).max))  # about 0.0039


def tan_overflow_zone(t: torch.Tensor) -> torch.Tensor:
    """Rows where forward AD of tan, (1 + tan^2 t) x tangent, overflows float16: computed from
    t alone (in float64, then rounded), independently of any network."""
    return (1 + torch.tan(t.double()) ** 2).half().isinf()


def test_float16_naive_ordering_overflows_near_half_pi_where_rearranged_does_not():
    net = edm_fourier_mlp(std=0.5)
    delta, t, x_t, dxdt = near_half_pi()
    naive = nonfinite_rows(net, x_t, t, dxdt, "naive")
    rearranged = nonfinite_rows(net, x_t, t, dxdt, "rearranged")
    assert naive.all()  # the naive tangent overflows at every one of the 256 times
    assert torch.equal(rearranged, tan_overflow_zone(t))  # the rearranged only inside c_noise
    assert not (rearranged & ~naive).any()  # rearranged never fails where naive succeeds
    assert delta[rearranged].max() < TAN_ZONE  # ... and fails only in the tan^2 overflow zone
    assert torch.equal(naive & ~rearranged, delta >= TAN_ZONE)  # naive fails outside it too
    # Neither fails with float32's exponent range (float32 or bfloat16).
    for precision in ("float32", "bfloat16"):
        for ordering in ("naive", "rearranged"):
            assert not nonfinite_rows(net, x_t, t, dxdt, ordering, precision).any()


def test_float16_small_time_gain_both_orderings_fail_only_where_tan_overflows():
    net = edm_fourier_mlp(std=0.1)
    delta, t, x_t, dxdt = near_half_pi()
    naive = nonfinite_rows(net, x_t, t, dxdt, "naive")
    rearranged = nonfinite_rows(net, x_t, t, dxdt, "rearranged")
    assert torch.equal(naive, tan_overflow_zone(t)) and torch.equal(rearranged, naive)
    assert delta[naive].max() < TAN_ZONE


@pytest.mark.parametrize("ordering", ["naive", "rearranged"])
def test_float16_identity_positional_has_no_nonfinite_tangent_near_half_pi(ordering):
    """The paper's recommended parametrization (identity c_noise, positional embedding) stays
    finite in float16 all the way to t = pi/2 - 1e-6."""
    torch.manual_seed(0)
    net = perturb_(small_mlp(width=64, depth=3, emb_dim=64), std=0.5).eval()
    _, t, x_t, dxdt = near_half_pi()
    assert not nonfinite_rows(net, x_t, t, dxdt, ordering).any()


def test_scm_loss_runs_in_float16_and_bfloat16_jvp_precision_and_reports_nonfinite_share():
    torch.manual_seed(0)
    net = perturb_(small_mlp(), std=0.1)
    x0, z, _, _ = trigflow_batch((8, 2), T8, dtype=torch.float32)
    ref, _ = SCMLoss(SIGMA_D, "sct", tangent=TangentConfig(warmup_steps=0))(
        net, x0, step=1, t=T8.float(), z=z
    )
    for precision in ("float16", "bfloat16"):
        loss, diag = SCMLoss(
            SIGMA_D,
            "sct",
            tangent=TangentConfig(warmup_steps=0),
            jvp=JVPConfig(precision=precision),
        )(net, x0, step=1, t=T8.float(), z=z)
        assert torch.isfinite(loss).all()
        assert torch.equal(diag["nonfinite_tangent"], torch.zeros(8))
        assert rel_err(loss, ref) < 0.1


def test_nonfinite_share_counts_nonfinite_jvp_elements(monkeypatch):
    net = perturb_(small_mlp(), std=0.1)
    x0, z, _, _ = trigflow_batch((8, 2), T8, dtype=torch.float32)

    def poisoned(*args, **kw):
        f, d = tangent_of_net(*args, **kw)
        d = d.clone()
        d[0, 0], d[3] = math.inf, math.nan  # sample 0: 1 of 2 elements; sample 3: both
        return f, d

    monkeypatch.setattr(losses, "tangent_of_net", poisoned)
    _, diag = SCMLoss(SIGMA_D, "sct")(net, x0, step=1, t=T8.float(), z=z)
    assert diag["nonfinite_tangent"].tolist() == [0.5, 0, 0, 1.0, 0, 0, 0, 0]

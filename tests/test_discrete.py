"""The discrete-time consistency objective (tangent.discrete_steps = N, sCM Fig. 5c): Algorithm
1 with df^-/dt replaced by a finite difference over dt = pi / (2N) along the same path."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import SIGMA_D, perturb_, rel_err, small_mlp, trigflow_batch

from scm_bench.core.jvp import JVPConfig
from scm_bench.core.losses import GuidedTeacher, SCMLoss
from scm_bench.core.tangent import TangentConfig, discrete_dt
from scm_bench.core.trigflow import consistency_fn, noise

T = torch.linspace(0.2, 1.4, 8, dtype=torch.float64)


def losses(method: str, steps: int, r_step: int = 1):
    """Per-sample loss and g_norm, float64, fixed (t, z), for N = ``steps`` (0 = continuous)."""
    torch.manual_seed(0)
    net = perturb_(small_mlp()).double()
    teacher = perturb_(small_mlp(), seed=3).double() if method == "scd" else None
    x0, z, _, _ = trigflow_batch((8, 2), T)
    loss_fn = SCMLoss(
        SIGMA_D, method, tangent=TangentConfig(warmup_steps=0, discrete_steps=steps),
        jvp=JVPConfig(precision="float64"), teacher=teacher and GuidedTeacher(teacher),
    )  # fmt: skip
    loss, diag = loss_fn(net, x0, step=r_step, t=T, z=z)
    return loss, diag["g_norm"], net, x0, z


@pytest.mark.parametrize("method", ["sct", "scd"])
def test_many_steps_converge_to_the_continuous_objective(method):
    cont, g_cont, *_ = losses(method, 0)
    errs = [rel_err(losses(method, n)[1], g_cont) for n in (100, 1000, 10_000)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3  # O(dt): 10x per decade
    assert errs[0] / errs[1] == pytest.approx(10, rel=0.3)
    assert rel_err(losses(method, 10_000)[0], cont) < 1e-3


def test_few_steps_give_a_different_objective():
    cont, g_cont, *_ = losses("sct", 0)
    coarse, g_coarse, *_ = losses("sct", 4)
    assert rel_err(g_coarse, g_cont) > 1e-2


def test_discrete_g_is_the_finite_difference_of_f_on_the_noise_path():
    """sCT, N = 8, r = 1 and raw tangent: g = cos t (f(x_t, t) - f(x_t', t')) / (t - t'),
    with x_t' on the same noise path and f(x, 0) = x once t' is clamped at 0."""
    torch.manual_seed(0)
    net = perturb_(small_mlp()).double()
    x0, z, x_t, _ = trigflow_batch((8, 2), T)
    t = T.clone()
    t[0] = 0.1  # t < dt: t' = 0, the boundary f(x, 0) = x
    dt = discrete_dt(8)
    t_prev = (t - dt).clamp_min(0)
    x_t = noise(x0, z, t)
    with torch.no_grad():
        f_now = consistency_fn(net, x_t, t, SIGMA_D)
        f_prev = consistency_fn(net, noise(x0, z, t_prev), t_prev, SIGMA_D)
    g_ref = torch.cos(t)[:, None] * (f_now - f_prev) / (t - t_prev)[:, None]
    assert t_prev[0] == 0 and torch.equal(f_prev[0], x0[0])  # the boundary condition
    cfg = TangentConfig(mode="raw", warmup_steps=0, discrete_steps=8)
    loss_fn = SCMLoss(SIGMA_D, "sct", tangent=cfg, jvp=JVPConfig(precision="float64"))
    _, diag = loss_fn(net, x0, step=1, t=t, z=z)
    assert rel_err(diag["g_norm"], g_ref.norm(dim=1)) < 1e-12
    assert math.isclose(dt, math.pi / 16)

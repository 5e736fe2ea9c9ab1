"""Networks: the JVP tangent of every net variant equals a float64 central difference of F, and
the low-precision JVP runs on the CPU close to the float64 one."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from helpers import SIGMA_D, expand, perturb_, rel_err, small_net, trigflow_batch

from scm_bench.core.jvp import JVPConfig, tangent_of_net

ARCHS = ("mlp", "unet")
TRANSFORMS = ("identity", "edm", "scale1000")
EMBEDDINGS = ("positional", "fourier")
ADAGN = ("double", "single", "scale")


def fd_step(transform: str, embedding: str) -> float:
    """A central-difference step matched to how fast F oscillates in t: the truncation error
    grows like (h * c_noise'(t) * frequency)^2, so scale1000 and Fourier(16) need a smaller h."""
    rate = (1000.0 if transform == "scale1000" else 1.0) * (
        2 * math.pi * 16 if embedding == "fourier" else 1.0
    )
    return 1e-6 / rate


@pytest.mark.parametrize(
    "arch,transform,embedding,adagn", list(itertools.product(ARCHS, TRANSFORMS, EMBEDDINGS, ADAGN))
)
def test_jvp_tangent_equals_float64_central_difference(arch, transform, embedding, adagn):
    net, shape = small_net(
        arch, time_transform=transform, time_embedding=embedding, fourier_scale=16.0, adagn=adagn
    )
    perturb_(net).eval()
    t = torch.linspace(0.2, 1.4, shape[0], dtype=torch.float64)
    _, _, x_t, dxdt = trigflow_batch(shape, t)
    cs = expand(torch.cos(t) * torch.sin(t) * SIGMA_D, x_t)  # cos t sin t sigma_d

    # The test's own difference quotient of F along (dx_t/dt / sigma_d, 1) at (x_t / sigma_d, t).
    f64 = copy.deepcopy(net).double()
    h = fd_step(transform, embedding)
    with torch.no_grad():
        f_ref = f64(x_t / SIGMA_D, t)
        plus = f64((x_t + h * dxdt) / SIGMA_D, t + h)
        minus = f64((x_t - h * dxdt) / SIGMA_D, t - h)
    dfdt_fd = (plus - minus) / (2 * h)  # (B, ...) float64
    assert dfdt_fd.abs().max() > 1e-2  # the perturbed net really depends on x and t

    for ordering in ("naive", "rearranged"):
        f, cs_dfdt = tangent_of_net(
            net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(ordering=ordering, precision="float64")
        )
        assert rel_err(f, f_ref) < 1e-12
        assert rel_err(cs_dfdt / cs, dfdt_fd) < 1e-4, ordering

    # The library's own finite-difference backend agrees with the JVP.
    f_b, cs_dfdt_b = tangent_of_net(
        net,
        x_t,
        t,
        dxdt,
        SIGMA_D,
        cfg=JVPConfig(ordering="naive", backend="finite_difference"),
        fd_eps=h,
    )
    assert rel_err(f_b, f_ref) < 1e-12
    assert rel_err(cs_dfdt_b / cs, dfdt_fd) < 1e-4


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("precision,tol", [("bfloat16", 5e-2), ("float16", 1e-2)])
@pytest.mark.parametrize("ordering", ["naive", "rearranged"])
def test_low_precision_jvp_runs_on_cpu_close_to_float64(arch, precision, tol, ordering):
    """Every layer (Linear, LayerNorm, GroupNorm, conv, math attention) supports the JVP in
    float16 and bfloat16 on the CPU; the result is finite, within a few ulps-worth of the float64
    tangent, and visibly not the float32 one (the cast really happens)."""
    net, shape = small_net(arch)
    perturb_(net, std=0.1).eval()
    t = torch.linspace(0.1, 1.5, shape[0])
    _, _, x_t, dxdt = trigflow_batch(shape, t, dtype=torch.float32)
    f64, d64 = tangent_of_net(
        net, x_t.double(), t.double(), dxdt.double(), SIGMA_D, cfg=JVPConfig(precision="float64")
    )
    f, d = tangent_of_net(
        net, x_t, t, dxdt, SIGMA_D, cfg=JVPConfig(ordering=ordering, precision=precision)
    )
    assert f.dtype == d.dtype == torch.float32  # returned in x_t's dtype
    assert torch.isfinite(f).all() and torch.isfinite(d).all()
    assert 1e-5 < rel_err(f, f64) < tol
    assert 1e-5 < rel_err(d, d64) < tol

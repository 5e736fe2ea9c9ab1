"""The JVP of F along the PF-ODE trajectory (Algorithm 1, step 4).

``tangent_of_net`` returns F^-(x_t / sigma_d, t) and cos(t) sin(t) sigma_d dF^-/dt, where
dF/dt = grad_x F . (dx_t/dt) / sigma_d + dF/dt_explicit is the total time derivative.

Orderings (sCM Sec. 4.2, "stable JVP"):
- rearranged: one JVP with tangents (cos t sin t dx_t/dt, cos t sin t sigma_d) on inputs
  (x_t / sigma_d, t); by linearity it returns cos t sin t sigma_d dF/dt directly, and every
  intermediate tangent stays bounded as t -> 0 or t -> pi/2.
- naive: one JVP with tangents (dx_t/dt / sigma_d, 1), returning dF/dt, multiplied by
  cos t sin t sigma_d afterwards; dF/dt itself can overflow in low precision.

Backends:
- ``fast`` (default): the net's own ``forward_jvp`` (``scm_bench.nets.jvp``) computes F and its
  tangent in one pass, each layer propagating (x, t_x) with closed-form rules. With
  ``keep_graph=True`` F keeps its autograd graph, so one pass yields F_theta (the loss input) and
  F^- = F_theta.detach() (theta^- = stop-gradient of the current weights); the tangent never has
  a graph. It applies when the net has ``forward_jvp`` and the JVP precision is the net's own
  dtype (no cast); otherwise (float16 / bfloat16 JVPs, a net without ``forward_jvp``) it falls
  back to ``autograd``.
- ``autograd``: torch.func.jvp through the ordinary forward (the reference).
- ``finite_difference``: float64 central difference (a reference).
``autograd`` and ``finite_difference`` never record a graph: theta^- is a stop-gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from scm_bench.core.trigflow import expand_t

DTYPES = {
    "float64": torch.float64,  # reference only (tests); specs allow the three below
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass
class RngSnapshot:
    """CPU (and CUDA) RNG state taken once and restored before each pass that must see the
    same dropout masks: the JVP pass, finite-difference evaluations and the gradient pass."""

    cpu: torch.Tensor
    cuda: list[torch.Tensor] | None

    @classmethod
    def take(cls) -> RngSnapshot:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def cast_call(net: torch.nn.Module, dtype: torch.dtype) -> Callable:
    """F with weights, buffers and inputs cast to ``dtype`` (outputs stay in ``dtype``)."""
    if all(p.dtype == dtype for p in net.parameters()):
        return lambda x, t, y: net(x.to(dtype), t.to(dtype), y)
    state = {
        k: v.to(dtype) if v.is_floating_point() else v
        for k, v in list(net.named_parameters()) + list(net.named_buffers())
    }
    return lambda x, t, y: torch.func.functional_call(net, state, (x.to(dtype), t.to(dtype), y))


def jvp_tangents(
    x_t: torch.Tensor, t: torch.Tensor, dxdt: torch.Tensor, sigma_d: float, ordering: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input tangents for the inputs (x_t / sigma_d, t) under the chosen ordering."""
    if ordering == "rearranged":
        cs = torch.cos(t) * torch.sin(t)  # (B,)
        return expand_t(cs, x_t) * dxdt, cs * sigma_d
    if ordering == "naive":
        return dxdt / sigma_d, torch.ones_like(t)
    raise ValueError(f"jvp ordering must be 'rearranged' or 'naive', got {ordering!r}")


def fast_path_applies(net: torch.nn.Module, backend: str, precision: str) -> bool:
    """True when ``backend='fast'`` really runs the one-pass JVP: the net has ``forward_jvp``
    and its weights are already in the JVP precision (else it falls back to autograd)."""
    dtype = DTYPES[precision]
    return (
        backend == "fast"
        and hasattr(net, "forward_jvp")
        and all(p.dtype == dtype for p in net.parameters())
    )


def tangent_of_net(
    net: torch.nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    sigma_d: float,
    y: torch.Tensor | None = None,
    *,
    ordering: str = "rearranged",
    precision: str = "float32",
    backend: str = "fast",
    rng: RngSnapshot | None = None,
    fd_eps: float = 1e-5,
    keep_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, cos t sin t sigma_d dF/dt), both (B, ...) in x_t's dtype; the tangent has no graph.

    F has no graph either, unless ``keep_graph`` and the fast path applies
    (``fast_path_applies``): then F is F_theta with its autograd graph.
    """
    if backend not in ("fast", "autograd", "finite_difference"):
        raise ValueError(
            f"jvp backend must be 'fast', 'autograd' or 'finite_difference', got {backend!r}"
        )
    with torch.no_grad():
        tx, tt = jvp_tangents(x_t, t, dxdt, sigma_d, ordering)
    x_in = x_t / sigma_d
    if rng is not None and backend != "finite_difference":
        rng.restore()
    if fast_path_applies(net, backend, precision):
        dtype = DTYPES[precision]
        with torch.set_grad_enabled(keep_graph and torch.is_grad_enabled()):
            f, df = net.forward_jvp(x_in.to(dtype), tx.to(dtype), t.to(dtype), tt.to(dtype), y)
    elif backend == "finite_difference":
        with torch.no_grad():
            f, df = finite_difference_jvp(net, x_in, t, y, tx, tt, rng=rng, eps=fd_eps)
    else:  # autograd, or the fast path's fallback
        fn = cast_call(net, DTYPES[precision])
        with torch.no_grad():
            f, df = torch.func.jvp(lambda a, b: fn(a, b, y), (x_in, t), (tx, tt))
    f, df = f.to(x_t.dtype), df.to(x_t.dtype)
    if ordering == "naive":
        df = expand_t(torch.cos(t) * torch.sin(t) * sigma_d, df) * df
    return f, df


def finite_difference_jvp(
    net: torch.nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor | None,
    tx: torch.Tensor,
    tt: torch.Tensor,
    *,
    rng: RngSnapshot | None = None,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 central difference (F(p + eps v) - F(p - eps v)) / (2 eps) with F(p), all float64.

    Error O(eps^2 |F'''|) + O(1e-16 / eps): about 1e-10 relative for smooth nets at eps = 1e-5.
    """
    fn = cast_call(net, torch.float64)
    x, t, tx, tt = (a.double() for a in (x, t, tx, tt))  # float64 forced here

    def call(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if rng is not None:
            rng.restore()
        return fn(a, b, y)

    f = call(x, t)
    df = (call(x + eps * tx, t + eps * tt) - call(x - eps * tx, t - eps * tt)) / (2 * eps)
    return f, df

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
- ``fast`` (default): the net's own ``forward_jvp`` (the ``ForwardJVP`` protocol below,
  implemented with the rules of ``scm_bench.nets.jvp``) computes F and its
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
from typing import Literal, Protocol, runtime_checkable

import torch

from scm_bench.core.choices import allowed, check
from scm_bench.core.trigflow import expand_t

JVPOrdering = Literal["rearranged", "naive"]
JVPPrecision = Literal["float32", "bfloat16", "float16"]
JVPBackend = Literal["fast", "autograd", "finite_difference"]
# float64 is a reference precision for tests only; specs allow the three of JVPPrecision.
DTYPES = {name: getattr(torch, name) for name in (*allowed(JVPPrecision), "float64")}


@dataclass(frozen=True)
class JVPConfig:
    """How the JVP of step 4 is computed (spec section ``jvp``)."""

    ordering: JVPOrdering = "rearranged"  # tangents pre-multiplied by cos t sin t (paper)
    precision: str = "float32"  # a JVPPrecision, or "float64" (tests)
    backend: JVPBackend = "fast"  # one pass through forward_jvp | torch.func.jvp | float64 FD

    def __post_init__(self):
        check(self.ordering, JVPOrdering, "jvp.ordering")
        check(self.backend, JVPBackend, "jvp.backend")
        if self.precision not in DTYPES:
            raise ValueError(
                f"jvp.precision must be one of {', '.join(DTYPES)}; got {self.precision!r}"
            )


@runtime_checkable
class ForwardJVP(Protocol):
    """A net F(x, t, y) that also gives its tangent in one pass (the ``fast`` backend).

    ``forward_jvp(x, tx, t, tt, y) -> (F, t_F)``: x (B, ...) with tangent tx, t (B,) with
    tangent tt; F is computed by the ordinary ops (it keeps its graph when gradients are on)
    and t_F = dF along (tx, tt) without a graph; weights carry no tangent (theta^- is a
    stop-gradient). Tested against torch.func.jvp in float64 (tests/test_fast_jvp.py).
    """

    def forward_jvp(
        self, x: torch.Tensor, tx: torch.Tensor, t: torch.Tensor, tt: torch.Tensor, y
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


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
    x_t: torch.Tensor, t: torch.Tensor, dxdt: torch.Tensor, sigma_d: float, ordering: JVPOrdering
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input tangents for the inputs (x_t / sigma_d, t) under the chosen ordering."""
    if ordering == "rearranged":
        cs = torch.cos(t) * torch.sin(t)  # (B,)
        return expand_t(cs, x_t) * dxdt, cs * sigma_d
    return dxdt / sigma_d, torch.ones_like(t)  # naive


def fast_path_applies(net: torch.nn.Module, cfg: JVPConfig) -> bool:
    """True when ``backend='fast'`` really runs the one-pass JVP: the net implements
    ``ForwardJVP`` and its weights are already in the JVP precision (else: autograd)."""
    dtype = DTYPES[cfg.precision]
    return (
        cfg.backend == "fast"
        and isinstance(net, ForwardJVP)
        and all(p.dtype == dtype for p in net.parameters())
    )


def tangent_of_net(
    net: torch.nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    dxdt: torch.Tensor,
    sigma_d: float,
    y: torch.Tensor | None = None,
    cfg: JVPConfig = JVPConfig(),
    *,
    rng: RngSnapshot | None = None,
    fd_eps: float = 1e-5,
    keep_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, cos t sin t sigma_d dF/dt), both (B, ...) in x_t's dtype; the tangent has no graph.

    This is the one place that picks the path. F has no graph either, unless ``keep_graph``
    and the fast path applies (``fast_path_applies``): then F is F_theta with its autograd
    graph, which callers detect with ``F.requires_grad``. Autocast (``train.precision``) is
    off here: the JVP runs in ``cfg.precision`` only.
    """
    with torch.autocast(x_t.device.type, enabled=False):
        with torch.no_grad():
            tx, tt = jvp_tangents(x_t, t, dxdt, sigma_d, cfg.ordering)
        x_in = x_t / sigma_d
        if rng is not None and cfg.backend != "finite_difference":
            rng.restore()
        dtype = DTYPES[cfg.precision]
        if fast_path_applies(net, cfg):
            with torch.set_grad_enabled(keep_graph and torch.is_grad_enabled()):
                f, df = net.forward_jvp(x_in.to(dtype), tx.to(dtype), t.to(dtype), tt.to(dtype), y)
        elif cfg.backend == "finite_difference":
            with torch.no_grad():
                f, df = finite_difference_jvp(net, x_in, t, y, tx, tt, rng=rng, eps=fd_eps)
        else:  # autograd, or the fast path's fallback
            fn = cast_call(net, dtype)
            with torch.no_grad():
                f, df = torch.func.jvp(lambda a, b: fn(a, b, y), (x_in, t), (tx, tt))
        f, df = f.to(x_t.dtype), df.to(x_t.dtype)
        if cfg.ordering == "naive":
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

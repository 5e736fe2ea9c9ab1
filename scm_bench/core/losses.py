"""Training objectives as small callables returning a per-sample loss and diagnostics.

The caller (the training loop) reduces, scales and back-propagates. Every random input
(t, z) can be passed explicitly so tests can pin them. Teacher and student losses share one
call (``Loss``): the loop never asks which objective it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from scm_bench.core.choices import check
from scm_bench.core.jvp import JVPConfig, RngSnapshot, tangent_of_net
from scm_bench.core.tangent import (
    TangentConfig,
    discrete_dt,
    discrete_scm_tangent,
    per_sample_norm,
    scm_tangent,
    shape_tangent,
    warmup_ratio,
)
from scm_bench.core.trigflow import Proposal, consistency_fn, expand_t, noise, sample_t, velocity
from scm_bench.core.weighting import AdaptiveWeight, PriorWeight, prior_weight

Method = Literal["teacher", "sct", "scd"]  # teacher: TrigFlow diffusion; sct / scd: students
Timer = Callable[[], AbstractContextManager]  # the loop's stopwatch around a JVP pass


class Loss(Protocol):
    """The one call the training loop makes, whatever the objective.

    ``step`` (tangent warmup), ``target`` (theta^- as an EMA copy; None = stop-gradient of
    ``net``) and ``timer`` serve the consistency losses; ``keep`` (the drawn label-dropout
    mask) serves the teacher's. An objective ignores what it has no use for.
    """

    label_dropout: float  # probability that a label is replaced by the null class
    adaptive: AdaptiveWeight | None  # a learned loss weight w_phi(t), trained with the net

    def sample(self, shape, generator=None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def __call__(
        self, net, x0, y=None, *, step: int = 0, target=None, t=None, z=None, keep=None,
        generator=None, timer: Timer = nullcontext,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...  # fmt: skip

    def scalars(self, step: int) -> dict[str, float]:
        """Values of this step to log beside the loss (e.g. the warmup ratio r)."""
        ...


def mean_sq(x: torch.Tensor) -> torch.Tensor:
    """||x||^2 / D per sample: (B, ...) -> (B,)."""
    return x.flatten(1).pow(2).mean(1)


def drop_labels(
    y: torch.Tensor | None,
    p: float,
    null: int,
    generator: torch.Generator | None = None,
    keep: torch.Tensor | None = None,  # (B,) bool, True = label kept; None = drawn here
) -> torch.Tensor | None:
    """Replace each label by the null class with probability p (classifier-free guidance)."""
    if y is None or p <= 0:
        return y
    if keep is None:
        keep = label_keep(y.shape[0], p, generator)
    return torch.where(keep.to(y.device), y, torch.full_like(y, null))


def label_keep(n: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which of n labels survive a dropout with probability p: (n,) bool."""
    return torch.rand(n, generator=generator) >= p


def guided(
    net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """Classifier-free guidance: F(x,t,null) + s (F(x,t,y) - F(x,t,null)); s = 1 is plain F."""
    if y is None or scale == 1.0:
        return net(x, t, y)
    null = torch.full_like(y, net.num_classes)
    f_c, f_u = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return f_u + scale * (f_c - f_u)


class _Draws:
    """Shared draw of (t, z, x_t) with explicit overrides."""

    def __init__(self, sigma_d: float, proposal: Proposal):
        self.sigma_d, self.proposal = sigma_d, proposal

    def sample(self, shape, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 1's random inputs for a batch of ``shape``: t (B,) from the proposal, then
        z ~ N(0, sigma_d^2 I) of ``shape``, drawn in that order from ``generator``."""
        t = sample_t(shape[0], self.proposal, self.sigma_d, generator)
        return t, torch.randn(shape, generator=generator) * self.sigma_d

    def draw(self, x0, t=None, z=None, generator=None):
        if t is None and z is None:
            t, z = self.sample(x0.shape, generator)
        if t is None:
            t = sample_t(x0.shape[0], self.proposal, self.sigma_d, generator)
        if z is None:
            z = torch.randn(x0.shape, generator=generator) * self.sigma_d
        t, z = t.to(x0.device, x0.dtype), z.to(x0.device, x0.dtype)
        return t, z, noise(x0, z, t)


class TeacherLoss(_Draws):
    """TrigFlow diffusion loss ||sigma_d F(x_t/sigma_d, t) - v_t||^2 / (sigma_d^2 D).

    The 1/sigma_d^2 factor makes the regression target v_t / sigma_d unit-variance.
    """

    def __init__(self, sigma_d: float, proposal: Proposal, label_dropout: float = 0.0):
        super().__init__(sigma_d, proposal)
        self.label_dropout, self.adaptive = label_dropout, None

    def __call__(
        self, net, x0, y=None, *, step=0, target=None, t=None, z=None, keep=None,
        generator=None, timer: Timer = nullcontext,
    ):  # fmt: skip
        """(per-sample loss (B,), {"t": t}); a diffusion loss has no warmup, target or JVP."""
        t, z, x_t = self.draw(x0, t, z, generator)
        y = drop_labels(y, self.label_dropout, getattr(net, "num_classes", 0), generator, keep)
        pred = net(x_t / self.sigma_d, t, y)
        loss = mean_sq(pred - velocity(x0, z, t) / self.sigma_d)
        return loss, {"t": t}

    def scalars(self, step: int) -> dict[str, float]:
        return {}


@dataclass(frozen=True)
class GuidedTeacher:
    """The frozen diffusion model sCD distils, with its classifier-free guidance scale."""

    net: torch.nn.Module
    guidance: float = 1.0  # 1 = no guidance

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return guided(self.net, x, t, y, self.guidance)


class SCMLoss(_Draws):
    """Continuous-time consistency loss, sCT or sCD (sCM Algorithm 1).

    loss = w_prior(t) e^{w_phi(t)} ||F_theta - F^- - g||^2 / D - w_phi(t)   (adaptive on)
    loss = w_prior(t) ||F_theta - F^- - g||^2 / D                           (adaptive off)

    When ``tangent_of_net`` runs the one-pass fast JVP with theta^- = stop-gradient(theta)
    (``target=None``), its F keeps the graph and is F_theta; otherwise F_theta is a second
    forward with the same dropout masks (RNG restored).
    """

    def __init__(
        self,
        sigma_d: float,
        method: Method,  # "sct": dx/dt = cos t z - sin t x0; "scd": dx/dt = sigma_d F_teacher
        proposal: Proposal = Proposal(),
        tangent: TangentConfig = TangentConfig(),
        jvp: JVPConfig = JVPConfig(),
        prior: PriorWeight = "none",  # an extra prior weight on top of Algorithm 1
        adaptive: AdaptiveWeight | None = None,  # None = fixed weight 1
        teacher: GuidedTeacher | None = None,  # required for scd
    ):
        super().__init__(sigma_d, proposal)
        if method not in ("sct", "scd"):
            raise ValueError(f"SCMLoss trains a student: method sct or scd, got {method!r}")
        if method == "scd" and teacher is None:
            raise ValueError("sCD needs a teacher network")
        check(prior, PriorWeight, "weighting.prior")
        self.method, self.teacher = method, teacher
        self.tangent, self.jvp, self.prior, self.adaptive = tangent, jvp, prior, adaptive
        self.label_dropout = 0.0  # labels condition the student as they are

    def warmup_ratio(self, step: int) -> float:
        return warmup_ratio(step, self.tangent.warmup_steps)

    def scalars(self, step: int) -> dict[str, float]:
        return {"r": self.warmup_ratio(step)}

    def dxdt(self, x0, z, t, x_t, y):
        """Step 2: the PF-ODE velocity, exact for sCT, the (guided) teacher's for sCD."""
        if self.method == "sct":
            return velocity(x0, z, t)
        with torch.no_grad():
            return self.sigma_d * self.teacher(x_t / self.sigma_d, t, y)

    def __call__(
        self, net, x0, y=None, *, step, target=None, t=None, z=None, keep=None, generator=None,
        timer: Timer = nullcontext,
    ):  # fmt: skip
        sd, r = self.sigma_d, self.warmup_ratio(step)
        t, z, x_t = self.draw(x0, t, z, generator)
        dxdt = self.dxdt(x0, z, t, x_t, y)
        rng, diag = RngSnapshot.take(), {"t": t}
        if self.tangent.discrete_steps:  # discrete time: a finite difference, not a JVP
            f, g_raw = self.discrete(net, target, x0, z, t, x_t, dxdt, y, rng, r)
        else:
            # Step 4: F^- and cos t sin t sigma_d dF^-/dt (no graph); dropout masks pinned. The
            # fast path with theta^- = stop-gradient(theta) shares one pass: F_theta keeps its
            # graph, unless autocast is on (train.precision): the JVP pass stays in
            # jvp.precision, and F_theta is a second, autocast pass.
            one_pass = target is None and not torch.is_autocast_enabled(x0.device.type)
            with timer():
                f, cs_dfdt = tangent_of_net(
                    target if target is not None else net,
                    x_t, t, dxdt, sd, y, self.jvp, rng=rng, keep_graph=one_pass,
                )  # fmt: skip
            # Steps 3, 5: warmup ratio r and the tangent g.
            g_raw = scm_tangent(x_t, t, f.detach(), dxdt, cs_dfdt, sd, r)
            diag["jvp_norm"] = per_sample_norm(cs_dfdt)
            diag["nonfinite_tangent"] = (~torch.isfinite(cs_dfdt)).flatten(1).float().mean(1)
        f_minus = f.detach()

        # Step 6: normalize / clip / raw.
        g = shape_tangent(g_raw, self.tangent)

        # Step 7: the weighted regression of F_theta onto F^- + g (same dropout masks).
        if f.requires_grad:  # the one pass gave F_theta with its graph
            f_theta = f
        else:
            rng.restore()
            f_theta = net(x_t / sd, t, y)
        loss = mean_sq(f_theta - f_minus - g) * prior_weight(t, sd, self.prior)
        w = torch.zeros_like(t)
        if self.adaptive is not None:
            w = self.adaptive(t)
            loss = torch.exp(w) * loss - w
        diag.update(g_norm=per_sample_norm(g_raw), weight=w.detach())
        return loss, diag

    def discrete(self, net, target, x0, z, t, x_t, dxdt, y, rng, r):
        """(F^-(x_t, t), g) of the discrete-time objective with N = ``tangent.discrete_steps``:
        one step back to t' = max(t - pi/(2N), 0) on the same noise path (sCT: x_t' = cos t' x0
        + sin t' z) or by one Euler step of the teacher's PF-ODE (sCD). Same dropout masks in
        every pass; with theta^- = stop-gradient(theta) F keeps its graph (it is F_theta)."""
        sd, theta_minus = self.sigma_d, target if target is not None else net
        t_prev = (t - discrete_dt(self.tangent.discrete_steps)).clamp_min(0)
        if self.method == "sct":
            x_prev = noise(x0, z, t_prev)
        else:
            x_prev = x_t - expand_t(t - t_prev, x_t) * dxdt
        rng.restore()
        with torch.set_grad_enabled(target is None and torch.is_grad_enabled()):
            f = theta_minus(x_t / sd, t, y)  # (B, ...)
        with torch.no_grad():
            rng.restore()
            f_prev = consistency_fn(theta_minus, x_prev, t_prev, sd, y)  # f(x, 0) = x
            dt = expand_t(t - t_prev, x_t)  # (B, 1, ...): min(pi/(2N), t)
            return f, discrete_scm_tangent(x_t, t, f.detach(), dxdt, f_prev, dt, sd, r)

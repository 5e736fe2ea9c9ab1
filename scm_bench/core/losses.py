"""Training objectives as small callables returning a per-sample loss and diagnostics.

The caller (the training loop) reduces, scales and back-propagates. Every random input
(t, z) can be passed explicitly so tests can pin them.
"""

from __future__ import annotations

import time

import torch

from scm_bench.core.jvp import RngSnapshot, fast_path_applies, tangent_of_net
from scm_bench.core.tangent import per_sample_norm, scm_tangent, shape_tangent, warmup_ratio
from scm_bench.core.trigflow import noise, sample_t, velocity
from scm_bench.core.weighting import AdaptiveWeight, prior_weight

Diagnostics = dict[str, torch.Tensor]


def mean_sq(x: torch.Tensor) -> torch.Tensor:
    """||x||^2 / D per sample: (B, ...) -> (B,)."""
    return x.flatten(1).pow(2).mean(1)


def drop_labels(
    y: torch.Tensor | None, p: float, null: int, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    """Replace each label by the null class with probability p (classifier-free guidance)."""
    if y is None or p <= 0:
        return y
    keep = torch.rand(y.shape, generator=generator) >= p
    return torch.where(keep.to(y.device), y, torch.full_like(y, null))


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

    def __init__(self, sigma_d: float, p_mean: float, p_std: float):
        self.sigma_d, self.p_mean, self.p_std = sigma_d, p_mean, p_std

    def draw(self, x0, t=None, z=None, generator=None):
        if t is None:
            t = sample_t(x0.shape[0], self.p_mean, self.p_std, self.sigma_d, generator)
        if z is None:
            z = torch.randn(x0.shape, generator=generator) * self.sigma_d
        t, z = t.to(x0.device, x0.dtype), z.to(x0.device, x0.dtype)
        return t, z, noise(x0, z, t)


class TeacherLoss(_Draws):
    """TrigFlow diffusion loss ||sigma_d F(x_t/sigma_d, t) - v_t||^2 / (sigma_d^2 D).

    The 1/sigma_d^2 factor makes the regression target v_t / sigma_d unit-variance.
    """

    def __init__(self, sigma_d: float, p_mean: float, p_std: float, label_dropout: float = 0.0):
        super().__init__(sigma_d, p_mean, p_std)
        self.label_dropout = label_dropout

    def __call__(self, net, x0, y=None, *, t=None, z=None, generator=None):
        t, z, x_t = self.draw(x0, t, z, generator)
        y = drop_labels(y, self.label_dropout, getattr(net, "num_classes", 0), generator)
        pred = net(x_t / self.sigma_d, t, y)
        loss = mean_sq(pred - velocity(x0, z, t) / self.sigma_d)
        return loss, {"t": t}


class SCMLoss(_Draws):
    """Continuous-time consistency loss, sCT or sCD (sCM Algorithm 1).

    loss = w_prior(t) e^{w_phi(t)} ||F_theta - F^- - g||^2 / D - w_phi(t)   (adaptive on)
    loss = w_prior(t) ||F_theta - F^- - g||^2 / D                           (adaptive off)

    With ``backend="fast"`` and theta^- = stop-gradient(theta) (``target=None``), one pass of
    the net's ``forward_jvp`` gives F_theta (with its graph), F^- = F_theta.detach() and the
    tangent; otherwise the JVP pass runs without a graph and F_theta is a second forward with
    the same dropout masks (RNG restored).
    """

    def __init__(
        self,
        sigma_d: float,
        method: str,  # "sct": dx/dt = cos t z - sin t x0; "scd": dx/dt = sigma_d F_teacher
        p_mean: float = -1.0,
        p_std: float = 1.4,
        tangent_mode: str = "normalize",  # normalize | clip | raw
        tangent_norm: str = "l2",  # l2 | rms
        tangent_c: float = 0.1,
        warmup_steps: int = 10000,  # 0 = no warmup
        ordering: str = "rearranged",  # rearranged | naive
        precision: str = "float32",  # precision of the JVP pass
        backend: str = "fast",  # fast (one pass) | autograd (torch.func.jvp) | finite_difference
        prior: str = "none",  # none | inv_tan
        adaptive: AdaptiveWeight | None = None,  # None = fixed weight 1
        teacher: torch.nn.Module | None = None,  # required for scd
        guidance: float = 1.0,  # CFG scale of the teacher (scd)
    ):
        super().__init__(sigma_d, p_mean, p_std)
        if method not in ("sct", "scd"):
            raise ValueError(f"method must be 'sct' or 'scd', got {method!r}")
        if method == "scd" and teacher is None:
            raise ValueError("sCD needs a teacher network")
        self.method, self.teacher, self.guidance = method, teacher, guidance
        self.tangent_mode, self.tangent_norm, self.tangent_c = tangent_mode, tangent_norm, tangent_c
        self.warmup_steps, self.ordering, self.precision = warmup_steps, ordering, precision
        self.backend, self.prior, self.adaptive = backend, prior, adaptive

    def warmup_ratio(self, step: int) -> float:
        return warmup_ratio(step, self.warmup_steps)

    def dxdt(self, x0, z, t, x_t, y):
        """Step 2: the PF-ODE velocity, exact for sCT, the (guided) teacher's for sCD."""
        if self.method == "sct":
            return velocity(x0, z, t)
        with torch.no_grad():
            return self.sigma_d * guided(self.teacher, x_t / self.sigma_d, t, y, self.guidance)

    def __call__(self, net, x0, y=None, *, step, target=None, t=None, z=None, generator=None):
        sd = self.sigma_d
        t, z, x_t = self.draw(x0, t, z, generator)
        dxdt = self.dxdt(x0, z, t, x_t, y)
        r = warmup_ratio(step, self.warmup_steps)

        # Step 4: F^- and cos t sin t sigma_d dF^-/dt (no graph); dropout masks pinned. The
        # fast path with theta^- = stop-gradient(theta) shares one pass: F_theta keeps its graph.
        rng = RngSnapshot.take()
        one_pass = target is None and fast_path_applies(net, self.backend, self.precision)
        start = time.perf_counter()
        f, cs_dfdt = tangent_of_net(
            target if target is not None else net,
            x_t,
            t,
            dxdt,
            sd,
            y,
            ordering=self.ordering,
            precision=self.precision,
            backend=self.backend,
            rng=rng,
            keep_graph=one_pass,
        )
        f_minus = f.detach()
        if x_t.is_cuda:
            torch.cuda.synchronize(x_t.device)
        jvp_seconds = time.perf_counter() - start  # one pass: includes the F_theta forward

        # Steps 5-6: the tangent g, then normalize / clip / raw.
        g_raw = scm_tangent(x_t, t, f_minus, dxdt, cs_dfdt, sd, r)
        g = shape_tangent(g_raw, self.tangent_mode, self.tangent_norm, self.tangent_c)

        # Step 7: the weighted regression of F_theta onto F^- + g (same dropout masks).
        if one_pass:
            f_theta = f
        else:
            rng.restore()
            f_theta = net(x_t / sd, t, y)
        loss = mean_sq(f_theta - f_minus - g) * prior_weight(t, sd, self.prior)
        w = torch.zeros_like(t)
        if self.adaptive is not None:
            w = self.adaptive(t)
            loss = torch.exp(w) * loss - w
        diag = {
            "t": t,
            "g_norm": per_sample_norm(g_raw),
            "jvp_norm": per_sample_norm(cs_dfdt),
            "nonfinite_tangent": (~torch.isfinite(cs_dfdt)).flatten(1).float().mean(1),
            "weight": w.detach(),
            "jvp_time": torch.tensor(jvp_seconds),
        }
        return loss, diag

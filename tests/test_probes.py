"""Mechanism probes at fixed weights: known answers on analytic nets, and their columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from scm_bench import metrics
from scm_bench.core.jvp import JVPConfig
from scm_bench.core.losses import SCMLoss
from scm_bench.core.trigflow import noise
from scm_bench.metrics.probes import PROBE_POINTS, SIGMA_MAX, probe_times, summarize
from scm_bench.rundir import T_BINS
from scm_bench.runner.results import teacher_ratios
from scm_bench.train.probes import dfdt, fp16_nonfinite

SIGMA_D = 0.5


class SineOfTime(nn.Module):
    """F(x, t) = sin(w t) in every element: dF/dt = w cos(w t), known in closed form."""

    def __init__(self, w: float):
        super().__init__()
        self.w = w
        self.dummy = nn.Parameter(torch.zeros(()))  # a weight, for the float16 cast

    def forward(self, x, t, y=None):
        return torch.sin(self.w * t).reshape(-1, 1).expand_as(x) + self.dummy


class EDMTime(nn.Module):
    """F(x, t) = K log(tan t) / 4 (EDM's c_noise times K): dF/dt = K / (4 sin t cos t) is
    unbounded as t -> pi/2, so the naive float16 JVP overflows there."""

    def __init__(self, k: float):
        super().__init__()
        self.k = k
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        return (self.k * torch.log(torch.tan(t)) / 4).reshape(-1, 1).expand_as(x) + self.dummy


def test_probe_times_cover_each_bin_up_to_the_samplers_start():
    times = probe_times(SIGMA_D)
    assert times.shape == (T_BINS, PROBE_POINTS)
    width = math.pi / (2 * T_BINS)
    for i, row in enumerate(times):
        assert np.all(row > i * width) and np.all(row <= (i + 1) * width + 1e-12)
        assert np.all(np.diff(row) > 0)
    assert times[-1, -1] == pytest.approx(math.atan(SIGMA_MAX / SIGMA_D))


def test_summarize_means_percentiles_and_shares():
    shape = (T_BINS, PROBE_POINTS, 100)
    per_bin = np.arange(T_BINS, dtype=float).reshape(-1, 1, 1)
    g = np.broadcast_to(np.arange(1, 101, dtype=float), shape) * (1 + per_bin)
    fp = np.zeros(shape)
    fp[-1] = 1.0  # the last bin overflows entirely
    out = summarize({"dfdt": np.broadcast_to(per_bin, shape), "g_norm": g, "fp16_nonfinite": fp})
    assert [out[f"dfdt_tbin_{i}"] for i in range(T_BINS)] == list(range(T_BINS))
    assert out["dfdt"] == pytest.approx(np.mean(range(T_BINS)))
    assert out["g_p50_tbin_0"] == pytest.approx(50.5)
    assert out["g_p99_tbin_1"] == pytest.approx(2 * np.percentile(np.arange(1, 101), 99))
    assert out["g_max"] == 100 * T_BINS
    assert out["fp16_nonfinite_tbin_7"] == 1.0 and out["fp16_nonfinite_tbin_0"] == 0.0
    assert out["fp16_nonfinite"] == pytest.approx(1 / T_BINS)
    for column in out:  # every column is a registered metric
        assert metrics.get(metrics.base_name(column)).kind == "mechanism"


def test_summarize_counts_a_nonfinite_g_as_infinite():
    g = np.ones((T_BINS, PROBE_POINTS, 10))
    g[3, 0, 0] = np.nan
    assert summarize({"g_norm": g})["g_max"] == math.inf


@pytest.mark.parametrize("ordering", ["naive", "rearranged"])
@pytest.mark.parametrize("backend", ["autograd", "finite_difference"])
def test_dfdt_is_sin_t_times_the_rms_time_derivative(ordering, backend):
    w, x = 7.0, torch.randn(5, 3)
    t = torch.tensor([0.1, 0.4, 0.9, 1.2, 1.5])
    got = dfdt(SineOfTime(w), x, t, None, SIGMA_D, JVPConfig(ordering, backend=backend))
    assert torch.allclose(got, torch.sin(t) * (w * torch.cos(w * t)).abs(), atol=1e-5)


@pytest.mark.parametrize("ordering, overflow", [("naive", True), ("rearranged", False)])
def test_float16_naive_jvp_overflows_near_pi_over_2_and_the_rearranged_one_does_not(
    ordering, overflow
):
    # dF/dt = K / (4 sin t cos t): at t = 1.5645 (sigma = 80) about 40 K, past float16's 65504
    # for K = 2000; the rearranged tangent is cos t sin t sigma_d dF/dt = K sigma_d / 4 = 250.
    net = EDMTime(2000.0)
    loss = SCMLoss(SIGMA_D, "sct", jvp=JVPConfig(ordering=ordering))
    x0 = torch.randn(4, 2) * SIGMA_D
    z = torch.randn(4, 2) * SIGMA_D
    for value, bad in ((math.atan(SIGMA_MAX / SIGMA_D), overflow), (0.8, False)):
        t = torch.full((4,), value)
        share = fp16_nonfinite(loss, net, x0, z, t, noise(x0, z, t), None)
        assert torch.all(share == (1.0 if bad else 0.0)), (value, share)


def test_teacher_ratios_divide_each_sampler_by_the_teacher():
    row = {"swd_2step": 0.3, "swd_1step": 0.6, "swd_teacher": 0.2, "mode_precision_2step": 0.5,
           "mode_precision_teacher": 0.0, "fid_2step": 4.0}  # fmt: skip
    out = teacher_ratios(row, ("1step", "2step"))
    assert out == pytest.approx({"swd_ratio_2step": 1.5, "swd_ratio_1step": 3.0})
    assert metrics.get(metrics.base_name("swd_ratio_2step")).kind == "ratio"
    assert metrics.get("mode_precision_ratio").higher_is_better is True


def test_a_trial_ends_with_probe_columns(tmp_path):
    from scm_bench.spec.schema import TrialSpec
    from scm_bench.train.loop import train_trial

    small = {"n_samples": 100, "grid": 0, "bootstrap": 0, "samplers": ["1step"]}
    base = {"method": "sct", "student": {"init": "scratch"}, "train": {"steps": 5},
            "net": {"width": 16, "depth": 1}, "eval": small}  # fmt: skip
    result = train_trial(TrialSpec.model_validate(base), tmp_path / "on")
    columns = result["metrics"]
    assert {"dfdt", "g_p99", "g_max", "g_p50_tbin_7"} <= set(columns)
    assert "fp16_nonfinite" not in columns  # float32 JVP on a CPU: not probed (slow, unused)
    base["jvp"] = {"precision": "float16"}
    columns = train_trial(TrialSpec.model_validate(base), tmp_path / "fp16")["metrics"]
    assert all(math.isfinite(columns[k]) for k in ("dfdt", "g_p99", "fp16_nonfinite"))
    base["eval"]["probe"] = False
    result = train_trial(TrialSpec.model_validate(base), tmp_path / "off")
    assert "dfdt" not in result["metrics"]


def test_curve_every_logs_sample_metrics_without_changing_training(tmp_path):
    from scm_bench import rundir
    from scm_bench.spec.schema import TrialSpec
    from scm_bench.train.loop import train_trial

    small = {"n_samples": 100, "grid": 0, "bootstrap": 0, "samplers": ["1step"], "probe": False}
    base = {"method": "sct", "student": {"init": "scratch"}, "net": {"width": 16, "depth": 1},
            "train": {"steps": 6, "log_every": 2}, "eval": small}  # fmt: skip
    train_trial(TrialSpec.model_validate(base), tmp_path / "plain")
    base["eval"] = small | {"curve_every": 4}
    train_trial(TrialSpec.model_validate(base), tmp_path / "curve")
    plain = rundir.read_history(tmp_path / "plain" / "history.jsonl")
    curve = rundir.read_history(tmp_path / "curve" / "history.jsonl")
    assert [r["loss"] for r in plain] == [r["loss"] for r in curve]  # same training draws
    logged = {r["step"]: r for r in curve}
    assert "eval_swd_1step" in logged[4] and math.isfinite(logged[4]["eval_swd_1step"])
    assert not any(k.startswith("eval_") for s in (2, 6) for k in logged[s])


def test_probe_figure_draws_every_probe_per_variant(tmp_path):
    import pandas as pd

    from scm_bench.report.figures import probe_figure

    rows = []
    for variant in ("a", "b"):
        for seed in range(3):
            row = {"variant": variant, "seed": seed}
            for name in ("dfdt", "g_p99", "fp16_nonfinite"):
                row |= {f"{name}_tbin_{i}": 1.0 + i + seed for i in range(T_BINS)}
            rows.append(row)
    path = probe_figure(pd.DataFrame(rows), ["a", "b"], tmp_path / "probes.png")
    assert path is not None and path.stat().st_size > 0
    assert probe_figure(pd.DataFrame({"variant": ["a"]}), ["a"], tmp_path / "none.png") is None


def test_matched_probes_at_the_initial_weights_and_a_step(tmp_path):
    """probe_steps (0, 3): columns <probe>_at0 and _at3, the same at step 0 for two variants
    that share their initial weights (naive and rearranged JVP orderings, same scratch init),
    and probing never changes the training draws (the losses equal those of a run without)."""
    from scm_bench import rundir
    from scm_bench.spec.schema import TrialSpec
    from scm_bench.train.loop import train_trial

    small = {"n_samples": 100, "grid": 0, "bootstrap": 0, "samplers": ["1step"],
             "probe_steps": [0, 3]}  # fmt: skip
    base = {
        "method": "sct",
        "student": {"init": "scratch"},
        "train": {"steps": 5, "log_every": 1},
        "net": {"width": 16, "depth": 1},
        "eval": small,
        "jvp": {"precision": "float16"},
    }
    runs = {}
    for ordering in ("naive", "rearranged"):
        spec = TrialSpec.model_validate(base | {"jvp": base["jvp"] | {"ordering": ordering}})
        runs[ordering] = train_trial(spec, tmp_path / ordering)["metrics"]
    naive, rearranged = runs["naive"], runs["rearranged"]
    assert {f"{k}_at{s}" for k in ("dfdt", "g_p99", "fp16_nonfinite") for s in (0, 3)} <= set(naive)
    assert naive["dfdt_at0"] == pytest.approx(rearranged["dfdt_at0"], rel=1e-6)
    naive_jvp = {"jvp": base["jvp"] | {"ordering": "naive"}}
    unprobed = TrialSpec.model_validate(base | naive_jvp | {"eval": small | {"probe_steps": []}})
    train_trial(unprobed, tmp_path / "unprobed")
    losses = lambda name: [
        r["loss"] for r in rundir.read_history(tmp_path / name / "history.jsonl")
    ]
    assert losses("unprobed") == losses("naive")

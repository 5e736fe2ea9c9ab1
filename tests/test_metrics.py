"""Metrics: sample distances order real < noisy < noise, reference statistics are cached, a
missing Inception file is a clear error without a download, stability columns are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import fake_inception_file

from scm_bench import metrics
from scm_bench.data import Dataset, load_dataset
from scm_bench.metrics import fid as fid_module
from scm_bench.metrics.features import INCEPTION_FILE, INCEPTION_URL, MissingWeights
from scm_bench.spec.schema import DataSpec

NOISE = (0.0, 0.1, 0.2, 0.4, 0.8)  # std of added noise; data std is about 0.5 per dimension
TOY_NOISE = (0.0, 0.2, 0.4, 0.8)  # 2-D Gaussian fits barely move below 0.2 (sampling noise)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private statistics cache and no Inception file unless a test provides one."""
    monkeypatch.setenv("SCM_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SCM_BENCH_INCEPTION", str(tmp_path / "absent" / INCEPTION_FILE))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataSpec(name="digits"))


def noisy(x: torch.Tensor, strength: float, seed: int = 0) -> torch.Tensor:
    return x + strength * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


# Sample quality: real < noisy (monotonic in the noise) < pure noise.


@pytest.mark.slow
def test_digits_fid_orders_real_noisy_and_noise(digits):
    test = digits.reference("test")  # 360 held-out images against the 1437 training images
    fids = [metrics.evaluate_samples(["fid"], noisy(test, s), digits)["fid"] for s in NOISE]
    # As many noise images as test images (KID's cost grows with the square of their number).
    noise = torch.rand(len(test), 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pure = metrics.evaluate_samples(["fid", "kid"], noise, digits)
    assert fids[0] < 2.0  # test split vs train split: finite-sample bias only
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids
    assert pure["fid"] > 20 * fids[0] and pure["fid"] > 30
    real_kid = metrics.evaluate_samples(["kid"], test, digits)["kid"]
    assert abs(real_kid) < 0.05 < pure["kid"]


@pytest.mark.parametrize("name", ["swd", "mmd", "frechet2d"])
def test_toy2d_distances_order_real_noisy_and_noise(name):
    data = load_dataset(DataSpec(name="toy2d", variant="checkerboard"))
    train = data.reference("train", 2000)  # a sample disjoint from the reference split
    values = [metrics.evaluate_samples([name], noisy(train, s), data)[name] for s in TOY_NOISE]
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    pure = metrics.evaluate_samples([name], noise, data)[name]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values
    assert pure > 10 * abs(values[0]) and pure > values[1]


def test_reference_statistics_are_computed_once_and_read_back(digits, cache, monkeypatch):
    calls = []
    compute = fid_module.compute_reference
    monkeypatch.setattr(fid_module, "compute_reference", lambda *a: calls.append(1) or compute(*a))
    x = digits.reference("test")
    first = metrics.evaluate_samples(["fid"], x, digits)
    files = list((cache / "ref_stats").glob("digits-train-digitscnn-*.npz"))
    second = metrics.evaluate_samples(["fid"], x, digits)
    assert len(calls) == 1 and len(files) == 1
    assert first == second


def test_mode_metrics_see_the_grid_that_two_moments_miss():
    """On the grid of Gaussians, real data holds ~99% of its samples in the modes and covers all
    9; a Gaussian with the data's mean and covariance matches frechet2d almost exactly yet puts
    few samples in modes; a sampler collapsed onto 4 modes covers 4 of 9."""
    data = load_dataset(DataSpec(name="toy2d", variant="grid"))
    real = data.reference("train", 2000)
    g = torch.Generator().manual_seed(3)
    gauss = real.mean(0) + torch.randn(2000, 2, generator=g) @ torch.linalg.cholesky(real.T.cov()).T
    collapsed = data.modes[:4][torch.arange(2000) % 4] + data.mode_std * torch.randn(
        2000, 2, generator=g)  # fmt: skip
    names = ["mode_precision", "mode_coverage", "frechet2d", "swd"]
    m = {k: metrics.evaluate_samples(names, x, data) for k, x in
         [("real", real), ("gauss", gauss), ("collapsed", collapsed)]}  # fmt: skip
    assert m["real"]["mode_precision"] > 0.97 and m["real"]["mode_coverage"] == 1.0
    assert m["gauss"]["frechet2d"] < 0.01 and m["gauss"]["mode_precision"] < 0.6
    assert m["collapsed"]["mode_coverage"] == 4 / 9 and m["collapsed"]["mode_precision"] > 0.97
    assert m["gauss"]["swd"] > 1.5 * m["real"]["swd"]
    assert metrics.get("mode_coverage").higher_is_better and metrics.get("swd").bounds[0] == 0


def test_floor_and_uniform_are_computed_once_per_data_and_size(cache, monkeypatch):
    """Real vs real halves give the floor, below a uniform sampler over the data's box; both
    are cached: the second call evaluates no metric."""
    data = load_dataset(DataSpec(name="toy2d", variant="grid"))
    names = ["swd", "mode_precision"]
    floor, uniform = metrics.floor(names, data, 1000), metrics.uniform(names, data, 1000)
    assert floor["swd"] < 0.5 * uniform["swd"] and floor["mode_precision"] > 0.97
    assert uniform["mode_precision"] < floor["mode_precision"] - 0.2
    assert len(list((cache / "floors").glob("toy2d_grid-*-n1000-*.json"))) == 2
    monkeypatch.setattr(metrics.noise, "evaluate", lambda *a: pytest.fail("recomputed"))
    assert metrics.floor(names, data, 1000) == floor
    assert metrics.uniform(names, data, 1000) == uniform


def test_bootstrap_noise_is_small_for_real_data_and_shrinks_with_n():
    data = load_dataset(DataSpec(name="toy2d", variant="checkerboard"))
    sd = [metrics.bootstrap_sd(["swd"], data.reference("train", n), data, 10)["swd"]
          for n in (250, 4000)]  # fmt: skip
    assert 0 < sd[1] < sd[0] / 2  # ~1/sqrt(n)
    assert math.isnan(metrics.bootstrap_sd(["swd"], data.reference("train", 100), data, 1)["swd"])


def test_digits_bootstrap_resamples_features_not_images(digits, monkeypatch):
    """FID's bootstrap extracts the samples' features once and resamples their rows."""
    from scm_bench.metrics import features

    calls, extract = [], features.digits_features
    monkeypatch.setattr(features, "digits_features",
                        lambda x, device: calls.append(len(x)) or extract(x, device))  # fmt: skip
    test = digits.reference("test")[:120]  # a third of the split: KID's subsets are O(n^2)
    sd = metrics.bootstrap_sd(["fid", "kid"], test, digits, 4)
    assert calls.count(len(test)) == 1  # plus the reference split's features, once
    assert 0 < sd["fid"] < 0.5 * metrics.evaluate_samples(["fid"], test, digits)["fid"]


# Inception (RGB): a clear error when the weights are absent, never a download.


@pytest.fixture
def no_downloads(monkeypatch):
    import urllib.request

    import cleanfid.downloads_helper
    import cleanfid.inception_torchscript

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    for mod in (cleanfid.downloads_helper, cleanfid.inception_torchscript):
        monkeypatch.setattr(mod, "check_download_inception", refuse)


def tiny_rgb(n: int = 24, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float() / 127.5 - 1.0
    return Dataset("cifar10", (3, 8, 8), 0.5, 0, x, None, x[: n // 2], None)


def test_missing_inception_is_one_clear_line_and_no_download(tmp_path, no_downloads):
    with pytest.raises(MissingWeights) as err:
        metrics.check_available("cifar10", ["fid"])
    msg = str(err.value)
    where = tmp_path / "absent" / INCEPTION_FILE
    assert "\n" not in msg and str(where) in msg
    assert "SCM_BENCH_INCEPTION" in msg and INCEPTION_URL in msg
    with pytest.raises(MissingWeights):  # also at evaluation time, still without a download
        metrics.evaluate_samples(["fid"], tiny_rgb().test_x, tiny_rgb())
    metrics.check_available("digits", ["fid", "kid"])  # shipped weights: fine
    metrics.check_available("toy2d/moons", ["swd"])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_rgb_fid_runs_through_clean_fid_inception_and_caches(
    tmp_path, cache, no_downloads, monkeypatch
):
    import cleanfid.fid

    torch.manual_seed(0)
    weights = fake_inception_file(tmp_path / "weights")
    data = tiny_rgb()
    metrics.check_available("cifar10", ["fid", "kid"], inception=str(weights.parent))
    seen, frechet_distance = [], cleanfid.fid.frechet_distance

    def frechet(mu1, s1, mu2, s2):  # clean-fid's, on 8 of 2048 dims (sqrtm of 2048^2 is slow)
        seen.append((mu1.shape, s1.shape))
        return frechet_distance(mu1[:8], s1[:8, :8], mu2[:8], s2[:8, :8])

    monkeypatch.setattr(cleanfid.fid, "frechet_distance", frechet)
    out = metrics.evaluate_samples(["fid", "kid"], data.test_x, data, inception=str(weights))
    assert seen == [((2048,), (2048, 2048))]
    assert math.isfinite(out["fid"]) and math.isfinite(out["kid"])
    assert len(list((cache / "ref_stats").glob("cifar10-train-inception-*.npz"))) == 1


# Registry.


def test_registry_names_and_suggestions():
    assert metrics.default_sample_metrics("digits") == ("fid",)  # kid is opt-in: seconds a value
    assert metrics.default_sample_metrics("toy2d/moons") == ("swd", "mmd", "frechet2d")
    with pytest.raises(metrics.UnknownMetric, match="did you mean 'fid'"):
        metrics.get("fdi")
    with pytest.raises(ValueError, match="not a sample metric for dataset 'toy2d'"):
        metrics.check_available("toy2d/moons", ["fid"])
    with pytest.raises(ValueError, match="use one of: fid, kid$"):  # opt-in ones listed too
        metrics.check_available("digits", ["swd"])
    rows = metrics.list_metrics()
    assert {"name", "kind", "higher_is_better", "aggregate", "description"} <= set(rows[0])
    assert {r["name"]: r["higher_is_better"] for r in rows}["fid"] is False
    assert metrics.base_name("fid_2step") == "fid"
    assert metrics.base_name("g_norm_tbin_7") == "g_norm_tbin"


# Stability and cost from a synthetic history.


def history(rows: int = 40, spike_at: int = 20) -> list[dict]:
    out = []
    for i in range(rows):
        g = 1.0 + 0.01 * i
        out.append({
            "step": 10 * (i + 1), "loss": 1.0 + (i % 2) * 0.1, "grad_norm": g,
            "grad_norm_max": 50.0 if i == spike_at else 1.5 * g,
            "step_time": 0.2, "jvp_time": 0.05, "nonfinite_tangent": 0.01 * (i == 5),
            "g_norm_tbin": [float(b) for b in range(8)], "weight_tbin": [0.5] * 7 + [math.nan],
        })  # fmt: skip
    return out


def test_stability_reports_the_known_spike_and_divergence():
    result = {"status": "diverged", "diverged_step": 405, "diverged_what": "loss",
              "peak_mem_mb": 123.0, "wall_time": 9.0,
              "metrics": {"samples_per_sec_1step": 100.0, "nfe_1step": 1,
                          "samples_per_sec_2step": 40.0, "nfe_2step": 2}}  # fmt: skip
    s = metrics.summarize_trial(history(), result)
    assert s["diverged"] == 1.0 and s["diverged_step"] == 405.0 and s["nonfinite_steps"] == 1.0
    assert s["grad_spikes"] == 1.0 and s["grad_norm_max"] == 50.0
    assert s["grad_norm_median"] == pytest.approx(1.195)
    assert s["loss_std_late"] == pytest.approx(np.std([1.0, 1.1] * 5, ddof=1))
    assert s["sec_per_step"] == pytest.approx(0.2) and s["jvp_share"] == pytest.approx(0.25)
    assert s["nonfinite_tangent"] == pytest.approx(0.01 / 40)
    assert [s[f"g_norm_tbin_{b}"] for b in range(8)] == [float(b) for b in range(8)]
    assert s["weight_tbin_0"] == 0.5 and math.isnan(s["weight_tbin_7"])
    assert s["peak_mem_mb"] == 123.0 and s["net_evals_per_sec"] == pytest.approx(90.0)
    for column in s:  # every column is registered with its meaning
        assert metrics.get(metrics.base_name(column)).kind in ("stability", "cost")


def test_stability_of_a_calm_finished_trial():
    rows = history(spike_at=-1)
    s = metrics.summarize_trial(rows, {"status": "ok", "diverged_step": None})
    assert s["diverged"] == 0.0 and math.isnan(s["diverged_step"])
    assert s["nonfinite_steps"] == 0.0 and s["grad_spikes"] == 0.0
    teacher = [{k: v for k, v in r.items() if k in ("step", "loss", "grad_norm", "step_time")}
               for r in rows]  # fmt: skip
    t = metrics.summarize_trial(teacher, {"status": "ok"})
    assert math.isnan(t["jvp_share"]) and math.isnan(t["g_norm_tbin_0"])
    assert set(t) == set(s)

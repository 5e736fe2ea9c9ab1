"""The paper-scale presets (ablations/paper/): parameter counts against the published ones,
and each preset validates and trains two steps at batch 2 on the CPU, shrunk by --set."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from helpers import (
    SIGMA_D,
    fake_inception_file,
    perturb_,
    rel_err,
    small_unet,
    trigflow_batch,
)
from PIL import Image

from scm_bench.cli import main
from scm_bench.core.jvp import JVPConfig, RngSnapshot, tangent_of_net
from scm_bench.core.precision import MixedPrecision
from scm_bench.nets import build_net
from scm_bench.spec import docs, load_trials
from scm_bench.spec.bundled import bundled
from scm_bench.spec.check import preflight
from scm_bench.train.parallel import World
from scm_bench.train.setup import build_parts
from scm_bench.train.step import draw_inputs, learning_rate, train_step

PRESETS = sorted(name for name in bundled() if name.startswith("paper/"))
# Published parameter counts (millions): EDM2's ImageNet-64 S, M, L, XL (Karras et al. 2024,
# the sizes sCM Table 2 uses) and the paper's CIFAR-10 network (~56M, sCM Sec. 6 / App.).
EDM2_IMG64 = {192: 280, 256: 498, 320: 777, 384: 1119}
CIFAR10_PAPER = 56


def parameters(spec, shape, classes: int) -> int:
    """Parameter count of a trial's network, built on the meta device (no memory)."""
    with torch.device("meta"):
        net = build_net(spec, shape, 0.5, classes)
    return sum(p.numel() for p in net.parameters())


def test_presets_are_bundled():
    assert PRESETS == ["paper/cifar10", "paper/imagenet64_scaling", "paper/imagenet64_xl"]


def test_imagenet64_sizes_match_edm2_published_counts_within_3_percent():
    trials = load_trials("paper/imagenet64_scaling").trials
    counts = {t.spec.net.width: parameters(t.spec, (3, 64, 64), 1000) / 1e6 for t in trials}
    assert sorted(counts) == sorted(EDM2_IMG64)
    for width, published in EDM2_IMG64.items():
        assert abs(counts[width] / published - 1) < 0.03, (width, counts[width], published)


def test_cifar10_network_is_about_the_papers_56m():
    """62.9M here: double normalization's scale and shift give each block a 512 -> 2C
    projection where DDPM++ has 512 -> C (docs/paper-scale.md)."""
    spec = load_trials("paper/cifar10").trials[0].spec
    count = parameters(spec, (3, 32, 32), 0) / 1e6
    assert 1.0 < count / CIFAR10_PAPER < 1.15, count


def test_block_cond_second_fast_tangent_equals_func_jvp_in_float64():
    """norm1 a plain GroupNorm (DDPM++ / EDM2 blocks): the fast JVP still equals autograd's."""
    net = perturb_(small_unet(block_cond="second", dropout=0.3)).double().train()
    assert not any("norm1.proj" in name for name, _ in net.named_parameters())
    t = torch.linspace(0.2, 1.4, 4, dtype=torch.float64)
    _, _, x_t, dxdt = trigflow_batch((4, 1, 8, 8), t)
    rng, out = RngSnapshot.take(), {}
    for backend in ("fast", "autograd"):
        cfg = JVPConfig(precision="float64", backend=backend)
        out[backend] = tangent_of_net(net, x_t, t, dxdt, SIGMA_D, None, cfg=cfg, rng=rng)
    (f, d), (f_ref, d_ref) = out["fast"], out["autograd"]
    assert d_ref.abs().max() > 1e-2 and rel_err(f, f_ref) < 1e-13 and rel_err(d, d_ref) < 1e-12


def test_ls_ablations_shows_each_presets_parameters_and_planned_gpu_hours(capsys):
    assert main(["ls", "ablations"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "[62.9M params; 48 GPU-h on h100 at MFU 0.4]" in rows["paper/cifar10"]
    assert "[1098M params; 3,574 GPU-h on h100 at MFU 0.4]" in rows["paper/imagenet64_xl"]
    assert "params" not in rows["quickstart"]


def test_a_plan_recorded_for_other_trials_is_reported_outdated(tmp_path, monkeypatch):
    stale = json.loads(docs.PLANS.read_text())
    stale["paper/cifar10"]["fingerprint"] = "0" * 12
    monkeypatch.setattr(docs, "PLANS", tmp_path / "plans.json")
    docs.PLANS.write_text(json.dumps(stale))
    note = docs.plan_note("paper/cifar10", docs.preset_plans())
    assert note == "[plan outdated: scm-bench plan NAME] "


@pytest.mark.slow
def test_recorded_preset_plans_are_current():
    """ablations/paper/plans.json is what `python -m scm_bench.train.compute_plan` prints."""
    from scm_bench.train.compute_plan import preset_plans

    assert json.loads(docs.PLANS.read_text()) == preset_plans()


def test_lr_decay_is_edm2s_inverse_square_root():
    assert learning_rate(1e-3, 0, 10**6) == 1e-3
    assert learning_rate(1e-3, 100, 50) == 1e-3  # before t_ref: flat
    assert math.isclose(learning_rate(1e-3, 100, 400), 1e-3 / 2)


# Shrinking, by --set only: tiny widths, two steps at batch 2, 16 samples.
SHRINK = [
    "net.width=8", "net.emb_dim=16", "net.depth=1", "net.heads=1", "train.steps=2",
    "train.batch_size=2", "teacher.steps=2", "teacher.batch_size=2", "eval.n_samples=16",
    "tangent.warmup_steps=1", "device=cpu",
]  # fmt: skip
SMALL_ZIP = "zip=[{net.width: [8], net.emb_dim: [16], net.heads: [1], net.dropout: [0.1]}]"
ZIPPED = ("net.width", "net.emb_dim", "net.heads")
SCALING = [SMALL_ZIP, "baseline=null", "claims=[]"]  # the claims name the full sizes


def write_cifar(folder, n: int = 2) -> None:
    """CIFAR-10's python batches (cifar-10-python.tar.gz's layout) with n random images each."""
    from scm_bench.data.cifar10 import TEST_FILE, TRAIN_FILES

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*TRAIN_FILES, TEST_FILE):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batch = {b"data": data, b"labels": list(range(n))}
        (folder / name).write_bytes(pickle.dumps(batch))


def write_image_folder(folder, classes: int = 2, per_class: int = 2) -> None:
    """Class subfolders of small random PNGs (resized to data.resolution on loading)."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (folder / f"class{c}").mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{k}.png")


@pytest.fixture
def local_data(tmp_path):
    """(cifar10 folder, image folder, Inception file) made by the test."""
    write_cifar(tmp_path / "cifar")
    write_image_folder(tmp_path / "images")
    weights = fake_inception_file(tmp_path / "weights")
    return tmp_path / "cifar", tmp_path / "images", weights


def two_steps(spec, teacher_dir=None) -> torch.nn.Module:
    """Two optimizer steps of one trial (no evaluation); returns its network."""
    parts = build_parts(spec, teacher_dir)
    before = [p.detach().clone() for p in parts.net.parameters()]
    amp, gen, world = MixedPrecision("float32", parts.device), torch.Generator(), World()
    gen.manual_seed(spec.seed)
    for step in (1, 2):
        values, _, bad = train_step(parts, draw_inputs(parts, gen, world), step, world, amp)
        assert bad is None and math.isfinite(values["loss"]), (step, bad, values)
    changed = [not torch.equal(a, p) for a, p in zip(before, parts.net.parameters(), strict=True)]
    assert any(changed), "two steps left every weight unchanged"
    return parts


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_validates_and_trains_two_steps_at_batch_2(preset, local_data, tmp_path):
    cifar, images, weights = local_data
    root = cifar if "cifar10" in preset else images
    common = [f"data.root={root}", f"eval.inception={weights}"]
    small = [] if "cifar10" in preset else ["data.resolution=16"]  # 4 levels: 16, 8, 4, 2
    preflight(load_trials(preset, common).trials, preset)  # the full preset validates
    shrink = common + SHRINK + small
    if preset.endswith("scaling"):  # its zip sets the widths: shrink the zip instead
        shrink = [s for s in shrink if s.split("=")[0] not in ZIPPED] + SCALING
    trials = load_trials(preset, shrink).trials
    preflight(trials, preset)
    for trial in trials:
        spec = trial.spec
        teacher_dir = None
        if spec.needs_teacher():
            teacher = two_steps(spec.teacher_trial())
            teacher_dir = tmp_path / f"teacher-{trial.trial_id}"
            teacher_dir.mkdir()
            torch.save({"ema": teacher.ema.state_dict()}, teacher_dir / "checkpoint.pt")
        two_steps(spec, teacher_dir)

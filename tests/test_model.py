"""Trained models you can use: model.pt round trip, samples equal to the run's grids, the
`scm-bench sample` command and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import TINY, spec
from PIL import Image

from scm_bench import load_model
from scm_bench.cli import main
from scm_bench.train.evaluate import generate, save_grid
from scm_bench.train.loop import train_trial
from scm_bench.train.model import export_model
from scm_bench.train.setup import build_parts

# A class-conditional U-Net on 8x8 digits, small enough to build in a moment.
DIGITS = {
    "data": {"name": "digits", "class_cond": True},
    "net": {"arch": "unet", "width": 16, "depth": 1, "channel_mult": [1, 2], "emb_dim": 32},
    "device": "cpu",
}


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize(
    "base, method", [(TINY, "sct"), (TINY, "teacher"), (DIGITS, "sct"), (DIGITS, "teacher")]
)
def test_model_file_round_trip_samples_exactly_like_the_trial(tmp_path, base, method):
    parts = build_parts(spec(base, method=method, student={"init": "scratch"}, seed=3))
    with torch.no_grad():  # EMA weights that differ from the init
        for p in parts.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    parts.ema.eval()
    export_model(parts, tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt")

    assert model.method == method and model.spec.seed == 3
    assert model.shape == tuple(parts.data.shape) and model.sigma_d == parts.data.sigma_d
    for name, w in parts.ema.state_dict().items():
        assert torch.equal(model.net.state_dict()[name], w), name
    samplers = {"teacher": None} if method == "teacher" else {"1step": 1, "2step": 2, "3step": 3}
    for sampler, steps in samplers.items():
        want = generate(parts, sampler, 12, seed=7)
        assert torch.equal(model.sample(12, steps, seed=7), want), sampler
    # Without a seed the model draws with the trial's seed, as the run's grids do.
    sampler, steps = next(iter(samplers.items()))
    assert torch.equal(model.sample(12, steps), generate(parts, sampler, 12, seed=3))


def test_model_file_describes_itself(tmp_path):
    parts = build_parts(spec(DIGITS, method="sct", student={"init": "scratch"}))
    export_model(parts, tmp_path / "model.pt")
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    assert blob["weights"] == "ema" and blob["method"] == "sct"
    assert set(blob["spec"]) == {"net", "attention", "data", "sampling", "student", "eval"}
    assert blob["spec"]["net"]["arch"] == "unet" and blob["spec"]["data"]["name"] == "digits"
    assert set(blob["spec"]["sampling"]) >= {"t_max", "t_mid", "teacher_steps", "solver"}
    assert blob["data"] == {"shape": [1, 8, 8], "sigma_d": parts.data.sigma_d, "num_classes": 10}


def test_a_finished_trial_exports_its_model_and_sample_redraws_its_grid(tmp_path, capsys):
    trial = tmp_path / "trial"
    result = train_trial(spec(TINY, eval={"n_samples": 64, "grid": 100}), trial)
    assert result["status"] == "ok" and (trial / "model.pt").is_file()
    assert (trial / "model.pt").stat().st_size < 200_000  # EMA weights only, no optimizer
    rc = main(["sample", str(trial), "--steps", "2", "--out", str(tmp_path / "g.png")])  # n = grid
    assert rc == 0, capsys.readouterr().err
    assert np.array_equal(pixels(tmp_path / "g.png"), pixels(trial / "samples_2step.png"))
    rc = main(["sample", str(trial / "model.pt"), "--n", "100", "--out", str(tmp_path / "g.npz")])
    assert rc == 0
    arrays = np.load(tmp_path / "g.npz")
    assert arrays["samples"].shape == (100, 2) and "labels" not in arrays
    assert np.array_equal(arrays["samples"], load_model(trial).sample(100, 1).numpy())
    # A trial finished before models were exported: its checkpoint's EMA, the same model.
    (trial / "model.pt").unlink()
    assert np.array_equal(arrays["samples"], load_model(trial).sample(100, 1).numpy())


def test_sample_an_image_model_writes_the_same_grid_as_the_trial(tmp_path, capsys):
    parts = build_parts(spec(DIGITS, method="sct", student={"init": "scratch"}, seed=1))
    parts.ema.eval()
    export_model(parts, tmp_path / "model.pt")
    save_grid(generate(parts, "2step", 16, seed=1), tmp_path / "trial.png", 16)
    args = ["sample", str(tmp_path / "model.pt"), "--steps", "2", "--n", "16"]
    assert main([*args, "--out", str(tmp_path / "cli.png")]) == 0
    assert np.array_equal(pixels(tmp_path / "cli.png"), pixels(tmp_path / "trial.png"))
    assert main([*args, "--out", str(tmp_path / "cli.npz")]) == 0
    assert np.load(tmp_path / "cli.npz")["labels"].tolist() == [i % 10 for i in range(16)]


def fake_run(tmp_path):
    run = tmp_path / "run"
    (run / "trials").mkdir(parents=True)
    rows = [
        {"trial_id": f"q-mode={m}-s{s}-abc", "variant": f"tangent.mode={m}", "seed": s,
         "status": "ok" if m == "normalize" else "diverged", "teacher_dir": None}
        for m in ("normalize", "raw") for s in (0, 1)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    return run


@pytest.mark.parametrize(
    "args, says",
    [
        (["--variant", "tangent.mode=clip", "--seed", "0"], "variants: tangent.mode=normalize, "),
        (["--seed", "0"], "--variant is needed; variants: tangent.mode=normalize, tangent.mode=r"),
        (["--variant", "normalize"], "--seed is needed; seeds of tangent.mode=normalize: [0, 1]"),
        (["--variant", "mode=normalize", "--seed", "5"], "seed 5; seeds: [0, 1]"),
        (["--variant", "raw", "--seed", "0"], "status diverged, no trained model"),
        (["--variant", "normalize", "--seed", "0", "--teacher"], "this trial has no teacher"),
    ],
)
def test_sample_names_what_the_run_has_when_the_trial_is_not_found(tmp_path, capsys, args, says):
    rc = main(["sample", str(fake_run(tmp_path)), *args, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_load_model_refuses_what_is_not_a_model(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    torch.save({"net": {}}, tmp_path / "ckpt.pt")
    for path in ("junk.pt", "ckpt.pt", "missing.pt"):
        assert main(["sample", str(tmp_path / path), "--out", str(tmp_path / "x.png")]) == 2
        assert "model" in capsys.readouterr().err or path == "missing.pt"

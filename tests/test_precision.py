"""train.precision: the training forward under autocast on the CPU, separate from jvp.precision."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import TINY, spec

from scm_bench import rundir
from scm_bench.core import jvp
from scm_bench.core.precision import MixedPrecision
from scm_bench.errors import SpecError
from scm_bench.train.loop import train_trial


def first_rows(tmp_path, precision: str, method: str = "sct") -> list[dict]:
    s = spec(TINY, method=method, train={"steps": 8, "log_every": 1, "precision": precision})
    result = train_trial(s, tmp_path / precision / method)
    assert result["status"] == "ok" and result["steps_done"] == 8
    return rundir.read_history(tmp_path / precision / method / "history.jsonl")


@pytest.mark.parametrize("method", ["sct", "teacher"])
def test_a_bfloat16_trial_runs_with_a_first_loss_close_to_float32(tmp_path, method):
    fp32, bf16 = first_rows(tmp_path, "float32", method), first_rows(tmp_path, "bfloat16", method)
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in bf16)
    # Same weights and inputs at step 1: only the autocast forward differs (8-bit mantissa).
    assert bf16[0]["loss"] == pytest.approx(fp32[0]["loss"], rel=1e-2)
    assert bf16[0]["loss"] != fp32[0]["loss"]  # autocast really ran
    if method == "sct":  # the JVP pass keeps jvp.precision=float32: the same tangent exactly
        assert bf16[0]["jvp_norm"] == fp32[0]["jvp_norm"]
        assert bf16[0]["g_norm"] == fp32[0]["g_norm"]


def test_float16_scales_the_loss_and_skips_overflowed_steps_instead_of_diverging(tmp_path):
    """GradScaler starts at 2^16, so the first steps overflow: skipped and logged, not a
    divergence; the loss stays finite and close to float32's."""
    fp32, fp16 = first_rows(tmp_path, "float32"), first_rows(tmp_path, "float16")
    skipped = [r["amp_skipped"] for r in fp16]
    assert skipped[0] == 1.0 and 0.0 in skipped
    assert all(math.isfinite(r["loss"]) for r in fp16)
    assert fp16[0]["loss"] == pytest.approx(fp32[0]["loss"], rel=1e-2)
    assert "amp_skipped" not in fp32[0]


def test_the_jvp_pass_runs_without_autocast(monkeypatch):
    seen = []

    def spy(net, x, t, y, tx, tt, **_):
        seen.append(torch.is_autocast_enabled("cpu"))
        return x, tx

    monkeypatch.setattr(jvp, "finite_difference_jvp", spy)
    x, t = torch.zeros(2, 2), torch.ones(2)
    with MixedPrecision("bfloat16", torch.device("cpu")).autocast():
        cfg = jvp.JVPConfig(backend="finite_difference")
        jvp.tangent_of_net(torch.nn.Linear(2, 2), x, t, x, 0.5, cfg=cfg)
        assert torch.is_autocast_enabled("cpu")  # switched back on after the JVP
    assert seen == [False]


def test_an_unknown_precision_names_the_setting_and_the_allowed_values():
    with pytest.raises(SpecError) as err:
        spec(TINY).override({"train.precision": "float64"})
    text = str(err.value)
    assert "train.precision" in text and "bfloat16" in text and "float16" in text

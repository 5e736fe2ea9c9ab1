"""`scm-bench plan SPEC`: the composed FLOPs of a student step equal those of the real loss and
its backward; a linear stack counts 2 in out per sample; GPU-hours are FLOPs / (peak x MFU)."""

from __future__ import annotations

import pytest
import torch
from helpers import QUICKSTART, spec
from torch.utils.flop_counter import FlopCounterMode

from scm_bench.cli import main
from scm_bench.core.precision import MixedPrecision
from scm_bench.nets import build_net
from scm_bench.spec import load_trials
from scm_bench.train.compute_plan import DEVICES, net_cost, plan, step_flops
from scm_bench.train.parallel import World
from scm_bench.train.setup import build_parts
from scm_bench.train.step import draw_inputs

DIGITS_UNET = {"arch": "unet", "width": 8, "depth": 1, "channel_mult": [1, 2],
               "attn_resolutions": [4], "heads": 2, "emb_dim": 16}  # fmt: skip


def counted_step(trial, batch: int, teacher_dir=None) -> float:
    """FLOPs per sample of one real loss evaluation and its backward (the training loop's
    step without the optimizer), counted on the CPU."""
    parts = build_parts(trial, teacher_dir)
    world, gen = World(), torch.Generator().manual_seed(0)
    amp = MixedPrecision(trial.train.precision, parts.device)
    inp = draw_inputs(parts, gen, world)
    with FlopCounterMode(display=False) as counter:
        with amp.autocast():
            loss, _ = parts.loss(parts.net, inp.x0, inp.y, step=1, t=inp.t, z=inp.z)
        loss.float().mean().backward()
    return counter.get_total_flops() / batch


@pytest.mark.parametrize("method", ["sct", "scd"])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_composed_student_step_equals_the_real_loss_and_backward(tmp_path, method, precision):
    batch = 4
    trial = spec(QUICKSTART, method=method, data={"name": "digits"}, net=DIGITS_UNET,
                 train={"batch_size": batch, "precision": precision})  # fmt: skip
    teacher_dir = None
    if trial.needs_teacher():  # a teacher's weights to load (any will do for counting)
        teacher_dir = tmp_path / "teacher"
        teacher_dir.mkdir()
        parts = build_parts(trial.teacher_trial())
        torch.save({"ema": parts.ema.state_dict()}, teacher_dir / "checkpoint.pt")
    real = counted_step(trial, batch, teacher_dir)
    low, high = step_flops(trial, net_cost(trial))
    assert (low > 0) == (precision == "bfloat16")  # the autocast pass runs at the 16-bit peak
    assert abs((low + high) / real - 1) < 0.02, (low + high, real)


def test_forward_of_a_linear_stack_counts_two_flops_per_weight():
    trial = spec(QUICKSTART)  # MLP: every layer with weights is nn.Linear
    net = build_net(trial, (2,), 0.5)
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert net_cost(trial).forward == 2 * sum(m.in_features * m.out_features for m in linear)


def test_gpu_hours_are_flops_over_peak_times_mfu_and_teachers_count_once():
    trials = load_trials("quickstart").trials
    for mfu in (0.4, 0.2):
        teachers, students, evaluation = plan(trials, "a100", mfu)
        peak = DEVICES["a100"].tf32  # quickstart trains in float32
        for p in (teachers, students, evaluation):
            assert p.hours == pytest.approx(p.flops_total / (peak * mfu) / 3600, rel=1e-9)
    distinct = {t.spec.teacher_trial().digest() for t in trials if t.spec.needs_teacher()}
    assert teachers.trials == len(distinct) < students.trials == len(trials)


def test_cli_plan_of_a_spec_and_its_errors(capsys):
    assert main(["plan", "quickstart", "--device", "h200", "--set", "train.steps=10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# compute plan on NVIDIA H200 SXM at MFU 0.4")
    assert [line.split()[0] for line in out[2:5]] == ["teachers", "students", "evaluation"]
    assert out[3].split()[3] == "10" and out[-1].startswith("total: ")
    assert main(["plan", "quickstart", "--mfu", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --mfu: a model-FLOPs utilization in (0, 1], got 1.5"]

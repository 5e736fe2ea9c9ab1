"""Training trials: a toy2d teacher learns, an sCD student gets close to it in 2 steps, runs are
deterministic and resumable, students start from the teacher, and divergence is an outcome."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import QUICKSTART, TINY, spec

from scm_bench import rundir as io
from scm_bench.core import losses
from scm_bench.train import loop
from scm_bench.train.evaluate import evaluate
from scm_bench.train.loop import train_trial
from scm_bench.train.setup import build_parts

TIME_KEYS = {"step_time", "jvp_time"}  # wall-clock diagnostics: never deterministic


def history_without_times(trial_dir) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in TIME_KEYS}
        for row in io.read_history(trial_dir / "history.jsonl")
    ]


def quality(metrics: dict) -> dict:
    """Sample-quality columns only (throughput columns are timings)."""
    return {k: v for k, v in metrics.items() if not k.startswith("samples_per_sec")}


def assert_same_state(a: dict, b: dict, keys=("net", "ema", "adaptive")) -> None:
    for key in keys:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"


# Quickstart-sized toy2d: the teacher learns, the sCD student gets close to it.


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The quickstart sCD spec and its teacher (400 steps, batch 256), trained once."""
    assert torch.get_num_threads() == 1  # conftest.single_thread: every test on one thread
    scd = spec(QUICKSTART, method="scd")
    teacher_dir = tmp_path_factory.mktemp("teacher")
    result = train_trial(scd.teacher_trial(), teacher_dir)
    return scd, teacher_dir, result


@pytest.mark.slow
def test_teacher_samples_beat_the_untrained_teacher(quickstart, tmp_path):
    scd, _, trained = quickstart
    untrained = evaluate(build_parts(scd.teacher_trial()), tmp_path)
    assert trained["status"] == "ok" and trained["steps_done"] == 400
    for name in ("swd_teacher", "mmd_teacher"):
        assert trained["metrics"][name] < 0.5 * untrained[name], name


@pytest.mark.slow
def test_scd_two_step_samples_come_close_to_the_teacher(quickstart, tmp_path):
    """A quickstart-sized sCD trial end to end: 200 steps of distillation, then evaluation."""
    scd, teacher_dir, teacher = quickstart
    at_init = evaluate(build_parts(scd, teacher_dir), tmp_path / "init")
    result = train_trial(scd, tmp_path / "scd", teacher_dir=teacher_dir)
    assert result["status"] == "ok" and result["steps_done"] == 200
    student, teacher_swd = result["metrics"]["swd_2step"], teacher["metrics"]["swd_teacher"]
    assert student <= 1.5 * teacher_swd
    assert student < 0.5 * at_init["swd_2step"]  # the teacher used as a 2-step consistency fn
    history = io.read_history(tmp_path / "scd" / "history.jsonl")
    assert [row["step"] for row in history] == list(range(10, 201, 10))
    assert all(math.isfinite(row["loss"]) and row["nonfinite_tangent"] == 0 for row in history)
    assert history[0]["r"] == pytest.approx(sum(s / 50 for s in range(1, 11)) / 10)  # window mean
    assert history[-1]["r"] == 1.0


# Students start from the teacher; the EMA target is wired through the loop.


def test_student_init_teacher_copies_the_teacher_weights(tmp_path):
    """Without a teacher directory the trial trains its own teacher under out_dir/teacher."""
    sct = spec(TINY, method="sct", student={"init": "teacher"}, train={"steps": 1})
    train_trial(sct, tmp_path)
    teacher_ckpt = io.load_checkpoint(tmp_path / "teacher" / "checkpoint.pt")
    assert io.read_json(tmp_path / "teacher" / "result.json")["steps_done"] == sct.teacher.steps
    from_teacher = build_parts(sct, tmp_path / "teacher").net.state_dict()
    for name, value in teacher_ckpt["ema"].items():
        assert torch.equal(from_teacher[name], value), name
    scratch = build_parts(spec(TINY, method="sct", student={"init": "scratch"})).net.state_dict()
    assert any(not torch.equal(scratch[n], v) for n, v in teacher_ckpt["ema"].items())


@pytest.mark.parametrize("target", ["ema", "stopgrad"])
def test_student_target_passes_the_ema_net_or_none_to_the_loss(monkeypatch, tmp_path, target):
    seen, built = [], []
    build, call = loop.build_parts, losses.SCMLoss.__call__

    def keeping_build(*args, **kw):
        built.append(build(*args, **kw))
        return built[-1]

    def recording_call(self, *args, target=None, **kw):
        seen.append(target)
        return call(self, *args, target=target, **kw)

    monkeypatch.setattr(loop, "build_parts", keeping_build)
    monkeypatch.setattr(losses.SCMLoss, "__call__", recording_call)
    s = spec(TINY, method="sct", student={"target": target}, train={"steps": 3})
    train_trial(s.override({"eval.probe": False}, "test"), tmp_path)  # the probe calls it too
    expected = built[0].ema if target == "ema" else None
    assert len(seen) == 3 and all(t is expected for t in seen)


# Determinism and resume.


def test_same_seed_gives_identical_history_weights_and_metrics(tmp_path):
    s = spec(TINY, net={"dropout": 0.1})  # dropout: the global RNG is part of the state
    a, b = train_trial(s, tmp_path / "a"), train_trial(s, tmp_path / "b")
    assert history_without_times(tmp_path / "a") == history_without_times(tmp_path / "b")
    assert len(history_without_times(tmp_path / "a")) == 6
    assert quality(a["metrics"]) == quality(b["metrics"])
    assert_same_state(*(io.load_checkpoint(tmp_path / d / "checkpoint.pt") for d in "ab"))
    other = train_trial(spec(TINY, net={"dropout": 0.1}, seed=1), tmp_path / "c")
    assert quality(other["metrics"]) != quality(a["metrics"])  # the seed matters


@pytest.mark.parametrize(
    "log_every,checkpoint_every,crash_at",
    [(5, 10, 27), (4, 10, 15)],
    ids=["checkpoint-on-a-log-step", "checkpoint-inside-a-log-window"],
)
def test_resume_after_crash_equals_an_uninterrupted_run(
    tmp_path, log_every, checkpoint_every, crash_at
):
    s = spec(
        TINY,
        net={"dropout": 0.1},
        train={"log_every": log_every, "checkpoint_every": checkpoint_every},
    )
    full = train_trial(s, tmp_path / "full")
    real_step = loop.train_step

    def crashing_step(parts, inp, step, world, amp):  # a process dies at this step
        if step == crash_at:
            raise RuntimeError(f"injected crash at step {step}")
        return real_step(parts, inp, step, world, amp)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(RuntimeError, match="injected"):
        patch.setattr(loop, "train_step", crashing_step)
        train_trial(s, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "result.json").exists()
    resumed = train_trial(s, tmp_path / "resumed")
    assert resumed["steps_done"] == full["steps_done"] == 30
    assert quality(resumed["metrics"]) == quality(full["metrics"])
    ckpt = {d: io.load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("full", "resumed")}
    assert_same_state(ckpt["full"], ckpt["resumed"])
    assert history_without_times(tmp_path / "resumed") == history_without_times(tmp_path / "full")


def test_result_records_provenance_and_averages_sampling_seeds(tmp_path):
    """result.json names the commit of the package's checkout, versions and hardware; with
    eval.sample_seeds=2 a sample metric is the mean over two sampling seeds (the first one is
    the single-seed value) and its evaluation noise shrinks by sqrt(2)."""
    from scm_bench import metrics
    from scm_bench.train.evaluate import SAMPLE_SEED, generate
    from scm_bench.train.provenance import package_commit

    one = train_trial(spec(TINY), tmp_path / "one")
    two = train_trial(spec(TINY, eval={"sample_seeds": 2}), tmp_path / "two")
    assert one["commit"] == package_commit() and torch.__version__.startswith(
        one["versions"]["torch"])  # fmt: skip
    assert "cpu" in one["hardware"]
    m1, m2 = one["metrics"], two["metrics"]
    parts = build_parts(spec(TINY, eval={"sample_seeds": 2}))
    parts.ema.load_state_dict(io.load_checkpoint(tmp_path / "two" / "checkpoint.pt")["ema"])
    parts.ema.eval()
    second = generate(parts, "2step", 64, seed=SAMPLE_SEED + 1)  # trial seed 0
    swd = metrics.evaluate_samples(["swd"], second, parts.data)["swd"]
    assert m2["swd_2step"] == pytest.approx((m1["swd_2step"] + swd) / 2)
    assert m2["swd_2step_evalsd"] == pytest.approx(m1["swd_2step_evalsd"] / math.sqrt(2))
    assert m1["swd_floor"] == m2["swd_floor"] < m1["swd_uniform"]


# Divergence is an outcome.


def test_huge_learning_rate_is_recorded_as_diverged(tmp_path):
    """After one Adam step of size ~1e30 the net's JVP overflows float32 and the loss is NaN."""
    result = train_trial(spec(TINY, train={"lr": 1e30}), tmp_path)
    assert result["status"] == "diverged"
    assert result["diverged_step"] == 2 and result["steps_done"] == 1
    assert result["diverged_what"] == "loss (non-finite tangent)"
    assert not any(k.endswith(("_1step", "_2step")) for k in result["metrics"])  # probes only
    same = lambda a: json.dumps(a, sort_keys=True) == json.dumps(result, sort_keys=True)  # NaNs
    assert same(io.read_json(tmp_path / "result.json"))
    assert same(train_trial(spec(TINY, train={"lr": 1e30}), tmp_path))  # an outcome: kept


def test_nan_tangent_is_recorded_with_its_step_and_cause(monkeypatch, tmp_path):
    calls, original = [], losses.tangent_of_net

    def poisoned(*args, **kw):
        f, d = original(*args, **kw)
        calls.append(1)
        return f, (d * math.nan if len(calls) == 7 else d)

    monkeypatch.setattr(losses, "tangent_of_net", poisoned)
    # No probe at step 0: it calls the tangent too, and this test counts the training's calls.
    result = train_trial(spec(TINY, eval={"probe_steps": []}), tmp_path)
    assert result["status"] == "diverged"
    assert result["diverged_step"] == 7 and result["steps_done"] == 6
    assert result["diverged_what"] == "loss (non-finite tangent)"
    assert io.read_json(tmp_path / "result.json")["diverged_step"] == 7


def test_nan_gradient_names_the_parameter(monkeypatch, tmp_path):
    original = loop.build_parts

    def build(*args, **kw):
        parts = original(*args, **kw)
        parts.net.out.bias.register_hook(lambda g: g * math.nan)
        return parts

    monkeypatch.setattr(loop, "build_parts", build)
    result = train_trial(spec(TINY, method="teacher"), tmp_path)
    assert result["status"] == "diverged" and result["diverged_step"] == 1
    assert result["diverged_what"] == "grad:out.bias"


def test_nan_gradient_of_the_adaptive_weight_is_caught_at_its_step(monkeypatch, tmp_path):
    """w_phi is optimized with the net, so a non-finite gradient there is a divergence too."""
    original = loop.build_parts

    def build(*args, **kw):
        parts = original(*args, **kw)
        parts.adaptive.linear.bias.register_hook(lambda g: g * math.nan)
        return parts

    monkeypatch.setattr(loop, "build_parts", build)
    result = train_trial(spec(TINY), tmp_path)
    assert result["status"] == "diverged" and result["diverged_step"] == 1
    assert result["diverged_what"].startswith("grad:") and "linear.bias" in result["diverged_what"]

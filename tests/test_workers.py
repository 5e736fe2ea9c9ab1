"""Multi-worker trials (resources.workers): a Ray Train run of 2 gloo workers inside a Tune trial
follows the same losses as one process on the same global batch and seed."""

from __future__ import annotations

import pytest
from conftest import ROOT

from scm_bench import rundir
from scm_bench.errors import RunError

pytest.importorskip("ray")

from scm_bench.runner.run import run  # noqa: E402
from scm_bench.runner.trainable import teacher_dir  # noqa: E402
from scm_bench.spec import load_trials  # noqa: E402
from scm_bench.train.loop import train_trial  # noqa: E402

# sCD (the JVP loss, a teacher loaded on every worker); teachers take the same path. A row is
# logged (a ray.train.report: a barrier of the workers, about 2 s each here) every third step.
SPEC = f"""name: two_workers
base: {ROOT / "ablations" / "base" / "toy2d.yaml"}
trial:
  method: scd
  net: {{width: 32, depth: 2}}
  train: {{steps: 6, batch_size: 64, log_every: 3, checkpoint_every: 3}}
  teacher: {{steps: 20, batch_size: 64}}
  eval: {{n_samples: 200, grid: 0}}
resources: {{cpu: 1, workers: 2}}
"""
COLUMNS = ("loss", "grad_norm", "g_norm", "jvp_norm", "weight")


def history(trial_dir) -> list[dict]:
    return rundir.read_history(trial_dir / "history.jsonl")


def assert_same_history(got: list[dict], want: list[dict]) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in want] == [3, 6]
    for a, b in zip(got, want, strict=True):
        for col in (c for c in COLUMNS if c in b):
            assert a[col] == pytest.approx(b[col], rel=1e-5, abs=1e-7), (a["step"], col)


def test_two_workers_follow_one_process_on_the_same_global_batch(ray_cluster, tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(SPEC)
    loaded = load_trials(path, [])
    (trial,) = loaded.trials
    cache = tmp_path / "teachers"
    teacher = teacher_dir(trial.spec, cache)
    train_trial(trial.spec.teacher_trial(), teacher)  # cached: only the student runs in Ray

    lines: list[str] = []
    df = run(loaded.spec, loaded.trials, tmp_path / "run", teacher_cache=cache, echo=lines.append)
    assert (df["status"] == "ok").all() and len(df) == 1, lines
    assert any(ln.startswith("[trials 1/1: 1 done") for ln in lines)  # Tune saw it finish

    # The same trial in one process: batch 64 on one worker instead of 32 on each of two.
    one = tmp_path / "one"
    train_trial(trial.spec, one, teacher_dir=teacher)
    two = tmp_path / "run" / "trials" / trial.trial_id
    assert_same_history(history(two), history(one))
    got, want = rundir.trial_outcome(two), rundir.trial_outcome(one)
    assert got["metrics"]["swd_2step"] == pytest.approx(want["metrics"]["swd_2step"], rel=1e-3)


def test_a_global_batch_that_does_not_split_between_the_workers_is_refused(ray_cluster, tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text(SPEC.replace("batch_size: 64, log", "batch_size: 63, log"))
    loaded = load_trials(path, [])
    with pytest.raises(RunError, match=r"train\.batch_size: 63 .* resources\.workers: 2"):
        run(loaded.spec, loaded.trials, tmp_path / "run", teacher_cache=tmp_path / "t",
            echo=lambda *_: None)  # fmt: skip

"""A run through Ray Tune leaves what researchers use: a model.pt per trial and teacher that
`scm-bench sample` redraws the grids from, TensorBoard curves by optimizer step, W&B and MLflow
runs (both from one run); teachers go to the user's cache, never beside --out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from scm_bench import load_model, rundir  # noqa: E402
from scm_bench.cli import main  # noqa: E402


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def history_losses(trial_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in rundir.read_history(trial_dir / "history.jsonl")]


def test_every_trial_and_teacher_exports_a_model_that_redraws_its_grids(
    quickstart_run, tmp_path, capsys
):
    run_dir, trials, df = quickstart_run
    for row in df.itertuples():
        assert load_model(run_dir / "trials" / row.trial_id).method == "scd"
        assert load_model(row.teacher_dir).method == "teacher"
    trial = next(t for t in trials if t.seed == 1 and t.axes["tangent.mode"] == "raw")
    for sampler, flags in (("2step", ["--steps", "2"]), ("teacher", ["--teacher"])):
        out = tmp_path / f"{sampler}.png"
        pick = ["--variant", "raw", "--seed", "1"]
        args = ["sample", str(run_dir), *pick, *flags, "--out", str(out)]
        assert main(args) == 0, capsys.readouterr().err
        tdir = df.set_index("trial_id").loc[trial.trial_id, "teacher_dir"]
        folder = Path(tdir) if sampler == "teacher" else run_dir / "trials" / trial.trial_id
        assert np.array_equal(pixels(out), pixels(folder / f"samples_{sampler}.png")), sampler


def test_tensorboard_events_hold_each_trials_loss_curve_by_optimizer_step(quickstart_run, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, trials, _ = quickstart_run
    for t in trials:
        (folder,) = (run_dir / "ray").glob(f"trials-*/{t.trial_id}-*")  # readable: the trial id
        events = EventAccumulator(str(folder))
        events.Reload()
        curve = [(e.step, e.value) for e in events.Scalars("ray/tune/loss")]
        want = history_losses(run_dir / "trials" / t.trial_id)
        assert [s for s, _ in curve] == [s for s, _ in want]
        assert np.allclose([v for _, v in curve], [v for _, v in want])
    assert main(["tb", str(run_dir)]) == 0
    assert capsys.readouterr().out.split()[-2:] == ["--logdir", str((run_dir / "ray").resolve())]
    assert main(["tb", str(run_dir / "trials")]) == 2  # not a run: one line, no traceback


TINY_SPEC = """name: tiny
trial:
  method: sct   # from a teacher: one teacher and one student
  data: {name: toy2d, variant: moons}
  net: {arch: mlp, width: 32, depth: 2, emb_dim: 32}
  tangent: {warmup_steps: 5}
  train: {steps: 10, batch_size: 32, log_every: 5, checkpoint_every: 5}
  teacher: {steps: 10, batch_size: 32}
  eval: {n_samples: 64, grid: 64}
  device: cpu
"""


@pytest.fixture(scope="module")
def tiny(ray_cluster, tmp_path_factory):
    """One `scm-bench run` of a one-teacher, one-student spec with the user's cache in tmp,
    logging to W&B (offline) and to an MLflow file store where installed: (tmp folder, run)."""
    tmp = tmp_path_factory.mktemp("tiny")
    (tmp / "tiny.yaml").write_text(TINY_SPEC)
    out = tmp / "somewhere" / "run"
    flags = []
    if importlib.util.find_spec("wandb"):
        flags += ["--wandb", "scm-bench-test"]
    if importlib.util.find_spec("mlflow"):
        flags += ["--mlflow", (tmp / "mlruns").as_uri()]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCM_BENCH_CACHE", str(tmp / "cache"))
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        assert main(["run", str(tmp / "tiny.yaml"), "--out", str(out), *flags]) == 0
    return tmp, out


def test_teachers_go_to_the_users_cache_never_beside_the_run(tiny):
    tmp, run_dir = tiny
    (teacher,) = (tmp / "cache" / "teachers").iterdir()
    assert teacher.name.startswith("teacher-") and rundir.is_finished(teacher)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["run"]
    assert pd.read_csv(run_dir / "results.csv")["teacher_dir"].tolist() == [str(teacher)]


def test_wandb_offline_gets_one_run_per_trial(tiny):
    pytest.importorskip("wandb")
    _, run_dir = tiny
    runs = sorted((run_dir / "ray").glob("*/*/wandb/offline-run-*/run-*.wandb"))
    assert [p.parents[3].name.split("-")[0] for p in runs] == ["teachers", "trials"]
    assert all(p.stat().st_size > 0 for p in runs)


def test_mlflow_file_store_gets_the_loss_curve_by_optimizer_step(tiny):
    pytest.importorskip("mlflow")
    tmp, run_dir = tiny
    store = tmp / "mlruns"
    losses = sorted(store.glob("*/*/metrics/loss"))
    assert len(losses) == 2  # the teacher's run and the student's
    (trial,) = pd.read_csv(run_dir / "results.csv")["trial_id"]
    names = {p.parents[1].name: (p.parents[1] / "tags" / "mlflow.runName") for p in losses}
    student = next(p for p in losses if names[p.parents[1].name].read_text() == trial)
    # MLflow's file store: one "<timestamp> <value> <step>" line per logged value.
    logged = [line.split() for line in student.read_text().splitlines()]
    want = history_losses(run_dir / "trials" / trial)
    assert [int(step) for _, _, step in logged] == [s for s, _ in want]
    assert np.allclose([float(v) for _, v, _ in logged], [v for _, v in want])
    assert (student.parents[1] / "params" / "trial_id").read_text() == trial

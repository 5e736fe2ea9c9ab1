"""`scm-bench run` through Ray Tune: results, resume after SIGKILL, crashes, live metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from conftest import FAST, QUICK, ROOT  # noqa: E402

from scm_bench.cli import main  # noqa: E402
from scm_bench.runner.run import run  # noqa: E402
from scm_bench.spec import load_trials  # noqa: E402


def quiet(*_):
    pass


def test_quickstart_runs_through_ray_one_row_per_trial(ray_cluster, quickstart_run):
    run_dir, trials, df = quickstart_run
    saved = pd.read_csv(run_dir / "results.csv")
    assert len(saved) == len(trials) == 4
    assert set(saved["trial_id"]) == {t.trial_id for t in trials}
    assert (saved["status"] == "ok").all()
    assert {"tangent.mode", "seed", "swd_1step", "swd_2step", "swd_teacher"} <= set(saved.columns)
    assert (saved["swd_2step"] > 0).all()
    # Two seeds -> two distinct teachers, each trained once and shared by its students.
    assert len(list((run_dir.parent / "teachers").iterdir())) == 2
    assert saved["teacher_id"].nunique() == 2
    assert df["trial_id"].tolist() == sorted(df["trial_id"])

    # Live metrics, tagged with the trial id, were readable from Ray's metrics export (read
    # right after the run by the fixture: they leave it soon after the trials' workers exit).
    text = (run_dir.parent / "live_metrics.prom").read_text()
    lines = [
        ln
        for ln in text.splitlines()
        if ln.startswith("ray_scm_bench_loss") or ln.startswith("scm_bench_loss")
    ]
    assert lines, "no scm_bench_loss series exported"
    assert any(t.trial_id in ln for t in trials for ln in lines)


def test_quickstart_records_provenance_invocations_and_opens_with_verdicts(quickstart_run):
    """Each trial names its commit; run.json lists the invocation; results_long.csv holds one
    row per trial and metric; the report opens with the spec's claims as a verdict table and
    shows the floor and uniform rows."""
    from scm_bench.train.provenance import package_commit

    run_dir, trials, df = quickstart_run
    result = json.loads((run_dir / "trials" / trials[0].trial_id / "result.json").read_text())
    assert result["commit"] == package_commit() and "torch" in result["versions"]
    (entry,) = json.loads((run_dir / "run.json").read_text())["invocations"]
    assert entry["trained"] == 6 and entry["wall_time"] > 0  # 2 teachers + 4 students
    long = pd.read_csv(run_dir / "results_long.csv")
    assert set(long["trial_id"]) == set(df["trial_id"])
    assert {("mode_precision", "2step"), ("swd", "floor"), ("swd_evalsd", "1step")} <= set(
        zip(long["metric"], long["sampler"], strict=True))  # fmt: skip
    text = (run_dir / "report.md").read_text()
    assert text.index("## Verdicts") < text.index("## Run")
    verdicts = text.split("## Verdicts")[1].split("## Run")[0]
    assert "mode_precision_2step" in verdicts and "pairs" in verdicts
    assert "*floor: real vs real data*" in text and "*uniform over the data's box*" in text


def test_gpu_request_on_cpu_cluster_is_refused_before_training(ray_cluster, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            str(ROOT / "ablations" / "quickstart.yaml"),
            "--out",
            str(out),
            "--set",
            "resources.gpu=1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "resources.gpu" in err and "Traceback" not in err
    assert not list((out / "trials").glob("*/history.jsonl"))


def test_sigkill_of_the_driver_then_rerun_completes_without_redoing(
    ray_cluster, warm_teachers, tmp_path
):
    args = [
        sys.executable,
        "-m",
        "scm_bench.cli",
        "run",
        str(ROOT / "ablations/quickstart.yaml"),
        "--out",
        str(tmp_path / "run"),
        "--teacher-cache",
        str(warm_teachers),  # trained: the students are what is killed and resumed
        "--address",
        ray_cluster["address"],
        "--max-concurrent",
        "1",
    ]
    for s in QUICK[1:] + ["train.steps=60", "seeds=[0]"]:  # two students, one after the other
        args += ["--set", s]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    trials_dir = tmp_path / "run" / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(trials_dir.glob("*/result.json"))) < 1:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {
        p.parent.name: (p.stat().st_mtime_ns, p.read_text())
        for p in trials_dir.glob("*/result.json")
    }
    assert len(finished) == 1, "kill must land mid-run"
    time.sleep(2)  # let Ray reap the dead driver's workers

    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert len(df) == 2 and (df["status"] == "ok").all()
    for tid, (mtime, text) in finished.items():
        p = trials_dir / tid / "result.json"
        assert p.stat().st_mtime_ns == mtime and p.read_text() == text, f"{tid} was redone"
    for tid in df["trial_id"]:
        steps = [
            int(line.split('"step": ')[1].split(",")[0])
            for line in (trials_dir / tid / "history.jsonl").read_text().splitlines()
        ]
        assert steps == sorted(set(steps)), "history has duplicated or lost rows"
        assert steps[-1] == 60


@pytest.fixture(scope="module")
def search_run(ray_cluster, tmp_path_factory):
    """tune_tangent at test size with two Optuna proposals, run once for this module:
    (run folder, teacher cache, results). Tests that change it work on a copy."""
    base = tmp_path_factory.mktemp("search")
    loaded = load_trials(ROOT / "ablations" / "tune_tangent.yaml", FAST + ["search.num_samples=2"])
    df = run(loaded.spec, loaded.trials, base / "run", teacher_cache=base / "t", echo=quiet)
    return base / "run", base / "t", df


def test_search_spec_tunes_with_optuna_and_reports_the_best(search_run, tmp_path):
    out, _, df = search_run
    assert len(df) == 2 and (df["status"] == "ok").all()
    assert df["tangent.c"].nunique() == 2  # Optuna proposed two different settings
    best = json.loads((out / "best.json").read_text())
    assert best["metric"] == "swd_2step" and best["mode"] == "min"
    assert best["value"] == pytest.approx(df["swd_2step"].min())
    assert set(best["params"]) == {"tangent.c", "tangent.warmup_steps", "train.lr"}
    # Readable Tune folders (and trial names): the proposal's values, then Tune's id.
    (search,) = (out / "ray").glob("search-*")  # one invocation, one experiment
    folders = [p.name for p in search.iterdir() if p.is_dir()]
    assert len(folders) == 2
    assert all(re.match(r"tune_tangent-search-c=[\d.e-]+_warmup_steps=\d+_lr=", f) for f in folders)
    # A proposal's model, picked by its variant label.
    variant = df["variant"][0]
    png = tmp_path / "best.png"
    assert main(["sample", str(out), "--variant", variant, "--out", str(png)]) == 0
    assert png.is_file()


def test_search_over_a_teacher_setting_trains_one_teacher_per_proposal(ray_cluster, tmp_path):
    """Optuna proposals of net.fourier_scale (a teacher-side setting) each get the teacher their
    settings imply, so two different proposals give two teachers and different results."""
    spec = tmp_path / "search_fourier.yaml"
    spec.write_text(
        f"name: search_fourier\nbase: {ROOT / 'ablations' / 'base' / 'toy2d.yaml'}\n"
        "trial: {method: sct, net: {time_embedding: fourier}}\n"
        "search:\n  metric: swd_2step\n  num_samples: 2\n"
        "  params: {net.fourier_scale: {type: uniform, low: 0.5, high: 8.0}}\n"
    )
    loaded = load_trials(spec, FAST)
    cache = tmp_path / "teachers"
    df = run(loaded.spec, loaded.trials, tmp_path / "run", teacher_cache=cache, echo=quiet)
    assert len(df) == 2 and (df["status"] == "ok").all()
    scales = sorted(df["net.fourier_scale"])
    assert scales[0] != scales[1]
    teachers = sorted(p.name for p in cache.iterdir() if (p / "result.json").exists())
    assert len(teachers) == 2  # one per proposal (the base trial's teacher is never trained)
    assert sorted(df["teacher_id"]) == teachers
    assert df["swd_2step"].nunique() == 2 and df["loss_std_late"].nunique() == 2


def test_a_rerun_continues_the_same_optuna_study(search_run, tmp_path):
    """The study lives in the run folder: a second invocation runs only the proposals the
    first did not finish, and finished proposals are kept as they are."""
    out, cache = tmp_path / "run", tmp_path / "t"
    shutil.copytree(search_run[0], out)  # the module's first invocation, continued on a copy
    shutil.copytree(search_run[1], cache)
    first = search_run[2]
    kept = {p.parent.name: p.read_text() for p in (out / "trials").glob("*/result.json")}
    assert len(first) == 2 and len(kept) == 2
    assert all(name.startswith("tune_tangent-c=") for name in kept)  # named by parameters

    loaded = load_trials(ROOT / "ablations" / "tune_tangent.yaml", FAST + ["search.num_samples=3"])
    lines = []
    second = run(loaded.spec, loaded.trials, out, teacher_cache=cache, echo=lines.append)
    assert any("1 Optuna proposal(s)" in ln and "2 done" in ln for ln in lines)
    assert len(second) == 3 and (second["status"] == "ok").all()
    for name, text in kept.items():
        assert (out / "trials" / name / "result.json").read_text() == text
    best = json.loads((out / "best.json").read_text())
    assert best["finished"] == 3 and set(best["importances"]) == set(best["params"])
    assert "base" not in set(second["variant"])  # no phantom row for the search's base trial

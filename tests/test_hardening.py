"""A hostile or unlucky user: hostile specs, two drivers on one folder, damaged run folders,
exit codes. Each test is one failure the issue listed, stated as the behaviour that now holds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from conftest import FAST, QUICK, ROOT
from faults import crashing_spec
from waits import read_until, wait_until

from scm_bench import safe_yaml
from scm_bench.cli import main

QUICKSTART = str(ROOT / "ablations" / "quickstart.yaml")
# Columns that depend only on the training maths (not on timing or the machine's load).
DETERMINISTIC = r"^(swd|mmd|frechet2d|loss_std|grad_norm|g_norm|nonfinite|diverged)"


def cli(args: list[str], capsys) -> tuple[int, list[str]]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, [ln for ln in (out.out + out.err).splitlines() if ln.strip()]


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# Hostile specs and flags: refused before anything is written, one line each, exit 2.


@pytest.mark.parametrize("name", ["..", ".", "-rf", "a/b"])
def test_a_run_name_that_is_not_a_safe_folder_name_is_refused(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "keep.txt").write_text("user file")
    spec = write(tmp_path, f"name: '{name}'\nbase: {ROOT / 'ablations/base/toy2d.yaml'}\n")
    rc, lines = cli(["run", spec], capsys)
    assert rc == 2 and len(lines) == 1 and "name" in lines[0]
    assert (tmp_path / "report" / "keep.txt").read_text() == "user file"


def test_an_alias_bomb_is_refused_fast_with_a_short_message(tmp_path, capsys):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    levels += [
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdef", "bcdefg", strict=True)
    ]
    spec = write(tmp_path, "name: bomb\ndescription: x\n" + "\n".join(levels) + "\n")
    construct = mock.Mock(side_effect=AssertionError("an alias bomb was constructed"))
    with mock.patch.object(safe_yaml._SafeSpecLoader, "construct_object", construct):
        rc, lines = cli(["validate", spec], capsys)
    assert rc == 2 and len(lines) == 1 and "alias" in lines[0] and len(lines[0]) < 300
    construct.assert_not_called()  # refused from the node graph, before building anything


def test_a_duplicated_key_is_an_error_not_the_last_value(tmp_path, capsys):
    spec = write(tmp_path, "name: dup\ntrial: {method: sct}\ntrial: {method: scd}\n")
    rc, lines = cli(["validate", spec], capsys)
    assert rc == 2 and lines == [f"error: {spec}: line 3: duplicate key 'trial' (first at "
                                 "line 2); a key may appear once per mapping"]  # fmt: skip


def test_huge_axes_and_seed_lists_are_refused_before_any_folder_is_made(tmp_path, capsys):
    values = ", ".join(f"{0.01 + i * 1e-5:.5f}" for i in range(10_000))
    spec = write(tmp_path, f"name: big\naxes: {{tangent.c: [{values}]}}\n")
    rc, lines = cli(["run", spec, "--out", str(tmp_path / "run")], capsys)
    assert rc == 2 and any("--allow-large" in ln for ln in lines) and len(lines) <= 3
    assert not (tmp_path / "run").exists()
    rc, lines = cli(["validate", spec, "--set", "tangent.mode=nrmalize"], capsys)
    assert rc == 2 and len(lines) <= 3  # not one line per variant
    seeds = ", ".join(str(i) for i in range(20_000))
    rc, lines = cli(["validate", write(tmp_path, f"name: s\nseeds: [{seeds}]\n", "s.yaml")], capsys)
    assert rc == 2 and any("seeds" in ln and "--allow-large" in ln for ln in lines)


@pytest.mark.parametrize(
    "text, sets, needle",
    [
        ("name: a\naxes: {eval.samplers: [[1step, 2stp]]}\n", [], "eval.samplers"),
        ("name: a\nseeds: []\n", [], "seeds"),
        ("name: a\naxes: {tangent.mode: [normalize, clip]}\n", ["tangent.mode=nrmalize"], "axis"),
        ("name: a\n", ["base=other.yaml"], "base"),
        ("name: a\n", ["train.steps=True"], "train.steps"),
        ("name: a\n", ["train.lr=.inf"], "train.lr"),
        ("name: a\nseeds: [1, 1]\n", [], "seeds"),
    ],
)
def test_validate_rejects_what_a_trial_would_reject_later(tmp_path, capsys, text, sets, needle):
    args = ["validate", write(tmp_path, text)] + [x for s in sets for x in ("--set", s)]
    rc, lines = cli(args, capsys)
    assert rc == 2 and lines and all(ln.startswith("error:") for ln in lines)
    assert any(needle in ln for ln in lines)


def test_every_problem_of_a_spec_is_reported_in_one_pass(tmp_path, capsys):
    spec = write(
        tmp_path,
        "name: six\ntrial:\n  tangent: {mode: nrmalize}\n  trian: 1\n"
        "  train: {steps: true, lr: .inf}\naxes: {jvp.orderin: [naive]}\n",
    )
    rc, lines = cli(["validate", spec], capsys)
    assert rc == 2
    for needle in ("tangent.mode", "trial.trian", "train.steps", "train.lr", "jvp.orderin"):
        assert any(needle in ln for ln in lines), needle


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_concurrent_must_be_positive(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", QUICKSTART, "--max-concurrent", value])
    assert exc.value.code == 2


def test_an_out_folder_under_a_file_is_one_line_not_a_traceback(capsys):
    rc, lines = cli(["run", QUICKSTART, "--out", "/etc/passwd/x"], capsys)
    assert rc == 2 and len(lines) == 1 and "--out" in lines[0]


# Damaged run folders.


def test_report_on_a_damaged_run_folder_says_what_is_missing(quickstart_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(quickstart_run[0], run_dir)
    text = (run_dir / "results.csv").read_text()
    (run_dir / "results.csv").write_text(text[: len(text) // 2])  # cut mid-line
    (run_dir / "trials.json").write_text("[{")
    (run_dir / "spec.yaml").write_text("name: [unclosed\n")
    rc, _ = cli(["report", str(run_dir)], capsys)
    assert rc == 0
    report = (run_dir / "report.md").read_text()
    assert "results.csv" in report and "trials.json" in report and "spec.yaml" in report
    assert "nothing missing" not in report.lower()

    shutil.rmtree(run_dir / "report")
    (run_dir / "report").write_text("a user's file")
    rc, lines = cli(["report", str(run_dir)], capsys)
    assert rc == 2 and len(lines) == 1 and (run_dir / "report").read_text() == "a user's file"


def test_damaged_results_and_checkpoints_are_redone_not_fatal(
    ray_cluster, quickstart_run, tmp_path
):
    """A result.json cut in half, an unfinished trial whose checkpoint is truncated, and a
    damaged teacher-cache entry: the re-run retrains those (damaged files kept aside), keeps
    the rest, and ends with every trial ok."""
    from scm_bench.runner.run import run
    from scm_bench.spec import load_trials

    src, trials, _ = quickstart_run
    run_dir, cache = tmp_path / "run", tmp_path / "teachers"
    shutil.copytree(src, run_dir)
    shutil.copytree(src.parent / "teachers", cache)
    cut, unfinished, kept = (run_dir / "trials" / t.trial_id for t in trials[:3])
    text = (cut / "result.json").read_text()
    (cut / "result.json").write_text(text[: len(text) // 2])
    (unfinished / "result.json").unlink()
    ckpt = (unfinished / "checkpoint.pt").read_bytes()
    (unfinished / "checkpoint.pt").write_bytes(ckpt[: len(ckpt) // 3])
    teacher = sorted(cache.iterdir())[0] / "result.json"
    teacher.write_text(teacher.read_text()[:10])
    kept_before = (kept / "result.json").read_text()

    loaded = load_trials(QUICKSTART, QUICK)
    df = run(loaded.spec, loaded.trials, run_dir, teacher_cache=cache, echo=lambda *_: None)
    assert (df["status"] == "ok").all() and len(df) == 4
    assert list(cut.glob("result.json.damaged-*")) and list(unfinished.glob("checkpoint*damaged*"))
    assert list(teacher.parent.glob("result.json.damaged-*"))
    assert (kept / "result.json").read_text() == kept_before  # not redone


# Two drivers on one folder, exit codes, Ctrl-C.


def _driver(run_dir: Path, cache: Path, address: str, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "scm_bench.cli", "run", QUICKSTART, "--out", str(run_dir),
            "--teacher-cache", str(cache), "--address", address, *extra]  # fmt: skip
    return args + [x for s in QUICK for x in ("--set", s)]


def test_a_second_driver_on_the_same_folder_is_refused_and_results_match_a_clean_run(
    ray_cluster, quickstart_run, warm_teachers, tmp_path
):
    run_dir, cache = tmp_path / "run", warm_teachers  # the students alone hold the lock
    first = subprocess.Popen(
        _driver(run_dir, cache, ray_cluster["address"]), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until((run_dir / ".lock").exists, timeout=120, what="the first driver's lock")
    second = subprocess.run(
        _driver(run_dir, cache, ray_cluster["address"]), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2
    refusal = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
    assert len(refusal) == 1 and str(first.pid) in refusal[0]
    assert not (run_dir / ".lock").exists()

    got = pd.read_csv(run_dir / "results.csv").set_index("trial_id")
    clean = quickstart_run[2].set_index("trial_id")
    numeric = clean.select_dtypes("number").columns
    cols = [c for c in numeric if pd.Series([c]).str.match(DETERMINISTIC).all()]
    assert cols and got.index.equals(clean.index)
    pd.testing.assert_frame_equal(got[cols], clean[cols], check_dtype=False)


def test_exit_codes_interrupt_gives_130_and_says_how_to_resume(
    ray_cluster, warm_teachers, tmp_path
):
    run_dir, cache = tmp_path / "run", warm_teachers  # interrupted among the students
    args = _driver(run_dir, cache, ray_cluster["address"], "--max-concurrent", "1")
    assert args[1:3] == ["-m", "scm_bench.cli"]
    # Ctrl-C as a user's terminal sends it: Python's handler installed even where pytest was
    # started in the background of a script (SIGINT ignored there, and so in its children).
    args[1:3] = [
        "-c",
        "import signal, sys; signal.signal(signal.SIGINT, "
        "signal.default_int_handler); from scm_bench.cli import main; sys.exit(main())",
    ]
    proc = subprocess.Popen(
        args + ["--set", "train.steps=200"],  # after QUICK's steps: the last --set wins
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Ctrl-C once the first of the 4 students has finished (one at a time): mid-run, as the
    # driver says so itself (the run folder's copies may lag behind the trials).
    seen = read_until(proc, lambda line: line.startswith("[trials 1/"), timeout=600)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)  # a deadline for a loaded machine, not a goal
    assert proc.returncode == 130, "".join(seen)[-2000:] + out[-2000:] + err[-2000:]
    assert "re-run the same command" in err and "Tuner.restore" not in err
    assert not (run_dir / ".lock").exists()


def test_a_crashing_trial_is_retried_then_failed_the_others_finish_and_the_run_exits_1(
    ray_cluster, warm_teachers, tmp_path
):
    """A trial that raises in its worker (a plugin technique that crashes, tests/faults.py) is
    retried per failure.max_retries, then recorded as failed with its reason in one line; the
    other trials finish and the driver exits 1 without a traceback. The students' teachers are
    the quickstart's (the crashing spec is the quickstart at FAST's settings): already trained."""
    spec = crashing_spec(tmp_path / "spec", ROOT)
    args = [sys.executable, "-m", "scm_bench.cli", "run", str(spec), "--out",
            str(tmp_path / "run"), "--teacher-cache", str(warm_teachers), "--address",
            ray_cluster["address"], "--set", "failure.max_retries=1"]  # fmt: skip
    args += [x for s in FAST for x in ("--set", s)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    failed = [ln.split(":")[0].strip() for ln in done.stdout.splitlines()
              if "failed: RuntimeError: injected crash" in ln]  # fmt: skip
    assert len(set(failed)) == 2 and all("mode=crash-s" in f for f in failed), done.stdout
    assert "Traceback" not in done.stdout and "Traceback" not in done.stderr
    df = pd.read_csv(tmp_path / "run" / "results.csv").set_index("tangent.mode")
    assert (df.loc["crash", "status"] == "failed").all()
    assert (df.loc["normalize", "status"] == "ok").all()
    assert df.loc["crash", "error"].str.contains("injected crash").all()
    attempts = [p for p in (tmp_path / "run" / "ray").rglob("error.txt") if "crash" in str(p)]
    assert attempts, "no error.txt of a crashed attempt"

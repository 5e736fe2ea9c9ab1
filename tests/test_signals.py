"""SIGTERM and SIGHUP stop like Ctrl-C (one line, lock removed, 128 + signal, Ray's processes
gone); the Ray processes of a driver killed with SIGKILL are ended by the next driver."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import FAST, ROOT

from scm_bench import cli
from scm_bench.cli import arguments  # where the parser finds each command
from scm_bench.lock import process_start
from scm_bench.runner import orphans

QUICKSTART = str(ROOT / "ablations" / "quickstart.yaml")


def scm_bench(*args: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)  # a plain local run: its own Ray
    return subprocess.Popen([sys.executable, "-m", "scm_bench.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_line(proc: subprocess.Popen, prefix: str) -> None:
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    raise AssertionError(f"no line starting {prefix!r}; stderr: {proc.stderr.read()[-2000:]}")


def running(procs: dict[int, float | None]) -> list[int]:
    return [p for p, t in procs.items() if t is not None and process_start(p) == t]


@pytest.mark.slow
def test_sighup_stops_train_like_ctrl_c(tmp_path):
    out = tmp_path / "trial"
    proc = scm_bench("train", QUICKSTART, "--out", str(out), *sum((["--set", s] for s in FAST), []),
                     "--set", "train.steps=100000", "--set", "train.log_every=1")  # fmt: skip
    wait_for_line(proc, "step ")
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 129 and err.strip().splitlines() == [
        "stopped by SIGHUP: finished trials are kept; re-run the same command to resume"
    ]
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_sigkill_orphans_are_ended_and_sigterm_stops_cleanly(tmp_path):
    run_dir = tmp_path / "run"
    sets = sum((["--set", s] for s in [*FAST, "seeds=[0]", "train.steps=300"]), [])
    args = ["run", QUICKSTART, "--out", str(run_dir), "--teacher-cache", str(tmp_path / "t"),
            "--max-concurrent", "1", *sets]  # fmt: skip
    first = scm_bench(*args)
    wait_for_line(first, "teachers:")
    time.sleep(2)
    left = {p: process_start(p) for p in orphans.descendants(first.pid)}
    first.kill()  # SIGKILL: no handler runs
    first.wait()
    time.sleep(2)
    assert running(left), "Ray's agents outlive a killed driver (what the next driver ends)"

    second = scm_bench(*args)
    wait_for_line(second, "ended ")
    deadline = time.monotonic() + 5  # ended: signalled and waited for (zombies until reaped)
    while running(left) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(left)
    wait_for_line(second, "teachers:")  # the teacher trains (Tune runs): stop now
    time.sleep(2)
    ours = {p: process_start(p) for p in orphans.descendants(second.pid)}
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "stopped by SIGTERM: finished trials are kept; re-run the same command to resume"
    )
    assert "Traceback" not in err and "SIGABRT" not in err
    assert not (run_dir / ".lock").exists() and not (run_dir / orphans.RECORD).exists()
    entries = json.loads((run_dir / "run.json").read_text())["invocations"]
    assert [e["status"] for e in entries] == ["killed", "interrupted"]
    deadline = time.monotonic() + 30
    while running(ours) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not running(ours)


def test_orphans_clean_ends_only_recorded_processes_that_are_still_the_same(tmp_path):
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        real, reused = sleepers
        record = {str(real.pid): process_start(real.pid), str(reused.pid): 1.0}  # 1.0: reused
        (tmp_path / orphans.RECORD).write_text(json.dumps({"driver": 1, "processes": record}))
        lines = []
        assert orphans.clean(tmp_path, lines.append, grace_s=5) == 1
        assert real.wait(timeout=10) == -signal.SIGTERM and reused.poll() is None
        assert lines == ["ended 1 Ray process(es) left running by an earlier, killed run"]
        assert not (tmp_path / orphans.RECORD).exists()
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def test_a_full_disk_is_one_line_and_exit_1(monkeypatch, capsys):
    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/results.csv")

    monkeypatch.setattr(arguments, "cmd_ls", full)
    assert cli.main(["ls"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: no space left on the device writing /runs/x/results.csv; finished trials are "
        "kept: free space and re-run the same command to resume"
    ]


def test_a_full_disk_reported_by_pyarrow_without_errno_is_one_line(monkeypatch, capsys):
    def full(args):
        raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(arguments, "cmd_ls", full)
    assert cli.main(["ls"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: no space left on the device; finished trials are kept")


def test_other_os_errors_keep_their_traceback(monkeypatch):
    def broken(args):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(arguments, "cmd_ls", broken)
    with pytest.raises(OSError, match="I/O error"):
        cli.main(["ls"])


def test_long_and_many_problems_are_capped(monkeypatch, capsys):
    from scm_bench.errors import SpecError

    def many(args):
        raise SpecError([f"spec.yaml: key{i}: unknown {'x' * 1000}" for i in range(5000)])

    monkeypatch.setattr(arguments, "cmd_ls", many)
    assert cli.main(["ls"]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 21 and lines[-1] == "error: ... and 4,980 more problems"
    assert max(map(len, lines)) <= 310 and len(err) < 7000

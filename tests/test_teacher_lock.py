"""A shared teacher cache: one driver trains a teacher, the others wait for it (bounded), and a
lock nobody here can end is a one-line error, not a wait."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scm_bench import rundir
from scm_bench.errors import RunError
from scm_bench.runner import teachers
from scm_bench.runner.teachers import claim_teachers, wait_for_teachers

# Another driver: locks the entry, says so, trains for `seconds`, then finishes it or not.
HOLDER = """
import sys, time
from pathlib import Path
from scm_bench import rundir
from scm_bench.lock import RunLock
tdir, seconds, finish = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
with RunLock(tdir):
    print("held", flush=True)
    time.sleep(seconds)
    if finish:
        rundir.write_json(tdir / "result.json", {"status": "ok", "metrics": {}})
"""


@contextlib.contextmanager
def other_driver(tdir: Path, seconds: float, finish: bool):
    args = [sys.executable, "-c", HOLDER, str(tdir), str(seconds), "1" if finish else "0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch):
    monkeypatch.setattr(teachers, "POLL_S", 0.05)


def test_a_teacher_another_driver_trains_is_waited_for_not_trained_again(tmp_path):
    tdir, lines = tmp_path / "teacher-abc", []
    with other_driver(tdir, 1.0, finish=True), contextlib.ExitStack() as held:
        ours, others = claim_teachers([tdir], held, lines.append)
        assert (ours, others) == ([], [tdir])
        assert lines == ["teacher-abc: being trained by another run; waiting for it"]
        assert wait_for_teachers(others) == []  # finished by the other driver
    assert rundir.is_finished(tdir)


def test_a_teacher_whose_trainer_stopped_is_trained_here(tmp_path):
    tdir = tmp_path / "teacher-abc"
    with other_driver(tdir, 0.5, finish=False), contextlib.ExitStack() as held:
        _, others = claim_teachers([tdir], held, lambda line: None)
        assert wait_for_teachers(others) == [tdir]
        ours, _ = claim_teachers([tdir], held, lambda line: None)
        assert ours == [tdir] and (tdir / ".lock").exists()  # held until the stack closes
    assert not (tdir / ".lock").exists()


def test_waiting_is_bounded_with_a_one_line_reason(tmp_path):
    tdir = tmp_path / "teacher-abc"
    with other_driver(tdir, 30, finish=False), pytest.raises(RunError) as info:
        wait_for_teachers([tdir], wait_s=0.3)
    assert "still locked after waiting 0 s" in info.value.lines[0] and "\n" not in str(info.value)


def test_a_teacher_locked_on_another_host_is_an_error_not_a_wait(tmp_path):
    tdir = tmp_path / "teacher-abc"
    tdir.mkdir()
    (tdir / ".lock").write_text(json.dumps({"pid": 1, "host": "node-7.cluster",
                                            "started": "2026-01-01T00:00:00+00:00"}))  # fmt: skip
    with contextlib.ExitStack() as held, pytest.raises(RunError, match="another host"):
        claim_teachers([tdir], held, lambda line: None)
    with pytest.raises(RunError, match="another host"):
        wait_for_teachers([tdir])


def test_a_finished_teacher_is_neither_trained_nor_waited_for(tmp_path):
    tdir = tmp_path / "teacher-abc"
    tdir.mkdir()
    rundir.write_json(tdir / "result.json", {"status": "ok", "metrics": {}})
    with contextlib.ExitStack() as held:
        assert claim_teachers([tdir], held, lambda line: None) == ([], [])

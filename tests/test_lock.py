"""lock: one driver per run folder; stale locks of dead drivers are taken over, others refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from waits import wait_until

from scm_bench import lock as lock_module
from scm_bench.lock import LOCK_NAME, LockedError, RunLock

ROOT = Path(__file__).resolve().parent.parent
HOST = socket.gethostname()

# A driver: waits for `go`, tries the lock, prints the outcome, holds it until `release`.
DRIVER = """
import os, sys, time
from pathlib import Path
from scm_bench.lock import LockedError, RunLock
run_dir, go, release = map(Path, sys.argv[1:4])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.001)
try:
    with RunLock(run_dir) as lock:
        print("won", os.getpid(), lock.note, flush=True)
        while not release.exists():
            time.sleep(0.01)
except LockedError as err:
    print("locked", err, flush=True)
"""


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(run_dir: Path, **fields) -> Path:
    record = {"pid": 1, "host": HOST, "started": "2026-01-01T00:00:00+00:00", "argv": ["x"]}
    record.update(fields)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_NAME).write_text(json.dumps(record))
    return run_dir / LOCK_NAME


def contend(tmp_path: Path, n: int = 4) -> tuple[list[str], list[str]]:
    """n driver processes released at once on one run folder: (winner lines, loser lines)."""
    run_dir, go, release = tmp_path / "run", tmp_path / "go", tmp_path / "release"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(run_dir), str(go), str(release)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(n)
    ]
    wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == n, 60, "the drivers", poll=0.01)
    go.touch()
    # The losers exit; the winner holds the lock until `release`.
    losers_gone = lambda: sum(p.poll() is not None for p in procs) == n - 1
    wait_until(losers_gone, 60, "the losing drivers to exit", poll=0.01)
    assert (run_dir / LOCK_NAME).exists()
    release.touch()
    lines = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert not (run_dir / LOCK_NAME).exists()  # the winner released it
    return [ln for ln in lines if ln.startswith("won")], [ln for ln in lines if ln != ""]


def test_of_drivers_started_together_exactly_one_gets_the_folder(tmp_path):
    winners, lines = contend(tmp_path)
    assert len(winners) == 1 and len(lines) == 4, lines
    pid = winners[0].split()[1]
    for line in lines:
        if line is not winners[0]:
            assert line.startswith(f"locked run folder {tmp_path / 'run'} is in use by pid {pid}")
            assert line.endswith(f"wait for it or, if it is gone, remove {tmp_path / 'run'}/.lock")


def test_of_drivers_finding_the_same_stale_lock_exactly_one_takes_it_over(tmp_path):
    gone = dead_pid()
    plant(tmp_path / "run", pid=gone)
    winners, lines = contend(tmp_path)
    assert len(winners) == 1, lines
    pid = winners[0].split()[1]
    # The note goes to whoever removed the stale lock, usually but not always the winner.
    assert sum(f"is in use by pid {pid} on {HOST}" in line for line in lines) == 3, lines


def test_threads_of_one_process_exclude_each_other_too(tmp_path):
    barrier, results, refused = threading.Barrier(8), [], threading.Semaphore(0)

    def attempt():
        barrier.wait()
        try:
            with RunLock(tmp_path / "run"):
                results.append("won")
                # Hold the lock until the other seven have tried (not for a guessed time).
                assert all(refused.acquire(timeout=60) for _ in range(7)), "a thread never tried"
        except LockedError as err:
            results.append(str(err))
            refused.release()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1
    assert sum("already locked by this process" in r for r in results) == 7


def test_a_stale_lock_of_a_dead_pid_is_taken_over_and_the_note_says_so(tmp_path):
    gone = dead_pid()
    lock_file = plant(tmp_path, pid=gone)
    with RunLock(tmp_path, argv=["scm-bench", "run", "spec.yaml"]) as lock:
        held = json.loads(lock_file.read_text())
        assert (held["pid"], held["host"], held["argv"]) == (
            os.getpid(), HOST, ["scm-bench", "run", "spec.yaml"]
        )  # fmt: skip
        assert lock.note == (
            f"run folder {tmp_path}: took over the lock of pid {gone} on {HOST} since "
            "2026-01-01T00:00:00+00:00, which is no longer running"
        )
    assert not lock_file.exists()


def test_a_lock_left_by_an_earlier_process_with_our_pid_is_stale(tmp_path):
    """Containers restart with the same hostname and pid: the token tells them apart."""
    plant(tmp_path, pid=os.getpid(), token="from-a-previous-boot")
    with RunLock(tmp_path) as lock:
        assert "took over the lock of pid" in lock.note


def test_a_live_holder_on_this_host_is_refused_and_its_lock_kept(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    since = datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        lock_file = plant(tmp_path, pid=holder.pid, started=since)
        before = lock_file.read_bytes()
        with pytest.raises(LockedError) as info:
            RunLock(tmp_path).acquire()
        assert str(info.value) == (
            f"run folder {tmp_path} is in use by pid {holder.pid} on {HOST} since "
            f"{since}; wait for it or, if it is gone, remove {lock_file}"
        )
        assert info.value.waitable  # a live holder here: worth waiting for
        assert lock_file.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_of_another_host_is_refused_even_if_the_pid_is_free_here(tmp_path):
    lock_file = plant(tmp_path, pid=dead_pid(), host="node-7.cluster")
    before = lock_file.read_bytes()
    with pytest.raises(LockedError, match="another host: cannot check whether it still runs"):
        RunLock(tmp_path).acquire()
    assert lock_file.read_bytes() == before


def test_the_lock_is_released_after_an_exception_or_ctrl_c(tmp_path):
    for exc in (RuntimeError("trial crashed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with RunLock(tmp_path):
                assert (tmp_path / LOCK_NAME).exists()
                raise exc
        assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path) as lock:  # free again
        assert lock.note is None


def test_a_lock_that_is_no_longer_ours_is_not_removed_on_exit(tmp_path):
    with RunLock(tmp_path):
        lock_file = plant(tmp_path, pid=12345, token="someone-else")  # replaced by hand
    assert json.loads(lock_file.read_text())["token"] == "someone-else"


def test_a_second_lock_in_the_same_process_is_refused_and_the_first_kept(tmp_path):
    with RunLock(tmp_path):
        held = (tmp_path / LOCK_NAME).read_text()
        with pytest.raises(LockedError, match="already locked by this process"):
            RunLock(tmp_path).acquire()
        assert (tmp_path / LOCK_NAME).read_text() == held


def test_a_damaged_lock_is_refused_in_one_line_and_kept(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"pid": 12')
    with pytest.raises(LockedError) as info:
        RunLock(tmp_path, unreadable_wait_s=0.1).acquire()
    assert str(info.value) == (
        f"run folder {tmp_path}: its lock file is empty or damaged, so the driver holding it is "
        f"unknown; wait for it or, if it is gone, remove {tmp_path / LOCK_NAME}"
    )
    assert (tmp_path / LOCK_NAME).read_text() == '{"pid": 12'


def test_a_lock_being_written_is_waited_for_not_called_damaged(tmp_path):
    """A creator between O_EXCL-creating the file and writing its record."""
    lock_file = tmp_path / LOCK_NAME
    lock_file.touch()
    now = datetime.now().astimezone().isoformat(timespec="seconds")  # the parent runs since
    writer = threading.Timer(0.2, lambda: plant(tmp_path, pid=os.getppid(), started=now))
    writer.start()
    with pytest.raises(LockedError, match=f"in use by pid {os.getppid()} on"):
        RunLock(tmp_path).acquire()
    writer.join()


def test_a_driver_acting_on_an_outdated_view_of_a_stale_lock_leaves_the_new_lock(tmp_path):
    """The race the folder flock closes: B reads the stale lock, A takes it over first, then
    B's takeover step runs; B must re-read and leave A's lock in place."""
    stale = json.loads(plant(tmp_path, pid=dead_pid()).read_text())
    late = RunLock(tmp_path)
    with RunLock(tmp_path) as first:
        assert first.note is not None  # A took the stale lock over
        held = (tmp_path / LOCK_NAME).read_text()
        late._refuse_or_remove(stale)  # B, acting on what it read before A's takeover
        assert (tmp_path / LOCK_NAME).read_text() == held
        assert late.note is None


def test_a_reused_pid_started_after_the_lock_does_not_hold_it(tmp_path):
    """The lock's pid now names a live process that started after the lock was written (a pid
    reused after the driver died): stale, taken over."""
    newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        plant(tmp_path, pid=newer.pid, started="2020-01-01T00:00:00+00:00")
        with RunLock(tmp_path) as lock:
            assert f"took over the lock of pid {newer.pid}" in lock.note
    finally:
        newer.kill()
        newer.wait()


def test_a_damaged_lock_is_refused_while_young_and_moved_aside_when_old(tmp_path, monkeypatch):
    lock_file = tmp_path / LOCK_NAME
    lock_file.write_text('{"pid": 12')  # cut while being written
    with pytest.raises(LockedError, match="empty or damaged") as info:
        RunLock(tmp_path, unreadable_wait_s=0.05).acquire()
    assert not info.value.waitable  # no process to wait for: a bounded, one-line refusal
    old = time.time() - lock_module.DAMAGED_STALE_S - 5
    os.utime(lock_file, (old, old))
    with RunLock(tmp_path, unreadable_wait_s=0.05) as lock:
        assert lock.note.endswith("its damaged lock file was moved to .lock.damaged-1")
    assert (tmp_path / ".lock.damaged-1").read_text() == '{"pid": 12'
    assert not info.value.waitable


def test_a_lock_of_another_host_is_not_waitable(tmp_path):
    plant(tmp_path, host="node-7.cluster")
    with pytest.raises(LockedError) as info:
        RunLock(tmp_path).acquire()
    assert not info.value.waitable

"""Ray processes a killed driver left behind, ended by the next driver of the same run folder.

A driver that starts a local Ray writes the processes it started (pid and start time) to
``<run>/.ray-processes.json`` and removes the file after shutting Ray down. A driver killed with
SIGKILL cannot: its Ray agents kept running, listening. The next driver of that folder holds
its lock, so the old one is gone; it ends each recorded process that still runs with the same
start time (a pid reused by an unrelated process is left alone) and is this user's, and every
process of this user holding a file of the recorded Ray session folder open (workers started
after the record).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from scm_bench import rundir
from scm_bench.lock import process_start
from scm_bench.safe_files import read_json_or_none

RECORD = ".ray-processes.json"


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, directly or not (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if entry.isdigit():
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in found]
        found += kids
        todo += kids
    return found


def record(run_dir: Path, session_dir: str | None) -> None:
    """Write the Ray processes this driver started so far and its Ray session folder (call
    after ``ray.init``; workers started later are found by their files in that folder)."""
    procs = {str(p): process_start(p) for p in descendants(os.getpid())}
    rundir.write_json(
        run_dir / RECORD, {"driver": os.getpid(), "processes": procs, "session": session_dir}
    )


def in_session(session_dir: str) -> dict[str, float | None]:
    """This user's processes (not this one) holding a file of the Ray session folder open:
    the workers and agents of that Ray, whoever started them."""
    found = {}
    prefix = session_dir.rstrip("/") + "/"
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                    continue
                fds = os.listdir(f"/proc/{entry}/fd")
                if any(os.readlink(f"/proc/{entry}/fd/{fd}").startswith(prefix) for fd in fds):
                    found[entry] = process_start(int(entry))
    return found


def forget(run_dir: Path) -> None:
    """Ray was shut down: nothing to clean up next time."""
    with contextlib.suppress(FileNotFoundError):
        (run_dir / RECORD).unlink()


def _ours(pid: int, started: float | None) -> bool:
    """The recorded process still runs: same start time and this user's."""
    now = process_start(pid)
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return False
    return (
        now is not None
        and started is not None
        and abs(now - started) < 1.0
        and (uid == os.getuid())
    )


def clean(run_dir: Path, echo, grace_s: float = 3.0) -> int:
    """End what an earlier, killed driver of ``run_dir`` left running; returns how many."""
    value, _ = read_json_or_none(run_dir / RECORD)
    procs = dict((value or {}).get("processes") or {})
    session = (value or {}).get("session")
    if isinstance(session, str) and "/session_" in session:
        procs.update(in_session(session))
    left = [int(p) for p, t in procs.items() if str(p).isdigit() and _ours(int(p), t)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_ours(p, procs[str(p)]) for p in left):
        time.sleep(0.1)
    for pid in left:
        if _ours(pid, procs[str(pid)]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if left:
        echo(f"ended {len(left)} Ray process(es) left running by an earlier, killed run")
    forget(run_dir)
    return len(left)

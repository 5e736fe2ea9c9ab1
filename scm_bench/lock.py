"""One driver per run folder: ``<run_dir>/.lock``, created atomically, removed on exit.

The lock file is created with ``O_CREAT | O_EXCL`` (exactly one creator wins, also on NFSv3+)
and holds JSON ``{pid, host, started, argv, token}``. A driver that finds it:

- held by a live process on this host, or by any process on another host (whose liveness
  cannot be checked), gets :class:`LockedError` naming the holder and the file to remove;
- held by a process of this host that no longer exists (``os.kill(pid, 0)`` raises
  ``ProcessLookupError``, or the pid now belongs to a process started after the lock), takes
  it over and says so in ``RunLock.note``;
- empty or damaged for more than ``DAMAGED_STALE_S`` (its writer died mid-write), moves it
  aside and takes over; a younger one is refused in one line.

Removing a stale lock happens under an ``flock`` of the run folder, after re-reading it, so
two drivers taking over the same stale lock cannot both win. The lock is released when the
``with`` block ends, also on exceptions and Ctrl-C, and only if it is still ours. A driver
killed with SIGKILL leaves its lock behind; the next driver on the same host takes it over.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from scm_bench.errors import UserError
from scm_bench.safe_files import quarantine, read_json_or_none
from scm_bench.safe_yaml import excerpt

LOCK_NAME = ".lock"
DAMAGED_STALE_S = 60.0  # a lock file stays damaged this long only if its writer died
_HELD: set[str] = set()  # tokens of the locks this process holds (pids repeat across boots)
_HELD_MUTEX = threading.Lock()


class LockedError(UserError):
    """The run folder is in use by another driver (or its lock cannot be read); one line.

    ``waitable``: the holder is a live process of this host, so waiting for it makes sense;
    False for a damaged lock file or a holder on another host (nothing here can end those).
    """

    def __init__(self, message: str, waitable: bool = False):
        super().__init__(message)
        self.waitable = waitable


def _alive(pid: int, since: str | None = None) -> bool:
    """A process with this pid exists on this host (a zombie counts as alive) and, when the
    lock's start time ``since`` is known, it started before then (else the pid was reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    started = process_start(pid)
    if started is None or since is None:
        return True
    try:
        locked = datetime.fromisoformat(since).timestamp()
    except ValueError:
        return True
    return started <= locked + 2.0  # the lock's time is rounded to the second


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (Unix time) on Linux; None where /proc cannot tell."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat_line.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _text(value: object) -> str:
    """A field of the lock file for a message: short and on one line whatever it holds."""
    text = str(value)
    return text if text.isprintable() and len(text) <= 64 else excerpt(value, 60)


@contextlib.contextmanager
def _folder_guard(folder: Path) -> Iterator[None]:
    """Exclusive ``flock`` of the folder while checking and removing a lock file (best effort:
    where flock is missing or refused, the O_EXCL creation still admits one driver)."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class RunLock:
    """Context manager owning ``run_dir`` for one driver; see the module docstring.

    ``note`` is None, or one line saying whose stale lock was taken over (print it).
    ``unreadable_wait_s``: how long an empty or damaged lock file is re-read before giving up
    (a creator may be between creating and writing it).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        argv: list[str] | None = None,
        unreadable_wait_s: float = 2.0,
    ):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.note: str | None = None
        self._argv = list(sys.argv if argv is None else argv)
        self._wait = unreadable_wait_s
        self._token: str | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise LockedError."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": self._argv,
            "token": token,
        }
        with _HELD_MUTEX:
            _HELD.add(token)  # before the file exists, so our own threads see it as held
        try:
            for _ in range(100):  # each pass: a lock was released or a stale one removed
                if self._create(record):
                    self._token = token
                    return
                holder = self._read_holder()
                if holder is not None:
                    self._refuse_or_remove(holder)
            raise LockedError(
                f"run folder {self.run_dir}: the lock {self.path} keeps changing "
                "hands; is a loop of drivers starting? try again"
            )
        except BaseException:
            with _HELD_MUTEX:
                _HELD.discard(token)
            raise

    def _create(self, record: dict) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            os.unlink(self.path)  # ours and incomplete
            raise
        return True

    def _read_holder(self) -> dict | None:
        """The holder's record; None if the lock vanished meanwhile."""
        deadline = time.monotonic() + self._wait
        while True:
            value, problem = read_json_or_none(self.path)
            if problem is None and value is None:
                return None
            if problem is None and _valid(value):
                return value
            if time.monotonic() > deadline:
                if self._set_aside_if_old():
                    return None
                raise LockedError(
                    f"run folder {self.run_dir}: its lock file is empty or damaged, so the "
                    f"driver holding it is unknown; wait for it or, if it is gone, remove "
                    f"{self.path}"
                )
            time.sleep(0.02)

    def _set_aside_if_old(self) -> bool:
        """A damaged lock file untouched for ``DAMAGED_STALE_S`` is from a driver that died
        while writing it (a full disk): moved aside (kept, never deleted) and taken over."""
        with _folder_guard(self.run_dir):
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            if age < DAMAGED_STALE_S or _valid(read_json_or_none(self.path)[0]):
                return False
            kept = quarantine(self.path)
        self.note = f"run folder {self.run_dir}: its damaged lock file was moved to {kept.name}"
        return True

    def _refuse_or_remove(self, holder: dict) -> None:
        pid, host, since = holder["pid"], holder["host"], _text(holder["started"])
        who = f"pid {pid} on {_text(host)} since {since}"
        remove = f"wait for it or, if it is gone, remove {self.path}"
        if host != socket.gethostname():
            raise LockedError(
                f"run folder {self.run_dir} is in use by {who} (another host: cannot check "
                f"whether it still runs); {remove}"
            )
        if pid == os.getpid():
            with _HELD_MUTEX:
                ours = holder.get("token") in _HELD
            if ours:
                raise LockedError(
                    f"run folder {self.run_dir} is already locked by this process ({who}); "
                    "one driver per run folder"
                )
        elif _alive(pid, holder["started"]):
            raise LockedError(f"run folder {self.run_dir} is in use by {who}; {remove}", True)
        with _folder_guard(self.run_dir):  # remove it only if it is still that stale lock
            now, _ = read_json_or_none(self.path)
            if now == holder:
                os.unlink(self.path)
                self.note = (
                    f"run folder {self.run_dir}: took over the lock of {who}, "
                    "which is no longer running"
                )

    def release(self) -> None:
        """Remove the lock file if it is still ours; a no-op when not held."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            with _folder_guard(self.run_dir):
                now, _ = read_json_or_none(self.path)
                if isinstance(now, dict) and now.get("token") == token:
                    os.unlink(self.path)
        except FileNotFoundError:  # the run folder itself was removed
            pass
        finally:
            with _HELD_MUTEX:
                _HELD.discard(token)


def _valid(value: object) -> bool:
    """A lock record: positive int pid, host and start time strings."""
    return (
        isinstance(value, dict)
        and type(value.get("pid")) is int
        and value["pid"] > 0
        and isinstance(value.get("host"), str)
        and isinstance(value.get("started"), str)
    )

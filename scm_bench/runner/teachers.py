"""One driver trains a teacher of a shared cache; the others wait for it, within a bound.

A teacher's cache entry (``<cache>/teacher-<digest>/``) is locked (``lock.RunLock``, its
``.lock``) by the driver that trains it, for as long as it trains. Another driver that needs the
same teacher waits until the lock is gone, then uses the finished teacher, or trains it itself
when the holder stopped before it finished. Waiting is bounded (``TEACHER_WAIT_S``) and only for
a live holder on this host: a damaged lock or one held on another host is a one-line error.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from scm_bench import rundir
from scm_bench.errors import RunError
from scm_bench.lock import LockedError, RunLock

TEACHER_WAIT_S = 24 * 3600.0  # longest wait for another driver to finish training a teacher
POLL_S = 2.0


def claim_teachers(
    tdirs: list[Path], held: contextlib.ExitStack, echo
) -> tuple[list[Path], list[Path]]:
    """(entries this driver now holds and must train, entries another driver is training).
    The locks taken stay held until ``held`` closes; finished entries are in neither list."""
    ours, others = [], []
    for tdir in tdirs:
        lock = RunLock(tdir)
        try:
            lock.acquire()
        except LockedError as err:
            if not err.waitable:
                raise RunError(f"teacher cache: {err.lines[0]}") from None
            echo(f"{tdir.name}: being trained by another run; waiting for it")
            others.append(tdir)
            continue
        if rundir.is_finished(tdir):  # finished while we looked
            lock.release()
            continue
        held.callback(lock.release)
        ours.append(tdir)
    return ours, others


def wait_for_teachers(tdirs: list[Path], wait_s: float = TEACHER_WAIT_S) -> list[Path]:
    """Wait until no other driver holds these entries; returns those still unfinished (their
    trainer stopped: train them here). A RunError when ``wait_s`` passes first."""
    deadline = time.monotonic() + wait_s
    left = []
    for tdir in tdirs:
        while True:
            try:
                with RunLock(tdir):
                    break
            except LockedError as err:
                if not err.waitable:
                    raise RunError(f"teacher cache: {err.lines[0]}") from None
                if time.monotonic() > deadline:
                    raise RunError(
                        f"teacher cache: {tdir} still locked after waiting {wait_s:.0f} s "
                        f"({err.lines[0]})"
                    ) from None
                time.sleep(POLL_S)
        if not rundir.is_finished(tdir):
            left.append(tdir)
    return left

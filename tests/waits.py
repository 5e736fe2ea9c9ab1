"""Waits with a deadline that fail loudly: a test never hangs and never goes on after a timeout."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable


def wait_until(done: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    """Return once ``done()`` holds; fail the test naming ``what`` if ``timeout`` s pass first."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def read_until(proc: subprocess.Popen, done: Callable[[str], bool], timeout: float) -> list[str]:
    """Lines of ``proc.stdout`` up to and including the first for which ``done`` holds.

    Read on a thread so that the deadline holds even while the process prints nothing; fails
    with what was read when the deadline passes or the output ends first.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # end of output

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            text = "".join(seen)[-2000:]
            raise AssertionError(f"no matching line in {timeout:.0f} s: {text}") from None
        if line is None:
            raise AssertionError(f"output ended without a matching line: {''.join(seen)[-2000:]}")
        seen.append(line)
        if done(line):
            return seen

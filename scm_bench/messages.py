"""What the CLI prints for an error: short, one line per problem, never a traceback for the
user's own mistakes or a full disk."""

from __future__ import annotations

import errno
import logging
import sys

from scm_bench.exit_codes import TRIALS_FAILED, USER_ERROR

MAX_LINE = 300  # characters of one message line
MAX_LINES = 20  # problems listed; the rest are counted


def cap(line: str, limit: int = MAX_LINE) -> str:
    """One line of at most ``limit`` characters (a longer one is cut, its size said)."""
    line = " ".join(str(line).split("\n"))
    return line if len(line) <= limit else f"{line[: limit - 30]}… ({len(line):,} characters)"


def capped(lines: list[str]) -> list[str]:
    """At most ``MAX_LINES`` lines of at most ``MAX_LINE`` characters each."""
    shown = [cap(line) for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        shown.append(f"... and {len(lines) - MAX_LINES:,} more problems")
    return shown


def user_error(err) -> int:
    """Print a UserError's problems (``error: ...``, capped) on stderr; returns exit code 2."""
    for line in capped(err.lines):
        print(f"error: {line}", file=sys.stderr)
    return USER_ERROR


def disk_full() -> int:
    """In an ``except OSError`` block: a full disk (or quota) is one line and exit code 1 (the
    run resumes once there is space); any other OSError is re-raised."""
    err = sys.exc_info()[1]
    full = isinstance(err, OSError) and (
        err.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(err)
    )  # pyarrow's IOError carries no errno, only the system's message
    if not full:
        raise  # noqa: PLE0704 - re-raises the OSError being handled
    where = f" writing {cap(str(err.filename), 200)}" if err.filename else ""
    print(
        f"error: no space left on the device{where}; finished trials are kept: free space "
        "and re-run the same command to resume",
        file=sys.stderr,
    )
    return TRIALS_FAILED


class StderrHandler(logging.StreamHandler):
    """A log handler writing to the current ``sys.stderr`` (not the one of its creation: a
    test's captured stream is closed after the test, and a later warning would fail)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass

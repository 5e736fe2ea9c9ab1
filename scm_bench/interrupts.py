"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

A handler raises ``Stopped`` (a ``KeyboardInterrupt``) in the main thread, so the same code
paths run as for Ctrl-C: finished trials are kept, the run folder's lock is removed, Ray is
shut down (its processes end), and the CLI prints one line and exits 128 + the signal's number.
``ray.init`` installs SIGTERM handlers of its own (exiting 1 or 15, with a C++ crash dump when
the signal lands inside Ray): ``install`` runs again after it.
"""

from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_received: list[int] = []  # the stop signals that arrived (Tune may re-raise a bare Ctrl-C)


def _stop(signum: int, frame) -> None:
    _received.append(signum)
    raise Stopped(signum)


def install() -> None:
    """SIGTERM and SIGHUP raise ``Stopped`` (only the main thread can set handlers)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _stop)


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + signum(err)


def signum(err: KeyboardInterrupt) -> int:
    """The signal behind a stop: the exception's own, else the first stop signal received
    (Ray Tune turns an exception raised inside it into a plain KeyboardInterrupt), else SIGINT."""
    return getattr(err, "signum", None) or (_received[0] if _received else signal.SIGINT)


def name(err: KeyboardInterrupt) -> str:
    return signal.Signals(signum(err)).name


def stopped(err: KeyboardInterrupt) -> int:
    """Print the one line for a stop (Ctrl-C, or a named signal) on stderr; returns the exit
    code, 128 + the signal."""
    how = "interrupted" if exit_code(err) == 130 else f"stopped by {name(err)}"
    print(f"{how}: finished trials are kept; re-run the same command to resume", file=sys.stderr)
    return exit_code(err)

"""Exit codes of the ``scm-bench`` command, one meaning each.

======  ===============  =============================================================
code    name             meaning
======  ===============  =============================================================
0       OK               every trial finished ``ok`` (or there was nothing to do)
1       TRIALS_FAILED    the run went through, but some trial ``failed``, ``diverged``
                         or is still ``pending``; see results.csv
2       USER_ERROR       nothing ran: a bad spec, flag, path or missing resource; the
                         problems are printed one per line (argparse also exits 2)
130     INTERRUPTED      stopped by Ctrl-C (128 + SIGINT); finished trials are kept and
                         re-running the same command resumes
129/143 (128 + signal)   stopped by SIGHUP / SIGTERM, handled as Ctrl-C (interrupts.py)
======  ===============  =============================================================
A full disk is exit 1 with one line (messages.py); the run resumes once there is space.
"""

from __future__ import annotations

from collections.abc import Iterable

OK = 0
TRIALS_FAILED = 1
USER_ERROR = 2
INTERRUPTED = 130


def summary_code(statuses: Iterable[str], *, diverged_fails: bool = True) -> int:
    """``OK`` when every status is ``"ok"`` (also for none), else ``TRIALS_FAILED``.

    Any other status (``failed``, ``diverged``, ``pending``, unknown) counts as not ok.
    ``diverged_fails=False`` treats ``diverged`` as ok, for ablations whose point is to show
    that a configuration diverges.
    """
    from scm_bench import rundir  # here: `scm-bench --help` imports this module, not torch

    good = set(rundir.FINISHED) if not diverged_fails else {rundir.OK}
    return OK if all(s in good for s in statuses) else TRIALS_FAILED

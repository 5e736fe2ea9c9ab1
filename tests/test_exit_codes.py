"""exit_codes: one code per outcome; a run's code follows from its trial statuses."""

from scm_bench import exit_codes as ec


def test_codes_are_distinct_and_match_shell_conventions():
    assert (ec.OK, ec.TRIALS_FAILED, ec.USER_ERROR, ec.INTERRUPTED) == (0, 1, 2, 130)
    for name in ("OK", "TRIALS_FAILED", "USER_ERROR", "INTERRUPTED"):
        assert name in ec.__doc__  # the table documents every code


def test_summary_code_is_ok_only_when_every_trial_is_ok():
    assert ec.summary_code([]) == ec.OK
    assert ec.summary_code(["ok", "ok"]) == ec.OK
    assert ec.summary_code(s for s in ["ok", "failed"]) == ec.TRIALS_FAILED  # any iterable
    assert ec.summary_code(["ok", "diverged"]) == ec.TRIALS_FAILED
    assert ec.summary_code(["ok", "pending"]) == ec.TRIALS_FAILED
    assert ec.summary_code(["ok", "diverged"], diverged_fails=False) == ec.OK
    assert ec.summary_code(["failed", "diverged"], diverged_fails=False) == ec.TRIALS_FAILED

"""User-fixable errors, all in one place. The CLI prints each as one line and exits 2.

Every class here derives from ``UserError``: a problem the user can fix (a spec, a flag, a
missing file, a resource the cluster lacks), found before training where possible. Anything
else is a bug and keeps its traceback.
"""

import difflib


def did_you_mean(word, choices) -> str:
    """' (did you mean X?)' for the nearest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UserError(Exception):
    """Base of every user-fixable error; ``lines`` are printed one per line."""

    @property
    def lines(self) -> list[str]:
        return [str(self.args[0])] if self.args else [type(self).__name__]


class SpecError(UserError):
    """Problems with a spec or an override, one line each: ``FILE: yaml.path: what; allowed``."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self._lines = list(lines)

    @property
    def lines(self) -> list[str]:
        return self._lines


class RunError(UserError):
    """A run cannot start: resources the cluster lacks, a device that is not there."""


class ModelError(UserError):
    """A run, trial or exported model the user named is missing or is not an scm-bench model."""


class DataError(UserError, ValueError):
    """A user-fixable problem with a dataset (missing folder, malformed files)."""


class UnknownMetric(UserError, KeyError, ValueError):
    """A metric name nobody registered (message carries a near-match suggestion)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MetricNotApplicable(UserError, ValueError):
    """A sample metric asked for a dataset it does not apply to."""


class MissingWeights(UserError, ValueError):
    """A feature network's weights file is absent (never downloaded); says how to provide it."""

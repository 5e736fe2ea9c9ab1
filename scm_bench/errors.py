"""User-fixable errors found before training; the CLI prints them as one line and exits 2."""

import difflib


def did_you_mean(word, choices) -> str:
    """' (did you mean X?)' for the nearest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class RunError(Exception):
    """A run cannot start: resources the cluster lacks, missing data or weights."""

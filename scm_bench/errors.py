"""User-fixable errors found before training; the CLI prints them as one line and exits 2."""


class RunError(Exception):
    """A run cannot start: resources the cluster lacks, missing data or weights."""

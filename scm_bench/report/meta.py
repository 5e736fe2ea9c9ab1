"""Provenance of a report: git commit, package versions, hardware (and wall time if known),
collected as trials collect theirs (``train.provenance``): fast, never failing."""

from __future__ import annotations

from pathlib import Path

from scm_bench.train.provenance import cpu_name, git_commit, hardware, package_commit, versions

__all__ = ["collect_meta", "cpu_name", "git_commit", "hardware", "versions"]


def collect_meta(cwd: Path | None = None, wall_time: float | None = None) -> dict:
    """Meta data for a report header: commit, versions, hardware and (optional) wall time [s].
    The commit is the package's (as trials record theirs), whatever folder the report is
    written from; ``cwd``'s when the package is not a git checkout."""
    commit = package_commit() or git_commit(cwd) or "unknown"
    meta = {"commit": commit, "versions": versions(), "hardware": hardware()}
    if wall_time is not None:
        meta["wall_time"] = wall_time
    return meta

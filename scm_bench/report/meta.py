"""Provenance of a report: git commit, package versions, hardware (and wall time if known).

Nothing here imports torch or ray: versions come from package metadata, the GPU from
``nvidia-smi`` when it exists, so collecting the meta data is fast and never fails.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("scm-bench", "torch", "ray", "numpy", "pandas")


def _run(args: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def git_commit(cwd: Path | None = None) -> str | None:
    """'<sha>' of HEAD in ``cwd`` (default: the current directory), '+dirty' if modified."""
    sha = _run(["git", "rev-parse", "HEAD"], cwd)
    if sha is None:
        return None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd)
    return f"{sha}+dirty" if dirty else sha


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, str]:
    found = {
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": f"{cpu_name()} x {os.cpu_count()}",
    }
    if shutil.which("nvidia-smi"):
        gpus = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
        if gpus:
            found["gpu"] = "; ".join(sorted(gpus.splitlines()))
    return found


def collect_meta(cwd: Path | None = None, wall_time: float | None = None) -> dict:
    """Meta data for a report header: commit, versions, hardware and (optional) wall time [s]."""
    meta = {"commit": git_commit(cwd) or "unknown", "versions": versions(), "hardware": hardware()}
    if wall_time is not None:
        meta["wall_time"] = wall_time
    return meta

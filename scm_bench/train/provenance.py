"""Where and with what code a trial ran: git commit, package versions, hardware.

Nothing here imports torch or ray: versions come from package metadata, the GPU from
``nvidia-smi`` when it exists, so collecting it is fast and never fails. Trials record it in
their result.json (``train.loop``); reports read it back and describe their own machine with it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("scm-bench", "torch", "ray", "numpy", "pandas")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # scm_bench/, inside the repo when checked out


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


def package_commit() -> str | None:
    """git_commit of the checkout this package runs from; None when it is installed elsewhere
    (a site-packages copy inside some other repository does not count)."""
    top = _run(["git", "rev-parse", "--show-toplevel"], PACKAGE_DIR)
    return git_commit(PACKAGE_DIR) if top and Path(top).resolve() == PACKAGE_DIR.parent else None


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

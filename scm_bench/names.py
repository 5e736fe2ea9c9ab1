"""Checks of user-given run names and output folders, before anything is created.

A run name becomes a folder (``runs/<name>/``), so it must not escape its parent or look like
a flag; ``--out`` must be a folder we can create or write that is not the current folder, one
of its parents, or the home folder (the run writes trials/, ray/ and results there).
Each check returns one line naming the field or flag, or None when the value is fine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scm_bench.errors import RunError
from scm_bench.owned import FolderKind, claim
from scm_bench.safe_yaml import excerpt

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""1-100 ASCII letters, digits, ``_ . -``, starting with a letter or a digit."""
_ALLOWED = "allowed: 1-100 characters from A-Z a-z 0-9 _ . - starting with a letter or digit"


def run_name_problem(name: object) -> str | None:
    """Why ``name`` is not a folder name inside ``runs/`` (the value and what is allowed), or None.

    Refuses ``.``, ``..``, path separators, a leading ``-``, spaces, non-ASCII and control
    characters, and names over 100 characters.
    """
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}; {_ALLOWED}"
    if RUN_NAME.fullmatch(name) and name not in (".", ".."):
        return None
    if name in ("", ".", ".."):
        why = "is empty" if not name else "is not a folder name"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        why = "contains a path separator"
    elif name.startswith("-"):
        why = "starts with '-' (it would read as a flag)"
    elif len(name) > 100:
        why = f"has {len(name):,} characters"
    else:
        why = "has a character that is not allowed"
    return f"{excerpt(name, 40)} {why}; {_ALLOWED}"


def _is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or one of its parents."""
    return path == folder or path in folder.parents


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> str | None:
    """Problem with ``path`` as a run folder to create or resume, or None.

    Refuses an empty path, a path through an existing file (``/etc/passwd/x``), an existing
    file, a folder (or nearest existing parent) we cannot write, the current folder or one of
    its parents, and the home folder or one of its parents. Symlinks are followed.
    """
    shown = excerpt(os.fspath(path), 80)
    if not os.fspath(path):
        return f"{flag}: is empty; give a folder for the run, e.g. runs/<name>"
    try:
        target = Path(path).resolve()
        home = Path.home().resolve()
        cwd = Path.cwd().resolve()
        existing = next(p for p in (target, *target.parents) if p.exists())
        is_dir = existing.is_dir()
    except (OSError, ValueError, RuntimeError) as err:  # too long, NUL byte, symlink loop
        why = getattr(err, "strerror", None) or excerpt(str(err), 60)
        return f"{flag}: {shown} is not a usable path ({why}); give a folder such as runs/<name>"
    if not is_dir:
        what = (
            "is a file" if existing == target else f"goes through the file {excerpt(str(existing))}"
        )
        return f"{flag}: {shown} {what}; give a folder path, e.g. runs/<name>"
    if _is_within(target, cwd):
        return (
            f"{flag}: {shown} is the current folder or one of its parents; "
            "give a new folder inside it, e.g. runs/<name>"
        )
    if _is_within(target, home):
        return f"{flag}: {shown} is the home folder or one of its parents; give a subfolder"
    if not os.access(existing, os.W_OK | os.X_OK):
        which = (
            "it" if existing == target else f"its nearest existing parent {excerpt(str(existing))}"
        )
        return f"{flag}: {shown}: cannot write to {which}; give a folder you can write"
    return None


def require_dir(path: Path, flag: str = "--out", kind: FolderKind | None = None) -> Path:
    """``path`` when ``check_out_dir`` finds it safe to write into, else a one-line RunError.
    With ``kind``, the folder is also made the tool's (``owned.claim``: created and marked;
    a folder of someone else's files is refused, unchanged)."""
    problem = check_out_dir(path, flag)
    if problem:
        raise RunError(problem)
    return claim(path, kind, flag) if kind else path


def run_folder(path: str | os.PathLike, needs: str) -> Path:
    """A run folder holding ``needs`` (e.g. results.csv), else a one-line RunError."""
    if not (Path(path) / needs).exists():
        raise RunError(f"{path}: no {needs}; is this a run directory?")
    return Path(path)

"""Folders the tool may write in: those it made, marked by a ``.scm-bench`` file.

Every folder scm-bench writes files into by name (a run folder, a trained trial's folder, a
reports folder and each published report) carries the marker, written when the tool creates the
folder or finds it empty. A folder that holds files but no marker is someone else's: refused
in one line (exit 2) before anything in it changes. Inside its own folders the tool replaces
only the files it writes, and it never removes a file there it did not write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from scm_bench.errors import RunError
from scm_bench.safe_files import atomic_write_text, read_json_or_none
from scm_bench.safe_yaml import excerpt

MARKER = ".scm-bench"
FolderKind = Literal["run", "trial", "reports", "report"]
"""run: `scm-bench run --out`; trial: `scm-bench train --out`; reports: `publish --to`;
report: one published run inside a reports folder."""


def _shown(folder: Path) -> str:
    """The folder for a one-line message: as is when short and printable, else an excerpt."""
    text = os.fspath(folder)
    return text if text.isprintable() and len(text) <= 200 else excerpt(text, 120)


def marker_kind(folder: Path) -> str | None:
    """The kind recorded in ``folder``'s marker; None without one (or an unreadable one);
    ``"adopted"`` for an empty marker, which a user creates (``touch DIR/.scm-bench``) to hand
    a folder of an scm-bench from before markers over to the tool."""
    path = Path(folder) / MARKER
    if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
        return "adopted"
    value, _ = read_json_or_none(path)
    return value.get("kind") if value and value.get("owner") == "scm-bench" else None


def check_claim(folder: Path, kind: FolderKind, flag: str) -> None:
    """A one-line RunError unless ``folder`` is missing, empty or marked as a ``kind`` folder.
    Changes nothing (call before writing anything, for every folder a command will write)."""
    folder = Path(folder)
    try:
        entries = [p.name for p in folder.iterdir()] if folder.exists() else []
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise RunError(f"{flag}: {_shown(folder)}: cannot read it ({why})") from None
    if not entries:
        return
    found = marker_kind(folder) if MARKER in entries else None
    if found in (kind, "adopted"):
        return
    if found is not None:
        raise RunError(
            f"{flag}: {_shown(folder)} is an scm-bench {found} folder, not a {kind} folder; "
            "give a new or empty folder"
        )
    raise RunError(
        f"{flag}: {_shown(folder)} holds files scm-bench did not write (no {MARKER} marker); "
        "nothing was changed: give a new or empty folder (one of an earlier scm-bench: an "
        f"empty {MARKER} file in it hands it over)"
    )


def claim(folder: Path, kind: FolderKind, flag: str) -> Path:
    """``folder`` made ours: checked (``check_claim``), created and marked; returns it."""
    folder = Path(folder)
    check_claim(folder, kind, flag)
    if marker_kind(folder) == kind:
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / MARKER, json.dumps({"owner": "scm-bench", "kind": kind}) + "\n")
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise RunError(f"{flag}: {_shown(folder)}: cannot create it ({why})") from None
    return folder

"""The report's own folder, ``<run>/report/``: what the report writes there is listed in its
marker file, and a rewrite removes only those files, so a user's file kept beside them (e.g.
``report/notes.txt``) survives every rewrite while a stale figure of an earlier report does not.

<run>/report/.scm-bench-report   {"owner": "scm-bench", "written": ["curves.png", ...]}
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path, PurePosixPath

from scm_bench.errors import RunError
from scm_bench.safe_files import atomic_write_text, read_json_or_none

MARKER = ".scm-bench-report"  # marks a report/ folder as the report's own; lists its files
# The names an earlier version wrote (its marker listed nothing): table, summary, figures, grids.
EARLIER_NAMES = ("table.csv", "summary.json", "curves.png", "eval_curves.png", "probes.png",
                 "g_norm_tbin.png", "bars_*.png", "scd_teacher_*.png", "samples/*.png")  # fmt: skip


def _inside(out: Path, rel: str) -> Path | None:
    """``out/rel`` when ``rel`` is a plain relative path naming a file reached through no link
    (a planted link or ``..`` never leads a removal out of the folder); else None."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or {"", ".", ".."} & set(parts):
        return None
    path = out
    for part in parts:
        path = path / part
        if path.is_symlink():
            return None
    return path if path.is_file() else None


def written_before(out: Path) -> list[str]:
    """The files the last report wrote into ``out`` (relative, '/'-separated): its marker's
    list, or for a marker of an earlier version the files matching ``EARLIER_NAMES``."""
    listed, _ = read_json_or_none(out / MARKER)
    if listed is not None and isinstance(listed.get("written"), list):
        return [str(rel) for rel in listed["written"]]
    found = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    return [rel for rel in found if any(fnmatch.fnmatchcase(rel, n) for n in EARLIER_NAMES)]


def fresh_report_dir(out: Path) -> Path:
    """``out`` without the files an earlier report wrote there (no stale figure survives); any
    other file in it is kept. A folder without the marker is a one-line RunError, never
    touched."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunError(f"{out}: exists and is not a folder; move it away to write the report")
    if out.exists():
        if not (out / MARKER).exists():
            raise RunError(f"{out}: a folder scm-bench did not write; move it away first")
        removed = [path for rel in written_before(out) if (path := _inside(out, rel))]
        for path in removed:
            path.unlink()
        emptied = {parent for path in removed for parent in path.parents if out in parent.parents}
        for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()  # a folder of grids it emptied (a user's file in it keeps it)
    out.mkdir(parents=True, exist_ok=True)
    list_written(out, [])
    return out


def files_in(out: Path) -> set[str]:
    """Every file below ``out`` (relative, '/'-separated), the marker left out."""
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {MARKER}


def list_written(out: Path, written) -> None:
    """Record ``written`` (paths relative to ``out``) as the report's files in its marker."""
    text = json.dumps({"owner": "scm-bench", "written": sorted(written)}, indent=1)
    atomic_write_text(out / MARKER, text + "\n")

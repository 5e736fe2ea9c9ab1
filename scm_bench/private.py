"""Folders shared between processes of one user (node work folders, teacher caches): private
to the user (0700, owner checked) and checked against what they claim to hold."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from scm_bench.safe_files import _show


def private_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder only this user can use: created with mode 0700 when missing; an
    existing one must be a real folder (not a symlink) owned by this user that nobody else
    may write (then narrowed to 0700). Else a one-line ``RunError`` naming it; a folder that
    someone else can plant files in is never trusted."""
    from scm_bench.errors import RunError

    path = Path(path)
    shown = _show(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise RunError(f"{what} {shown}: cannot create it ({why}); set a folder you own") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise RunError(f"{what} {shown}: is a symlink or not a folder; expected a private folder")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise RunError(
            f"{what} {shown}: owned by uid {info.st_uid}, not by you (uid {os.getuid()}); "
            "it is not used, set a folder of your own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RunError(
            f"{what} {shown}: other users may write in it (mode {stat.S_IMODE(info.st_mode):o}); "
            "it is not used: remove it or set a folder only you can write"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()

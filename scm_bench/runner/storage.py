"""Run artifacts through Ray Tune's storage, never through paths shared between machines.

A trial works in a folder of its own on whichever node runs it (``workdir``), reports its
checkpoints and final artifacts as ``tune.Checkpoint``s, and Tune copies them to the storage
(``tune.RunConfig(storage_path=...)``: a local folder, an NFS mount or a pyarrow filesystem
URI such as ``s3://bucket/runs``). The driver assembles the run folder from there
(``assemble``). Teachers live in the storage too, as ``<storage>/teachers/<teacher id>/``:
a student fetches its teacher from there into a node-local cache (``fetch_teacher``).

Layout of the storage (default ``<run folder>/ray``):

<storage>/<phase>-<time>/<trial>/checkpoint_*/   Tune's experiments and trial checkpoints
<storage>/teachers/<teacher id>/                 finished teachers, as their trial folders
<storage>/resume/<trial id>/                     a trial's state from an earlier invocation
<storage>/train/train-<trial id>/                Ray Train runs of multi-worker trials
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs
from ray import tune

from scm_bench import rundir
from scm_bench.errors import RunError
from scm_bench.lock import LOCK_NAME, LockedError, RunLock
from scm_bench.private import private_dir, sha256_of


@dataclass(frozen=True)
class Storage:
    """Where Tune keeps a run's artifacts: ``uri`` is a local folder or a pyarrow URI."""

    uri: str

    @classmethod
    def parse(cls, given: str | None, out_dir: Path) -> Storage:
        """``--storage``, checked once (a one-line RunError), default ``<out_dir>/ray``."""
        if not given:
            return cls(str(Path(out_dir) / "ray"))
        if "://" not in given:
            return cls(str(Path(given).expanduser().resolve()))
        try:
            pyarrow.fs.FileSystem.from_uri(given)
        except (pyarrow.ArrowException, ValueError, OSError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RunError(f"--storage {given}: not a usable storage URI ({first})") from None
        return cls(given.rstrip("/"))

    def join(self, *parts: str) -> str:
        """The URI (or local path) of a place inside the storage."""
        return (
            "/".join([self.uri.rstrip("/"), *parts])
            if "://" in self.uri
            else str(Path(self.uri, *parts))
        )

    def fs(self, *parts: str) -> tuple[pyarrow.fs.FileSystem, str]:
        """(filesystem, path in it) of a place inside the storage."""
        if "://" in self.uri:
            return pyarrow.fs.FileSystem.from_uri(self.join(*parts))
        return pyarrow.fs.LocalFileSystem(), self.join(*parts)

    def exists(self, *parts: str) -> bool:
        fs, path = self.fs(*parts)
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    def checkpoint(self, *parts: str) -> tune.Checkpoint:
        fs, path = self.fs(*parts)
        return tune.Checkpoint(path, filesystem=fs)

    def upload(self, local: Path, *parts: str, replace: bool = False) -> None:
        """Copy a local folder into the storage: to a fresh name, then moved into place, so a
        reader never sees half of it (a place already filled is kept unless ``replace``)."""
        fs, path = self.fs(*parts)
        if self.exists(*parts):
            if not replace:
                return
            fs.delete_dir(path)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        fs.create_dir(tmp, recursive=True)
        pyarrow.fs.copy_files(str(local), tmp, destination_filesystem=fs)
        try:
            fs.move(tmp, path)
        except OSError:  # another trial put the same content there first
            fs.delete_dir(tmp)


def workroot() -> Path:
    """This node's folder for trial working directories and teacher copies, private to the user
    (0700, owner checked; ``safe_files.private_dir``): $SCM_BENCH_WORKDIR, or
    ``scm-bench-work-<uid>`` in the temporary folder (never the driver's run folder)."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    default = Path(tempfile.gettempdir()) / f"scm-bench-work-{uid}"
    return private_dir(os.environ.get("SCM_BENCH_WORKDIR") or default, "$SCM_BENCH_WORKDIR")


def workdir(name: str) -> Path:
    """A fresh working directory for one trial on this node: ``<workroot>/<unique>/<name>``."""
    return Path(tempfile.mkdtemp(prefix="trial-", dir=workroot())) / name


def download(checkpoint: tune.Checkpoint, dest: Path) -> None:
    """A checkpoint's files into ``dest``: fetched into a sibling folder first, then moved in
    one by one, ``result.json`` last (a folder with an outcome is complete)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=dest.parent))
    try:
        checkpoint.to_directory(str(tmp))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        for p in sorted(files, key=lambda p: p.name == "result.json"):
            target = dest / p.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


MANIFEST = "sha256.json"  # a stored teacher's {file name: SHA-256}, written when it is stored
TEACHER_WAIT_S = 24 * 3600.0  # longest wait for another process of this node to train a teacher


def _local_files(folder: Path) -> dict[str, str]:
    """{name: SHA-256} of a teacher folder's files, without lock, manifest and set-aside files."""
    skip = (LOCK_NAME, MANIFEST)
    return {p.name: sha256_of(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name not in skip and ".damaged-" not in p.name}  # fmt: skip


def stored_manifest(storage: Storage, teacher_id: str) -> dict | None:
    """The stored teacher's manifest; None when it has none or it cannot be read."""
    fs, path = storage.fs("teachers", teacher_id, MANIFEST)
    try:
        with fs.open_input_stream(path) as fh:
            value = json.loads(fh.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError, pyarrow.ArrowException):
        return None
    return value if isinstance(value, dict) else None


def _clear(folder: Path) -> None:
    """Empty a folder of ours (this user's private node folder), keeping our lock file."""
    for p in folder.iterdir():
        if p.name != LOCK_NAME:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _sync_teacher(storage: Storage, teacher_id: str, local: Path) -> None:
    """Make the node copy the stored teacher: kept only when every file matches the storage's
    manifest, else emptied and downloaded again (a node copy is never trusted on its own)."""
    manifest = stored_manifest(storage, teacher_id)
    if manifest is not None and rundir.is_finished(local) and _local_files(local) == manifest:
        return
    _clear(local)
    download(storage.checkpoint("teachers", teacher_id), local)


def fetch_teacher(
    storage: Storage,
    teacher_id: str,
    train: Callable[[Path], None],
    wait_s: float = TEACHER_WAIT_S,
) -> Path:
    """This node's copy of a finished teacher: the storage's (a node copy is used only when it
    matches it), else trained here by ``train(folder)`` and put into the storage for the
    others. One process per node fetches or trains it; the others wait, at most ``wait_s``
    seconds, and only for a live process of this node (any other lock is a one-line error)."""
    local = private_dir(workroot() / "teachers", "$SCM_BENCH_WORKDIR/teachers") / teacher_id
    local.mkdir(mode=0o700, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with RunLock(local):
                if storage.exists("teachers", teacher_id):
                    _sync_teacher(storage, teacher_id, local)
                if not rundir.is_finished(local):
                    train(local)
                publish_teacher(storage, local)
                return local
        except LockedError as err:
            if not err.waitable or time.monotonic() > deadline:
                raise RunError(f"teacher {teacher_id}: {err.lines[0]}") from None
            time.sleep(1)


def publish_teacher(storage: Storage, local: Path) -> None:
    """A finished teacher's folder into ``<storage>/teachers/<its name>`` (once), with the
    manifest of its files' SHA-256 that node copies are checked against."""
    if rundir.is_finished(local) and not storage.exists("teachers", local.name):
        tmp = Path(tempfile.mkdtemp(prefix="publish-", dir=workroot()))
        try:  # without the lock file or anything moved aside
            files = _local_files(local)
            for name in files:
                shutil.copy2(local / name, tmp / name)
            (tmp / MANIFEST).write_text(json.dumps(files, indent=1, sort_keys=True))
            storage.upload(tmp, "teachers", local.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

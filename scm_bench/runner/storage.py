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
from scm_bench.lock import LockedError, RunLock


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
    """This node's folder for trial working directories: $SCM_BENCH_WORKDIR, or the temporary
    folder (never the driver's run folder)."""
    root = os.environ.get("SCM_BENCH_WORKDIR") or Path(tempfile.gettempdir()) / "scm-bench-work"
    return Path(root)


def workdir(name: str) -> Path:
    """A fresh working directory for one trial on this node: ``<workroot>/<unique>/<name>``."""
    workroot().mkdir(parents=True, exist_ok=True)
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


def fetch_teacher(storage: Storage, teacher_id: str, train: Callable[[Path], None]) -> Path:
    """This node's copy of a finished teacher: from the node's cache, else from the storage,
    else trained here by ``train(folder)`` and put into the storage for the others. One
    process per node fetches or trains it; the others wait for it."""
    local = workroot() / "teachers" / teacher_id
    local.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            with RunLock(local):
                if not rundir.is_finished(local) and storage.exists("teachers", teacher_id):
                    download(storage.checkpoint("teachers", teacher_id), local)
                if not rundir.is_finished(local):
                    train(local)
                publish_teacher(storage, local)
                return local
        except LockedError:
            time.sleep(1)


def publish_teacher(storage: Storage, local: Path) -> None:
    """A finished teacher's folder into ``<storage>/teachers/<its name>`` (once)."""
    if rundir.is_finished(local) and not storage.exists("teachers", local.name):
        tmp = Path(tempfile.mkdtemp(prefix="publish-", dir=workroot()))
        try:  # without the lock file or anything moved aside
            for p in local.iterdir():
                if p.is_file() and p.name != ".lock" and ".damaged-" not in p.name:
                    shutil.copy2(p, tmp / p.name)
            storage.upload(tmp, "teachers", local.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

"""Trust boundaries on disk: no code runs from a file, node folders are private and a node copy
of a teacher is used only when it matches the storage's."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest
import torch

from scm_bench import rundir
from scm_bench.errors import RunError
from scm_bench.private import private_dir


class Payload:
    """Unpickling this runs ``open(flag, 'w')``: the planted code a loader must never run."""

    def __init__(self, flag: Path):
        self.flag = str(flag)

    def __reduce__(self):
        return (open, (self.flag, "w"))


def plant_pickle(path: Path, flag: Path) -> None:
    """A checkpoint.pt that runs the payload when unpickled (torch.save pickles it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ema": Payload(flag), "step": 1}, path)


def finished_teacher(folder: Path, weight: float) -> None:
    """A finished teacher folder: result.json (ok) and a state-dict checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    rundir.save_checkpoint(folder / "checkpoint.pt", {"ema": {"w": torch.full((2,), weight)}})
    rundir.write_json(folder / "result.json", {"status": "ok", "metrics": {}})


def test_a_planted_pickle_in_a_teacher_folder_is_refused_and_never_runs(tmp_path):
    from scm_bench.data import load_dataset
    from scm_bench.spec.schema import TrialSpec
    from scm_bench.train.setup import load_teacher

    flag = tmp_path / "payload-ran"
    plant_pickle(tmp_path / "teacher" / "checkpoint.pt", flag)
    spec = TrialSpec().override({"method": "scd", "net.width": 32, "net.depth": 2})
    with pytest.raises(RunError, match="holds objects beyond tensors and plain containers"):
        load_teacher(spec, tmp_path / "teacher", load_dataset(spec.data), torch.device("cpu"))
    assert not flag.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """Each ``torch.load(...)`` call passes ``weights_only=True`` (or safe_files' parameter,
    whose default is True)."""
    package = Path(__file__).resolve().parent.parent / "scm_bench"
    calls = 0
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            func = getattr(node, "func", None)
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "load"
                and (getattr(func.value, "id", None) == "torch")
            ):
                calls += 1
                given = {k.arg: k.value for k in node.keywords}["weights_only"]
                safe = getattr(given, "value", None) is True or getattr(given, "id", "") == (
                    "weights_only"
                )
                assert safe, f"{path}:{node.lineno}"
    assert calls >= 3


def test_the_node_work_folder_is_created_private(tmp_path, monkeypatch):
    from scm_bench.runner.storage import workdir, workroot

    monkeypatch.setenv("SCM_BENCH_WORKDIR", str(tmp_path / "node"))
    root = workroot()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert workdir("t1").parent.parent == root


def test_a_node_work_folder_others_can_write_or_own_is_refused(tmp_path, monkeypatch):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(RunError, match=r"other users may write in it \(mode 777\)"):
        private_dir(open_dir, "$SCM_BENCH_WORKDIR")
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(mine).st_uid + 1)
    with pytest.raises(RunError, match="not by you"):
        private_dir(mine, "$SCM_BENCH_WORKDIR")
    link = tmp_path / "link"
    link.symlink_to(open_dir)
    monkeypatch.undo()
    with pytest.raises(RunError, match="symlink"):
        private_dir(link, "$SCM_BENCH_WORKDIR")


def test_a_planted_node_copy_of_a_teacher_is_replaced_by_the_storage_s(tmp_path, monkeypatch):
    from scm_bench.runner.storage import Storage, fetch_teacher, publish_teacher

    monkeypatch.setenv("SCM_BENCH_WORKDIR", str(tmp_path / "node"))
    storage = Storage(str(tmp_path / "storage"))
    trained = tmp_path / "driver" / "teacher-abc"
    finished_teacher(trained, 1.0)
    publish_teacher(storage, trained)
    # Another copy claiming to be the finished teacher, planted in the node folder: a pickle.
    node = tmp_path / "node" / "teachers" / "teacher-abc"
    flag = tmp_path / "payload-ran"
    plant_pickle(node / "checkpoint.pt", flag)
    rundir.write_json(node / "result.json", {"status": "ok", "metrics": {}})

    def must_not_train(folder):
        raise AssertionError("the stored teacher exists; nothing trains")

    local = fetch_teacher(storage, "teacher-abc", must_not_train)
    ckpt, problem = rundir.load_checkpoint_or_none(local / "checkpoint.pt")
    assert problem is None and torch.equal(ckpt["ema"]["w"], torch.ones(2))
    assert not flag.exists()


def test_a_teacher_locked_by_an_unreadable_lock_is_a_one_line_error_not_a_wait(
    tmp_path, monkeypatch
):
    from scm_bench.runner.storage import Storage, fetch_teacher

    monkeypatch.setenv("SCM_BENCH_WORKDIR", str(tmp_path / "node"))
    node = tmp_path / "node" / "teachers" / "teacher-abc"
    node.mkdir(parents=True)
    (node / ".lock").write_text(
        '{"pid": 1, "host": "node-7", "started": "2026-01-01T00:00:00+00:00"}'
    )
    with pytest.raises(RunError, match="teacher teacher-abc: .*another host"):
        fetch_teacher(Storage(str(tmp_path / "storage")), "teacher-abc", lambda f: None)

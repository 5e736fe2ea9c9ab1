"""names: run names cannot escape runs/, and --out refuses folders a run must not write into."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scm_bench.cli import main
from scm_bench.names import RUN_NAME, check_out_dir, run_name_problem

TRICKY = st.text(alphabet="./\\-_ aZ09\n\x00é", max_size=6)
OLD_SPEC_NAME = r"[A-Za-z0-9_.-]+"  # the AblationSpec.name pattern before this check


def test_names_the_old_spec_pattern_let_through_are_refused_in_one_line():
    for bad in ("..", ".", "-rf", "..."):
        assert re.fullmatch(OLD_SPEC_NAME, bad)  # accepted before: runs/.. is the cwd
    assert run_name_problem("..") == (
        "'..' is not a folder name; allowed: 1-100 characters from A-Z a-z 0-9 _ . - "
        "starting with a letter or digit"
    )
    assert run_name_problem("-rf").startswith("'-rf' starts with '-'")
    assert run_name_problem("a/b").startswith("'a/b' contains a path separator")
    assert run_name_problem("x" * 101).startswith("'xxx")
    assert "has 101 characters" in run_name_problem("x" * 101)
    assert run_name_problem("").startswith("'' is empty")
    assert run_name_problem(None).startswith("must be a string, got NoneType")
    assert run_name_problem("tangent_norm-v2.1") is None and run_name_problem("x" * 100) is None


def test_a_spec_name_problem_reaches_the_user_as_one_line(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("name: '-rf'\n")
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {tmp_path / 's.yaml'}: name: '-rf' starts with '-' (it would read as a flag); "
        "allowed: 1-100 characters from A-Z a-z 0-9 _ . - starting with a letter or digit"
    )


@given(TRICKY | st.text(max_size=12) | st.from_regex(RUN_NAME, fullmatch=True))
@example("..")
@example(".")
@example("a/../..")
def test_an_accepted_name_is_a_direct_child_of_its_parent(name):
    parent = Path("/srv/runs")
    problem = run_name_problem(name)
    if problem is None:
        resolved = Path(os.path.normpath(parent / name))
        assert resolved.parent == parent and resolved.name == name
        assert not name.startswith("-")
    else:
        assert "\n" not in problem and "allowed:" in problem


def one_line(problem: str | None) -> str:
    assert problem is not None and "\n" not in problem and problem.startswith("--out: ")
    return problem


@pytest.fixture
def short_tmp():
    """A folder with a short path: the messages shorten paths past 80 characters, and pytest's
    tmp_path is longer under some runners (pytest-xdist adds 'popen-gw1/')."""
    with tempfile.TemporaryDirectory(prefix="scm-", dir="/tmp") as d:
        yield Path(d)


def test_out_through_a_file_or_onto_a_file_is_refused(short_tmp):
    f = short_tmp / "notes.txt"
    f.write_text("x")
    assert one_line(check_out_dir(f / "run")).endswith(
        f"goes through the file '{f}'; give a folder path, e.g. runs/<name>"
    )
    assert "is a file" in one_line(check_out_dir(f))
    assert "goes through the file '/etc/passwd'" in one_line(check_out_dir("/etc/passwd/x"))


def test_out_equal_to_the_cwd_a_parent_of_it_or_home_is_refused(tmp_path, monkeypatch):
    work = tmp_path / "project"
    (work / "runs").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "link").symlink_to(work)
    for bad in (".", "", "runs/..", str(tmp_path), "/", str(tmp_path / "link")):
        assert one_line(check_out_dir(bad))
    assert "current folder or one of its parents" in check_out_dir("runs/..")
    assert "home folder" in one_line(check_out_dir(tmp_path / "home"))
    assert check_out_dir("runs/demo") is None  # new folder inside the cwd
    assert check_out_dir("runs") is None  # existing writable folder inside the cwd
    assert check_out_dir(tmp_path / "home" / "runs" / "demo") is None


def expected_unwritable(locked: Path) -> str:
    return (
        f"--out: '{locked / 'a' / 'run'}': cannot write to its nearest existing parent "
        f"'{locked}'; give a folder you can write"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_under_a_folder_we_cannot_write_is_refused(short_tmp):
    locked = short_tmp / "locked"
    locked.mkdir(mode=0o555)
    assert check_out_dir(locked / "a" / "run") == expected_unwritable(locked)


def test_out_under_a_folder_the_os_says_is_not_writable_is_refused(short_tmp, monkeypatch):
    """The same check where the tests run as root: os.access answers for the folder asked."""
    locked = short_tmp / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: Path(p) != locked and real_access(p, mode)
    )
    assert check_out_dir(locked / "a" / "run") == expected_unwritable(locked)
    assert check_out_dir(short_tmp / "free" / "run") is None


def test_unusable_paths_are_refused_not_raised():
    assert "embedded null byte" in one_line(check_out_dir("runs/a\x00b"))
    assert "File name too long" in one_line(check_out_dir("/tmp/" + "a" * 5000))
    assert "(5,005 chars)" in check_out_dir("/tmp/" + "a" * 5000)  # the path is not echoed

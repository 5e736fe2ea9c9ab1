"""safe_files: a damaged run-folder file is read correctly or reported in one line, never raised."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scm_bench.safe_files import (
    atomic_torch_save,
    atomic_write_text,
    load_checkpoint_or_none,
    quarantine,
    read_csv_or_none,
    read_json_or_none,
)

ROOT = Path(__file__).resolve().parent.parent
TMP = dict(suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)


def is_problem(problem: str | None, path: Path) -> bool:
    return problem is not None and "\n" not in problem and problem.startswith(f"{path}: ")


@settings(max_examples=100, **TMP)
@given(st.dictionaries(st.text(max_size=5), JSON), st.booleans(), st.booleans(), st.data())
def test_any_truncation_of_a_json_file_is_read_whole_or_reported_as_truncated(
    tmp_path, obj, indent, ascii_only, data
):
    path = tmp_path / "result.json"
    full = (json.dumps(obj, indent=2 if indent else None, ensure_ascii=ascii_only) + "\n").encode()
    cut = data.draw(st.integers(0, len(full)), label="bytes kept")
    path.write_bytes(full[:cut])
    value, problem = read_json_or_none(path)
    if cut >= len(full) - 1:  # whole, or only the final newline lost
        assert (value, problem) == (obj, None)
    else:
        assert value is None and is_problem(problem, path)
        assert "truncated" in problem or "empty file" in problem, problem


def test_a_cut_inside_infinity_or_nan_is_truncated_not_foreign(tmp_path):
    """Python's json writes -Infinity / NaN; a file cut inside one is truncated (found by the
    property above: cut after '-Inf' it used to read as 'not JSON')."""
    path = tmp_path / "result.json"
    full = json.dumps({"a": [float("-inf"), float("nan")]})
    for cut in range(1, len(full) - 1):
        path.write_text(full[:cut])
        assert "truncated" in read_json_or_none(path)[1], full[:cut]


def test_json_problems_name_the_file_and_what_is_wrong(tmp_path):
    path = tmp_path / "result.json"
    for text, says in [
        ("{x}", "not JSON (line 1, column 2: Expecting property name"),
        ("[1, 2]", "top level is a list; expected an object"),
        ("[" * 100_000, "not readable JSON (RecursionError"),
        ('{"a": 1}}', "not JSON (line 1, column 9: Extra data)"),
    ]:
        path.write_text(text)
        value, problem = read_json_or_none(path)
        assert value is None and is_problem(problem, path) and says in problem, problem
    path.write_bytes(b'{"a": "\xff"}')
    assert "not UTF-8 text (byte 7" in read_json_or_none(path)[1]
    assert read_json_or_none(tmp_path / "missing.json") == (None, None)
    assert read_json_or_none(tmp_path)[1] == f"{tmp_path}: is a folder; expected a file"
    path.write_text("[1, 2]")
    assert read_json_or_none(path, expect=list) == ([1, 2], None)


# No bare carriage return: csv.writer(lineterminator="\n"), as pandas writes, leaves '\r' unquoted
# and every CSV reader takes it for a line end (our columns and values never hold one).
FIELD = st.text(st.characters(exclude_characters="\x00\r", exclude_categories=["Cs"]), max_size=6)


@settings(max_examples=200, **TMP)
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.lists(FIELD.filter(bool), min_size=n, max_size=n, unique=True),
    st.lists(st.lists(FIELD, min_size=n, max_size=n), max_size=5),
)), st.data())  # fmt: skip
def test_any_truncation_of_a_csv_file_reads_whole_rows_or_is_reported(tmp_path, table, data):
    header, rows = table
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])  # as pandas writes
    full = buf.getvalue().encode()
    cut = data.draw(st.integers(0, len(full)), label="bytes kept")
    path = tmp_path / "results.csv"
    path.write_bytes(full[:cut])
    got, problem = read_csv_or_none(path)
    expected = [dict(zip(header, r, strict=True)) for r in rows]
    if problem is None:
        # Only a cut exactly at the end of a row goes unnoticed: a prefix of whole rows.
        assert got == expected[: len(got)]
        assert full[:cut].endswith(b"\n")
    else:
        assert got is None and is_problem(problem, path)
    if cut == len(full):
        assert (got, problem) == (expected, None)
    if not full[:cut].endswith(b"\n"):
        assert problem is not None  # every mid-line cut is caught


def test_csv_cut_mid_line_says_how_many_fields_the_line_kept(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("trial_id,status,loss\nt1,ok,0.5\nt2,fai")
    assert read_csv_or_none(path) == (
        None,
        f"{path}: cut mid-line (line 3 has 2 of 3 fields and no newline; "
        "cut off when it was written?)",
    )
    path.write_text("")
    assert (
        read_csv_or_none(path)[1] == f"{path}: empty file (0 bytes; cut off when it was written?)"
    )
    path.write_text("a,b\n1,2,3\n4,5\n")
    assert read_csv_or_none(path)[1] == f"{path}: line 2 has 3 fields; the header has 2"


def checkpoint() -> dict:
    torch.manual_seed(0)
    return {"step": 7, "net": {"w": torch.randn(5, 3)}, "rng": torch.get_rng_state(),
            "window": {"sums": {"loss": 1.5}, "n": 2}, "adaptive": None}  # fmt: skip


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_any_truncation_of_a_checkpoint_is_reported_not_raised(tmp_path, zipped):
    path = tmp_path / "checkpoint.pt"
    torch.save(checkpoint(), path, _use_new_zipfile_serialization=zipped)
    full = path.read_bytes()

    @settings(max_examples=80, deadline=None)
    @given(st.integers(0, len(full) - 1))
    def truncated(cut):
        path.write_bytes(full[:cut])
        with pytest.raises(Exception):  # noqa: B017  what torch.load does with such a file
            torch.load(path, weights_only=True)
        value, problem = load_checkpoint_or_none(path)
        assert value is None and is_problem(problem, path), problem
        assert "empty file" in problem or "truncated or corrupt" in problem

    truncated()
    path.write_bytes(full)
    value, problem = load_checkpoint_or_none(path)
    assert problem is None and same(value, checkpoint())


def test_checkpoint_of_garbage_or_foreign_objects_is_reported(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"\x00garbage" * 100)
    assert "not a readable checkpoint (800 bytes" in load_checkpoint_or_none(path)[1]
    torch.save({"cls": io.StringIO}, path)  # loading it would import and run arbitrary code
    assert (
        "load it with weights_only=False only if you trust it" in (load_checkpoint_or_none(path)[1])
    )
    torch.save([1, 2], path)
    assert load_checkpoint_or_none(path)[1] == f"{path}: holds a list; expected a checkpoint dict"
    assert load_checkpoint_or_none(tmp_path / "none.pt") == (None, None)


def test_quarantine_moves_aside_without_deleting_or_overwriting(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("{trunc")
    first = quarantine(path)
    assert first == tmp_path / "result.json.damaged-1" and first.read_text() == "{trunc"
    assert not path.exists()
    path.write_text("{again")
    second = quarantine(path)
    assert second.name == "result.json.damaged-2" and second.read_text() == "{again"
    assert first.read_text() == "{trunc"
    folder = tmp_path / "trial"
    (folder / "x").mkdir(parents=True)
    assert quarantine(folder) == tmp_path / "trial.damaged-1" and (tmp_path / "trial.damaged-1/x")


def test_atomic_writes_leave_the_old_file_and_no_temp_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save(path, {"step": 1})
    atomic_write_text(tmp_path / "result.json", '{"status": "ok"}\n')

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_torch_save(path, {"step": 2, "bad": Unpicklable()})
    assert load_checkpoint_or_none(path) == ({"step": 1}, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "result.json"]


WRITER = """
import sys
from scm_bench.safe_files import atomic_write_text
path, tag = sys.argv[1], sys.argv[2]
for i in range(40):
    atomic_write_text(path, f"{tag}{i:03d}" + tag * 200_000 + "\\n")
"""


def test_concurrent_writers_never_show_a_reader_a_partial_file(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_text(path, "A000" + "A" * 200_000 + "\n")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag], cwd=ROOT) for tag in "BC"
    ]
    reads = 0
    while any(p.poll() is None for p in procs) or reads == 0:
        text = path.read_text()
        tag = text[0]
        assert text == f"{text[:4]}{tag * 200_000}\n", "a reader saw a partial or mixed file"
        reads += 1
        time.sleep(0.001)
    assert [p.wait() for p in procs] == [0, 0]
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp files left

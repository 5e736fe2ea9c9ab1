"""A careless user's inputs: out-of-range settings, huge spec files and damaged or foreign run
folders given to `report` are one line each (exit 2), or warnings, never a traceback; `report`
changes nothing it reads."""

from __future__ import annotations

import shutil
import tracemalloc

import pytest
from conftest import ROOT

from scm_bench.cli import main
from scm_bench.safe_files import read_text_bounded
from scm_bench.safe_yaml import MAX_YAML_CHARS, YamlLoadError

QUICKSTART = str(ROOT / "ablations" / "quickstart.yaml")


def cli(args: list[str], capsys) -> tuple[int, list[str]]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, [ln for ln in (out.out + out.err).splitlines() if ln.strip()]


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("seeds=[18446744073709551616]", "seeds[0]"),
        ("train.steps=100000000000", "train.steps"),
        ("teacher.steps=100000000000", "teacher.steps"),
        ("eval.n_samples=999999999", "eval.n_samples"),
    ],
)
def test_out_of_range_settings_are_refused_by_validate(setting, field, capsys):
    rc, lines = cli(["validate", QUICKSTART, "--set", setting], capsys)
    assert rc == 2 and len(lines) == 1 and field in lines[0] and "less than or equal" in lines[0]


def test_a_huge_spec_file_is_refused_without_reading_it(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:  # 400 MB, sparse: reading it whole would take that memory
        fh.truncate(400 * 2**20)
    tracemalloc.start()
    with pytest.raises(YamlLoadError, match="larger than 1,000,000 bytes"):
        read_text_bounded(big, str(big))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * MAX_YAML_CHARS
    rc, lines = cli(["validate", str(big)], capsys)
    assert rc == 2 and len(lines) == 1 and "larger than" in lines[0]


@pytest.fixture
def run_copy(quickstart_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(quickstart_run[0], run_dir)
    return run_dir


def test_report_refuses_a_folder_named_report_html_in_one_line(run_copy, capsys):
    shutil.rmtree(run_copy / "report")
    (run_copy / "report.html").unlink()
    (run_copy / "report.html").mkdir()
    rc, lines = cli(["report", str(run_copy)], capsys)
    assert rc == 2 and lines == [
        f"error: {run_copy / 'report.html'}: is not a file the report can replace; "
        "move it away first"
    ]
    assert (run_copy / "report.html").is_dir() and not (run_copy / "report").exists()


def test_report_on_a_foreign_results_csv_warns_and_rebuilds_the_rows(run_copy, capsys):
    (run_copy / "results.csv").write_text("a,b\n1,2\n")
    rc, lines = cli(["report", str(run_copy)], capsys)
    assert rc == 0 and any(ln.startswith("warning:") and "no trial_id column" in ln for ln in lines)
    assert (run_copy / "results.csv").read_text() == "a,b\n1,2\n"


def test_report_reads_without_renaming_and_says_what_it_could_not_read(run_copy, capsys):
    text = (run_copy / "results.csv").read_text()
    (run_copy / "results.csv").write_text(text[: len(text) // 2])  # cut: rows from result.json
    trial = sorted((run_copy / "trials").iterdir())[0]
    (trial / "result.json").write_text('{"stat')
    (run_copy / "run.json").write_text("{bad")
    rc, lines = cli(["report", str(run_copy)], capsys)
    assert rc == 0 and (trial / "result.json").read_text() == '{"stat'
    assert not list(trial.glob("result.json.damaged-*"))
    warnings = "\n".join(ln for ln in lines if ln.startswith("warning:"))
    assert "result.json: truncated JSON" in warnings and "left as it is" in warnings
    assert "run.json: not JSON" in warnings and "redone" not in warnings
    shutil.rmtree(run_copy / "trials")
    rc, lines = cli(["report", str(run_copy)], capsys)
    assert rc == 0 and any("`trials/` is missing" in ln for ln in lines)

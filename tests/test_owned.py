"""The tool writes only in folders it marked as its own, and never removes a file it did not
write: `run --out`, `train --out` and `publish --to` refuse a folder of someone else's files
in one line (exit 2) with nothing changed; publishing merges into its own folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from scm_bench.cli import main
from scm_bench.owned import MARKER
from scm_bench.report.index import END, START

QUICKSTART = str(ROOT / "ablations" / "quickstart.yaml")


def cli(args: list[str], capsys) -> tuple[int, list[str]]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, [ln for ln in (out.out + out.err).splitlines() if ln.strip()]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what 'nothing changed' compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def user_folder(folder: Path, names=("report.md", "report.html", "results.csv", "run.json",
                                     "spec.yaml", "notes.txt")) -> Path:  # fmt: skip
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text(f"the user's {name}\n")
    return folder


def fake_run(folder: Path, text: str = "# quickstart\n") -> Path:
    """A run folder with a report (what publish copies)."""
    (folder / "report").mkdir(parents=True)
    (folder / "report.md").write_text(text)
    (folder / "report" / "fig.png").write_bytes(b"png")
    summary = {"name": folder.name, "description": "d", "counts": {"ok": 1}, "verdicts": {},
               "claims": []}  # fmt: skip
    (folder / "report" / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.mark.parametrize("cmd", ["run", "train"])
def test_out_into_a_folder_of_user_files_is_refused_with_nothing_changed(cmd, tmp_path, capsys):
    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    rc, lines = cli([cmd, QUICKSTART, "--out", str(out), "--set", "train.steps=2"], capsys)
    assert rc == 2 and len(lines) == 1, lines
    assert f"no {MARKER} marker" in lines[0] and "nothing was changed" in lines[0]
    assert snapshot(out) == before


def test_out_under_proc_is_one_line_exit_2(capsys):
    for args in (["train", QUICKSTART, "--out", "/proc/x"], ["publish", "--to", "/proc/x"]):
        rc, lines = cli(args, capsys)
        assert rc == 2 and len(lines) == 1 and "/proc/x" in lines[0], lines


def test_publish_refuses_a_foreign_folder_before_writing_anything(tmp_path, capsys):
    run = fake_run(tmp_path / "runs" / "quickstart")
    reports = tmp_path / "reports"
    user_folder(reports / "quickstart", ("notes.txt",))
    (reports / "quickstart" / "report").mkdir()
    (reports / "quickstart" / "report" / "mine.png").write_bytes(b"mine")
    (reports / "index.md").write_text("the user's index\n")
    before = snapshot(reports)
    rc, lines = cli(["publish", str(run), "--to", str(reports)], capsys)
    assert rc == 2 and len(lines) == 1 and f"no {MARKER} marker" in lines[0], lines
    assert snapshot(reports) == before


def test_publish_merges_into_its_own_folder_and_keeps_the_user_s_files(tmp_path, capsys):
    run = fake_run(tmp_path / "runs" / "quickstart")
    reports = tmp_path / "reports"
    assert cli(["publish", str(run), "--to", str(reports)], capsys)[0] == 0
    dest = reports / "quickstart"
    (dest / "notes.txt").write_text("mine\n")
    (dest / "report" / "mine.png").write_bytes(b"mine")
    (run / "report.md").write_text("# quickstart, re-run\n")
    assert cli(["publish", str(run), "--to", str(reports)], capsys)[0] == 0
    assert (dest / "notes.txt").read_text() == "mine\n"
    assert (dest / "report" / "mine.png").read_bytes() == b"mine"
    assert (dest / "report.md").read_text() == "# quickstart, re-run\n"  # ours: replaced
    assert (dest / "report" / "fig.png").read_bytes() == b"png"


def test_a_readme_without_markers_is_refused_before_anything_is_published(tmp_path, capsys):
    run = fake_run(tmp_path / "runs" / "quickstart")
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    rc, lines = cli(["publish", str(run), "--to", str(tmp_path / "reports"), "--readme",
                     str(readme)], capsys)  # fmt: skip
    assert rc == 2 and len(lines) == 1 and "no scoreboard markers" in lines[0]
    assert not (tmp_path / "reports").exists()
    readme.write_text(f"# with markers\n{START}\n{END}\n")
    rc, _ = cli(["publish", str(run), "--to", str(tmp_path / "reports"), "--readme",
                 str(readme)], capsys)  # fmt: skip
    assert rc == 0 and (tmp_path / "reports" / "quickstart" / "report.md").exists()


def test_the_repo_s_reports_are_marked_as_the_tool_s():
    """`scm-bench publish RUN --to reports` merges into the committed reports."""
    from scm_bench.owned import marker_kind

    reports = ROOT / "reports"
    assert marker_kind(reports) == "reports"
    for folder in (p for p in reports.iterdir() if (p / "report.md").is_file()):
        assert marker_kind(folder) == "report", folder


def test_an_empty_marker_hands_a_folder_of_an_earlier_version_over(tmp_path, capsys):
    from scm_bench.owned import claim, marker_kind

    old_run = user_folder(tmp_path / "old", ("trials.json", "spec.yaml"))
    rc, lines = cli(["publish", "--to", str(old_run)], capsys)
    assert rc == 2 and f"an empty {MARKER} file in it hands it over" in lines[0]
    (old_run / MARKER).touch()
    assert claim(old_run, "run", "--out") == old_run and marker_kind(old_run) == "run"

"""Copy a run's report into a reports folder (e.g. the repo's reports/) and rebuild its index.

Publishing merges: a reports folder and each published report in it carry the tool's marker
(``owned.py``); the tool replaces only the files it writes there and never removes one, so a
user's notes beside a report stay. Every folder and the README are checked before anything
is written: a refusal changes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scm_bench.errors import RunError
from scm_bench.owned import check_claim, claim
from scm_bench.report import history
from scm_bench.report.index import END, START, update_readme, write_index
from scm_bench.safe_yaml import excerpt

FILES = ("report.md", "report.html", "results.csv", "spec.yaml")


def check_publish(run_dir: Path, reports_dir: Path) -> Path:
    """Where ``run_dir``'s report would go; a one-line RunError (nothing written) when the run
    has no report or that folder is not the tool's."""
    run_dir = Path(run_dir)
    if not (run_dir / "report.md").is_file():
        raise RunError(f"{run_dir}: no report.md; run `scm-bench report {run_dir}` first")
    dest = Path(reports_dir) / run_dir.name
    check_claim(dest, "report", "--to")
    return dest


def publish(run_dir: Path, reports_dir: Path) -> Path:
    """reports_dir/<run name>/ gets the report, its figures, the results table and the spec,
    merged into what is there (nothing removed)."""
    run_dir, reports_dir = Path(run_dir), Path(reports_dir)
    claim(reports_dir, "reports", "--to")
    dest = claim(check_publish(run_dir, reports_dir), "report", "--to")
    for name in FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    if (run_dir / "report").is_dir():
        shutil.copytree(run_dir / "report", dest / "report", dirs_exist_ok=True)
    write_index(reports_dir)
    return dest


def check_readme(readme: Path) -> None:
    """A one-line RunError unless ``readme`` is a file with both scoreboard markers."""
    try:
        text = Path(readme).read_text(encoding="utf-8") if Path(readme).is_file() else None
    except (OSError, UnicodeDecodeError):
        text = None
    if text is None or START not in text or END not in text:
        raise RunError(f"--readme {excerpt(str(readme), 120)}: no scoreboard markers; add the "
                       f"two lines {START!r} and {END!r} where the table goes")  # fmt: skip


def publish_all(run_dirs, reports_dir: Path, readme: str | None = None, echo=print) -> None:
    """`scm-bench publish`: publish each run, rebuild the index (the scoreboard first), and
    write the scoreboard into ``readme`` between its markers when one is given. Every check
    comes first, so a refused folder or README leaves everything as it was."""
    if readme:
        check_readme(Path(readme))
    check_claim(reports_dir, "reports", "--to")
    for run_dir in run_dirs:
        check_publish(Path(run_dir), reports_dir)
    claim(reports_dir, "reports", "--to")
    published = []
    for run_dir in run_dirs:
        published.append(publish(Path(run_dir), reports_dir))
        echo(f"published {published[-1]}")
    for problem in history.refresh(reports_dir, published):  # scoreboard alpha, histories
        echo(f"warning: {problem}")
    index, _ = write_index(reports_dir)
    echo(f"index: {index}")
    if readme:
        echo(f"scoreboard: {update_readme(Path(readme), reports_dir)}")

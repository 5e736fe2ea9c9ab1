"""Copy a run's report into a reports folder (e.g. the repo's reports/) and rebuild its index."""

from __future__ import annotations

import shutil
from pathlib import Path

from scm_bench.errors import RunError
from scm_bench.report import history
from scm_bench.report.index import update_readme, write_index

FILES = ("report.md", "report.html", "results.csv", "spec.yaml")


def publish(run_dir: Path, reports_dir: Path) -> Path:
    """reports_dir/<run name>/ gets the report, its figures, the results table and the spec."""
    run_dir, reports_dir = Path(run_dir), Path(reports_dir)
    if not (run_dir / "report.md").exists():
        raise RunError(f"{run_dir}: no report.md; run `scm-bench report {run_dir}` first")
    dest = reports_dir / run_dir.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    shutil.copytree(run_dir / "report", dest / "report")
    write_index(reports_dir)
    return dest


def publish_all(run_dirs, reports_dir: Path, readme: str | None = None, echo=print) -> None:
    """`scm-bench publish`: publish each run, rebuild the index (the scoreboard first), and
    write the scoreboard into ``readme`` between its markers when one is given."""
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

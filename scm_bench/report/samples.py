"""Sample grids per variant: the first ok seed's ``samples_<sampler>.png`` (and the teacher's).

Grids are copied into ``report/samples/`` so the Markdown report and its folder can be moved
(e.g. into ``reports/``) without breaking its links.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from scm_bench import rundir
from scm_bench.report.load import Run

GRID = re.compile(r"^samples_(?P<sampler>.+)\.png$")


def sampler_order(sampler: str) -> tuple:
    """1step < 2step < ... < other names < teacher."""
    m = re.fullmatch(r"(\d+)step", sampler)
    if m:
        return (0, int(m.group(1)), sampler)
    return (2 if sampler == "teacher" else 1, 0, sampler)


def teacher_grid(run: Run, row: pd.Series) -> Path | None:
    """The teacher's grid of a student: in its trial dir, or the teacher cache next to the run."""
    trial_dir = run.trial_dir(row["trial_id"])
    candidates = [trial_dir / "teacher" / "samples_teacher.png"]
    if isinstance(row.get("teacher_dir"), str):  # the runner records the cache it used
        candidates.append(Path(row["teacher_dir"]) / "samples_teacher.png")
    teacher = row.get("teacher_id")
    if isinstance(teacher, str) and teacher:
        for cache in (run.dir / "_teachers", run.dir / "teachers", run.dir.parent / "_teachers"):
            candidates.append(cache / teacher / "samples_teacher.png")
    return next((p for p in candidates if p.is_file()), None)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:60] or "variant"


def collect_grids(run: Run, out_dir: Path) -> tuple[list[dict], list[str]]:
    """([{variant, trial_id, seed, images: [{sampler, path}]}], notes on missing grids).

    Each image is copied to ``out_dir`` as ``<variant index>_<variant>_<sampler>.png``.
    """
    entries, notes = [], []
    for index, variant in enumerate(run.variants):
        ok = run.results[(run.results["variant"] == variant) & (run.results["status"] == rundir.OK)]
        if ok.empty:
            notes.append(f"No sample grids for `{variant}`: no trial finished ok.")
            continue
        row = ok.iloc[0]  # rows are sorted by seed: the first ok seed
        found = {}
        for path in sorted(run.trial_dir(row["trial_id"]).glob("samples_*.png")):
            found[GRID.match(path.name)["sampler"]] = path
        if "teacher" not in found and (teacher := teacher_grid(run, row)) is not None:
            found["teacher"] = teacher
        if not found:
            notes.append(f"No sample grids for `{variant}`: none in `trials/{row['trial_id']}/`.")
            continue
        images = []
        for sampler in sorted(found, key=sampler_order):
            out_dir.mkdir(parents=True, exist_ok=True)
            dest = out_dir / f"{index:02d}_{slug(variant)}_{slug(sampler)}.png"
            shutil.copyfile(found[sampler], dest)
            images.append({"sampler": sampler, "path": dest})
        entries.append(
            {"variant": variant, "trial_id": row["trial_id"], "seed": row["seed"], "images": images}
        )
    return entries, notes

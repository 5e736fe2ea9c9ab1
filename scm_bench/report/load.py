"""Read a run directory (layout: docs/run-layout.md) into one tidy table of trials.

Everything a report needs is loaded here, once: the resolved ablation spec, the expanded
trials, one row per trial, and per-trial histories. Partial runs are expected: a trial that
has no row yet is added as ``pending``, missing columns are added empty, and every gap is
recorded in ``Run.missing`` so the report can say what it could not show.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scm_bench import rundir
from scm_bench.errors import RunError
from scm_bench.safe_files import read_csv_text_or_none, read_json_or_none
from scm_bench.safe_yaml import YamlLoadError, load_yaml

# Bookkeeping columns of results.csv (docs/run-layout.md); everything else numeric is a metric.
ID_COLUMNS = (
    "trial_id",
    "spec",
    "variant",
    "seed",
    "method",
    "status",
    "steps_done",
    "diverged_step",
    "diverged_what",
    "error",
    "teacher_id",
    "teacher_dir",
    "device",
    "commit",
    "n_samples",
)
log = logging.getLogger("scm_bench")
REQUIRED = ("trial_id", "variant", "seed", "status", "diverged_step", "diverged_what", "error")
OUTCOME_DETAILS = ("error",)  # results.csv has it only when some trial failed


@dataclass
class Run:
    dir: Path
    spec: dict  # spec.yaml as written by the runner ({} when absent)
    trials: list[dict]  # trials.json entries ([] when absent)
    results: pd.DataFrame  # one row per trial, sorted by variant order, seed, trial id
    axes: list[str]  # axis columns (dotted paths), in spec order
    variants: list[str]  # variant names in spec order
    baseline: str | None  # the variant differences are measured against
    missing: list[str] = field(default_factory=list)  # what the report cannot show, and why
    info: dict = field(default_factory=dict)  # run.json written by the runner (invocations)

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.dir.name)

    def trial_dir(self, trial_id: str) -> Path:
        return self.dir / "trials" / str(trial_id)


def _read_yaml(path: Path, missing: list[str]) -> dict:
    if not path.exists():
        missing.append(f"`{path.name}` is missing: spec name, description and settings unknown.")
        return {}
    try:
        data = load_yaml(path.read_text(errors="replace"), str(path))
    except YamlLoadError as err:
        missing.append(f"`{path.name}` is unreadable ({err}): spec settings unknown.")
        return {}
    return data if isinstance(data, dict) else {}


def _read_trials(path: Path, missing: list[str]) -> list[dict]:
    trials, problem = read_json_or_none(path, expect=list)
    if trials is None:
        why = problem or f"`{path.name}` is missing"
        missing.append(f"{why}: trials without a row cannot be listed.")
        return []
    return [t for t in trials if isinstance(t, dict) and isinstance(t.get("trial_id"), str)]


def _row_from_result(trial: dict, trial_dir: Path) -> dict:
    """A results row rebuilt from a trials.json entry and the trial's result.json."""
    method = (trial.get("spec") or {}).get("method")
    return rundir.trial_row(
        trial["trial_id"], trial.get("variant"), trial.get("seed"), method,
        trial.get("axes") or {}, trial_dir, set_aside=False,
    )  # fmt: skip


def _status(run_dir: Path, trial_id: str) -> str:
    """A trial's status from its result.json; 'pending' while it has none."""
    result = rundir.trial_outcome(run_dir / "trials" / trial_id, set_aside=False)
    return str(result.get("status", rundir.PENDING)) if result else rundir.PENDING


def listing(ids: list[str], limit: int = 12) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def _axes(spec: dict, trials: list[dict], columns) -> list[str]:
    names = list(spec.get("axes") or {})
    for group in spec.get("zip") or []:
        names += [n for n in group if n not in names]
    for trial in trials:
        names += [n for n in trial.get("axes") or {} if n not in names]
    return [n for n in names if n in columns]


def _variant_name(row: pd.Series, axes: list[str]) -> str:
    return ",".join(f"{a}={row[a]}" for a in axes) if axes else "base"


def _same(a, b) -> bool:
    """Axis values from YAML and from a CSV cell compare equal (1e-3 == '0.001', True == 'True')."""
    try:
        return math.isclose(float(a), float(b))
    except (TypeError, ValueError):
        return str(a).strip().lower() == str(b).strip().lower()


def _baseline(spec: dict, results: pd.DataFrame, axes: list[str], variants: list[str]):
    wanted = spec.get("baseline") or {}
    for variant in variants:
        rows = results[results["variant"] == variant]
        if wanted and all(
            k in rows and len(rows) and _same(rows[k].iloc[0], v) for k, v in wanted.items()
        ):
            return variant
    return variants[0] if variants else None  # no baseline given: the spec's first variant


def check_report_targets(run_dir: Path) -> None:
    """A one-line RunError, before the run is read, when report.md or report.html exists but
    is not a plain file (a folder, a link) or report/ is not a folder: writing the report
    would fail halfway or write through the link."""
    for name in ("report.md", "report.html"):
        path = Path(run_dir) / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise RunError(f"{path}: is not a file the report can replace; move it away first")
    out = Path(run_dir) / "report"  # its figures' folder (folder.fresh_report_dir checks more)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise RunError(f"{out}: exists and is not a folder; move it away to write the report")


def report_writer(write):
    """Decorator of ``write_report(run_dir, ...)``: the report's own files are checked first
    (``check_report_targets``), and the run is only read (``rundir.reading``: a damaged
    result.json is reported, never moved aside, by every part of the report)."""

    @functools.wraps(write)
    def checked(run_dir, *args, **kwargs):
        check_report_targets(run_dir)
        with rundir.reading():
            return write(run_dir, *args, **kwargs)

    return checked


def load_run(run_dir: Path) -> Run:
    """The run directory as a :class:`Run`; never fails on a partial run, records gaps."""
    run_dir = Path(run_dir)
    missing: list[str] = []
    spec = _read_yaml(run_dir / "spec.yaml", missing)
    trials = _read_trials(run_dir / "trials.json", missing)

    # One row per trial: results.csv, else rebuilt from each trial's result.json.
    csv = run_dir / "results.csv"
    rows, text, problem = read_csv_text_or_none(csv)  # read once: checked, then typed
    if rows and "trial_id" not in rows[0]:
        rows, problem = None, f"{csv}: no trial_id column; not a results table of scm-bench"
    if rows:
        results = pd.read_csv(io.StringIO(text), dtype={"trial_id": str})
    else:
        why = problem or ("`results.csv` has no rows" if rows == [] else "`results.csv` is missing")
        missing.append(f"{why}: rows rebuilt from `trials/*/result.json`.")
        results = pd.DataFrame(
            [_row_from_result(t, run_dir / "trials" / t["trial_id"]) for t in trials]
        )
    unread = list(missing)  # so far: spec.yaml, trials.json, results.csv
    if "trial_id" not in results:
        results["trial_id"] = pd.Series(dtype=object)
    known = set(results["trial_id"].astype(str))
    extra = [
        _row_from_result(t, run_dir / "trials" / t["trial_id"])
        for t in trials
        if t["trial_id"] not in known
    ]
    if extra:
        results = pd.concat([results, pd.DataFrame(extra)], ignore_index=True)
    absent = [c for c in REQUIRED if c not in results]
    lacking = [c for c in absent if c not in OUTCOME_DETAILS]
    if lacking and csv.exists():
        missing.append(f"`results.csv` has no column {', '.join(f'`{c}`' for c in lacking)}.")
    if absent:  # one concat, not one insert per column (pandas warns of a fragmented frame)
        empty = pd.DataFrame(dict.fromkeys(absent), index=results.index, dtype=object)
        results = pd.concat([results, empty], axis=1)
    results["trial_id"] = results["trial_id"].astype(str)
    no_status = results["status"].isna()
    results.loc[no_status, "status"] = [_status(run_dir, t) for t in results["trial_id"][no_status]]
    results["status"] = results["status"].astype(str)
    results["error"] = results["error"].astype(object).where(results["error"].notna(), None)

    # Variants in spec order (trials.json order, then any others sorted), rows sorted within.
    axes = _axes(spec, trials, results.columns)
    unnamed = results["variant"].isna()
    results.loc[unnamed, "variant"] = [
        _variant_name(r, axes) for _, r in results[unnamed].iterrows()
    ]
    results["variant"] = results["variant"].astype(str)
    order = list(dict.fromkeys(str(t.get("variant")) for t in trials if t.get("variant")))
    order += sorted(set(results["variant"]) - set(order))
    variants = [v for v in order if v in set(results["variant"])]
    rank = {v: i for i, v in enumerate(variants)}
    results = results.copy()  # one block per dtype again after the column-wise fixes above
    results = results.assign(_rank=results["variant"].map(rank))
    results = results.sort_values(["_rank", "seed", "trial_id"], kind="stable")
    results = results.drop(columns="_rank").reset_index(drop=True)

    pending = results.loc[results["status"] == rundir.PENDING, "trial_id"].tolist()
    if pending:
        missing.append(f"{len(pending)} trial(s) pending (no outcome yet): {listing(pending)}.")
    started = results.loc[results["status"].isin(rundir.FINISHED), "trial_id"]
    no_history = [t for t in started if not (run_dir / "trials" / t / "history.jsonl").exists()]
    if no_history:
        missing.append(f"No `history.jsonl` (no training curves) for: {listing(no_history)}.")
    baseline = _baseline(spec, results, axes, variants)
    info, problem = read_json_or_none(run_dir / "run.json")
    after = len(missing)
    if problem:
        missing.append(f"{problem}: the run's wall time is unknown.")
    if not (run_dir / "trials").is_dir():
        missing.append("`trials/` is missing: no histories, sample grids or trial outcomes.")
    for note in unread + missing[after:]:  # files it could not read: said on the command line
        log.warning("%s", note)
    return Run(run_dir, spec, trials, results, axes, variants, baseline, missing, info or {})


def load_histories(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, tbins): history rows of ok/diverged trials, long format, non-finite as NaN.

    curves: trial_id, variant, seed, step, <every scalar history field>
    tbins:  trial_id, variant, seed, step, bin, g_norm   (``g_norm_tbin`` unrolled)
    """
    curves, tbins = [], []
    key_cols = ["trial_id", "variant", "seed"]
    started = run.results[run.results["status"].isin(rundir.FINISHED)]
    for _, trial in started.iterrows():
        key = {"trial_id": trial["trial_id"], "variant": trial["variant"], "seed": trial["seed"]}
        for row in rundir.read_history(run.trial_dir(trial["trial_id"]) / "history.jsonl"):
            scalars = {k: v for k, v in row.items() if isinstance(v, int | float | None)}
            curves.append(key | scalars)
            for b, value in enumerate(row.get("g_norm_tbin") or []):
                tbins.append(key | {"step": row.get("step"), "bin": b, "g_norm": value})
    curves_df = pd.DataFrame(curves) if curves else pd.DataFrame(columns=[*key_cols, "step"])
    tbins_df = pd.DataFrame(tbins, columns=[*key_cols, "step", "bin", "g_norm"])
    for df in (curves_df, tbins_df):
        num = df.select_dtypes("number").columns
        df[num] = df[num].where(df[num].abs() < float("inf"))  # inf -> NaN
    return curves_df, tbins_df

"""One experiment per run folder: its plan (spec.yaml, trials.json) and its invocations (run.json).

A folder's trials are fixed by its first invocation. A re-run whose resolved trials differ (a
changed setting, axis or seed) is refused in one line naming the differing settings, so one
results table and report never mix two configurations. ``spec.yaml`` records the settings the
trials run with, ``--set`` overrides included. ``run.json`` lists every invocation from its
start: ``running`` until it ends, then ``finished`` or ``interrupted``, with its wall time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from scm_bench import rundir
from scm_bench.errors import RunError
from scm_bench.safe_files import atomic_write_text, read_json_or_none, read_text_bounded
from scm_bench.safe_yaml import YamlLoadError, excerpt, load_yaml
from scm_bench.spec import AblationSpec, Trial, TrialSpec
from scm_bench.train.provenance import package_commit

SHOWN = 5  # differing settings named in a refusal


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted path: leaf value} of nested dicts (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out |= flat(value, f"{prefix}{key}.")
    return out


def nest(paths: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``flat``."""
    out: dict[str, Any] = {}
    for path, value in paths.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def varied(spec: AblationSpec) -> set[str]:
    """Settings that differ between trials by design: axes, zipped settings, search, seed."""
    paths = set(spec.axes) | {p for group in spec.zip for p in group} | {"seed"}
    return paths | set(spec.search.params if spec.search else ())


def shared_settings(spec: AblationSpec, trial_spec: dict) -> dict[str, Any]:
    """{path: value} of a resolved trial that every trial shares and that is not a default."""
    default = flat(TrialSpec().model_dump(mode="json"))
    skip = varied(spec)
    return {k: v for k, v in flat(trial_spec).items() if k not in skip and default.get(k) != v}


def resolved_spec(spec: AblationSpec, trials: list[Trial]) -> dict:
    """The spec as plain data with ``trial`` = what the trials ran with beyond the defaults
    (the spec's own settings and ``--set`` overrides alike)."""
    data = spec.model_dump(mode="json")
    if trials:
        given = flat(data.get("trial") or {})
        data["trial"] = nest(given | shared_settings(spec, trials[0].spec.model_dump(mode="json")))
    return data


def check_same_experiment(spec: AblationSpec, trials: list[Trial], out_dir: Path) -> None:
    """A one-line RunError when ``out_dir`` already holds trials other than ``trials`` (for a
    search: another base trial, metric or search space; more proposals continue the study)."""
    if spec.search is not None:
        return _check_same_search(spec, trials, out_dir)
    before, _ = read_json_or_none(out_dir / "trials.json", expect=list)
    if not before:
        return
    old_ids = {r.get("trial_id") for r in before if isinstance(r, dict)}
    if old_ids == {t.trial_id for t in trials}:
        return
    old = flat((before[0] or {}).get("spec") or {}) if isinstance(before[0], dict) else {}
    new = flat(trials[0].spec.model_dump(mode="json"))
    what = _differences(old, new, varied(spec))
    _refuse(out_dir, what or f"axes or seeds: {len(old_ids)} trials there, {len(trials)} now")


def _search_design(data: dict) -> dict[str, Any]:
    """What fixes a search's experiment in its spec.yaml data: the shared trial settings and
    the search but for its number of proposals."""
    search = {k: v for k, v in (data.get("search") or {}).items() if k != "num_samples"}
    return flat({"trial": data.get("trial") or {}, "search": search})


def _check_same_search(spec: AblationSpec, trials: list[Trial], out_dir: Path) -> None:
    try:
        text = read_text_bounded(out_dir / "spec.yaml", str(out_dir / "spec.yaml"))
        before = load_yaml(text, str(out_dir / "spec.yaml"))
    except (OSError, UnicodeDecodeError, YamlLoadError):
        return  # no plan yet (or a damaged one: write_plan replaces it)
    if not isinstance(before, dict) or before.get("search") is None:
        return
    old, new = _search_design(before), _search_design(resolved_spec(spec, trials))
    what = _differences(old, new, set())
    if what:
        _refuse(out_dir, what)


def _differences(old: dict, new: dict, skip: set[str]) -> str:
    """'path: old -> new; ...' for the first SHOWN differing settings, '' when none differ."""
    paths = sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k))
    diffs = [f"{k}: {excerpt(old.get(k), 30)} -> {excerpt(new.get(k), 30)}" for k in paths]
    more = f"; and {len(diffs) - SHOWN} more" if len(diffs) > SHOWN else ""
    return "; ".join(diffs[:SHOWN]) + more


def _refuse(out_dir: Path, what: str) -> None:
    raise RunError(
        f"--out {out_dir}: holds a run of other settings ({what}); one experiment per folder: "
        "give a new --out, or re-run with the folder's settings to resume"
    )


def write_plan(spec: AblationSpec, trials: list[Trial], out_dir: Path) -> None:
    """spec.yaml and trials.json: what the run is, before anything trains."""
    (out_dir / "trials").mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(resolved_spec(spec, trials), sort_keys=False)
    atomic_write_text(out_dir / "spec.yaml", text)
    # A search's trials are its proposals, found in trials/ when they ran.
    plan = [t.record() for t in trials] if spec.search is None else []
    rundir.write_json(out_dir / "trials.json", plan)


def _entries(out_dir: Path) -> list[dict]:
    info = read_json_or_none(out_dir / "run.json")[0] or {}  # absent or damaged: a new list
    entries = info.get("invocations")
    if not isinstance(entries, list):  # run.json before invocation lists: its one wall time
        entries = [{"wall_time": info["wall_time"]}] if "wall_time" in info else []
    return entries


def start_invocation(out_dir: Path) -> int:
    """Append this invocation to run.json as ``running``; returns its index. An entry still
    ``running`` is of a driver that was killed (this one holds the folder's lock): ``killed``."""
    entries = _entries(out_dir)
    for entry in entries:
        if isinstance(entry, dict) and entry.get("status") == "running":
            entry["status"] = "killed"
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    entries.append({"started": started, "wall_time": 0.0, "trained": None, "status": "running",
                    "commit": package_commit()})  # fmt: skip
    rundir.write_json(out_dir / "run.json", {"invocations": entries})
    return len(entries) - 1


def end_invocation(
    out_dir: Path, index: int, wall: float, trained: int | None, status: str
) -> None:
    """Record how invocation ``index`` ended: finished or interrupted, its wall time and the
    jobs it trained (None: unknown, e.g. a search)."""
    entries = _entries(out_dir)
    if 0 <= index < len(entries):
        entries[index].update(wall_time=wall, trained=trained, status=status)
        rundir.write_json(out_dir / "run.json", {"invocations": entries})

"""A spec's design and its fingerprint: what registration fixes before a confirmatory run.

The design is everything that determines the trials and the verdicts: the resolved trials
(their ids carry the hash of each resolved trial spec, so base files and defaults count),
axes, seeds, baseline, search, claims and gates. Prose (description, a claim's `paper`
reference) and the pilot flag are not part of it. ``scm-bench register SPEC`` writes
``<spec folder>/registered/<name>.<fingerprint[:12]>.json``; committed before the run, git
ancestry proves the order (``report.confirm``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from scm_bench.errors import RunError
from scm_bench.safe_files import atomic_write_text

DESIGN_KEYS = ("axes", "zip", "seeds", "baseline", "search", "claims", "gates")
REGISTERED = "registered"  # the folder beside the spec that holds its registrations


def design(spec: dict, trial_ids: list[str]) -> dict:
    """The fingerprinted part of a resolved spec (``AblationSpec.model_dump(mode='json')``)."""
    out = {k: spec.get(k) for k in DESIGN_KEYS}
    out["claims"] = [{k: v for k, v in c.items() if k != "paper"} for c in out["claims"] or []]
    return {"name": spec.get("name"), "trials": sorted(trial_ids), **out}


def fingerprint(design_: dict) -> str:
    """sha256 of the design as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(design_, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changes(old: dict, new: dict) -> list[str]:
    """The design keys that differ between two designs ('trials' covers every trial setting)."""
    return [k for k in ("trials", *DESIGN_KEYS) if old.get(k) != new.get(k)]


def register(spec_path: Path, spec: dict, trial_ids: list[str]) -> tuple[Path, str]:
    """Write the registration of a loaded spec beside its file; (path, fingerprint). The same
    design registered twice is the same file; a different file in its place is refused."""
    d = design(spec, trial_ids)
    fp = fingerprint(d)
    folder = Path(spec_path).parent / REGISTERED
    path = folder / f"{spec['name']}.{fp[:12]}.json"
    record = {"fingerprint": fp, "design": d}
    if path.exists():
        try:
            same = json.loads(path.read_text()).get("fingerprint") == fp
        except (OSError, ValueError):
            same = False
        if not same:
            raise RunError(f"{path}: exists and is not this design's registration; move it away")
        return path, fp
    folder.mkdir(exist_ok=True)
    record["registered_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path, fp


def _digest(trial_id: str) -> str:
    """The hash of a trial id's resolved settings and seed ('warmup-...-s3-072bd5c6')."""
    return trial_id.rsplit("-", 1)[-1]


def _stem(trial_id: str) -> str:
    """A trial id without its hash: spec name, variant and seed ('warmup-...-s3')."""
    return trial_id.rsplit("-", 1)[0]


def _training(settings: dict) -> dict:
    """Flattened trial settings without the evaluation's (``eval.*`` never changes training)."""
    return {k: v for k, v in settings.items() if not k.startswith("eval.")}


def replayed(
    trial_ids: list[str],
    log: Path,
    this_run: tuple[str, set[str]] | None = None,
    settings: dict | None = None,
    later: Callable[[list[str]], bool] | None = None,
) -> int:
    """How many of these trials repeat a trial of a run published before (``log``: a reports
    folder's history.jsonl), so that on the same hardware they give the same numbers and are
    not new data: the same resolved settings and seed (the id's hash, under any spec name: a
    pilot's), or, given ``settings`` (the run's flattened trial settings), the same spec,
    variant and seed with the same training settings (an evaluation setting added since moves
    the hash, not the training). ``this_run``: (fingerprint, short commits) of the run being
    judged, whose own published entry is left out. ``later(commits)``: True when a published
    run's trials all ran from checkouts that already held the judged design's registration;
    such data did not exist when the design was fixed, so it could not have informed it (two
    registered designs may share a baseline's trials) and is left out; an earlier run of this
    same design is not (running a design again until it reproduces is not a confirmation)."""
    if not Path(log).exists():
        return 0
    hashes, stems = set(), set()
    for line in Path(log).read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        mine = this_run and entry.get("fingerprint") == this_run[0]
        if mine and set(entry.get("commits") or []) <= this_run[1]:
            continue
        if not mine and later is not None and entry.get("commits") and later(entry["commits"]):
            continue
        ids = (entry.get("design") or {}).get("trials") or []
        hashes |= {_digest(t) for t in ids}
        if settings is not None and _training(entry.get("trial") or {}) == _training(settings):
            stems |= {_stem(t) for t in ids}
    return sum(_digest(t) in hashes or _stem(t) in stems for t in trial_ids)

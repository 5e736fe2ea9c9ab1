"""Confirmatory or exploratory: is a run's design registered before any of its trials ran?

Confirmatory when (1) the run is not a pilot, (2) its design's fingerprint (from the run's
spec.yaml and trial ids, ``spec.registration``) matches a registration file committed in the
package's repository, (3) every trial recorded a clean commit, and (4) the commit that added
the registration is an ancestor of every trial's commit (``git merge-base --is-ancestor``).
(5) none of its trials repeats a trial of a run published before (same settings and seed, so
the same numbers: a pilot replayed is not a confirmation; ``registration.replayed``), unless
that run's trials too ran from checkouts holding this registration (data made after the
design was fixed, e.g. another registered design's run sharing this baseline).
Anything else is exploratory, with the reason.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from scm_bench.report import format as fmt
from scm_bench.report.load import Run
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.registration import REGISTERED, design, fingerprint, replayed

REPO = Path(__file__).resolve().parents[2]  # the checkout this package runs from
HISTORY = Path("reports") / "history.jsonl"  # the checkout's published runs (report.history)


def _git(*args: str, repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def _descend(commits, ancestor: str, repo: Path) -> bool:
    """Every commit has ``ancestor`` in its history (or is it); an unknown commit has not."""
    return all(_git("merge-base", "--is-ancestor", ancestor, c, repo=repo).returncode == 0
               for c in commits)  # fmt: skip


def run_design(run: Run) -> dict | None:
    """The run's design (None when its spec.yaml no longer validates)."""
    try:
        spec = AblationSpec.model_validate(run.spec).model_dump(mode="json")
    except ValidationError:
        return None
    return design(spec, [str(t) for t in run.results["trial_id"]])


def registrations(fp: str, repo: Path) -> list[Path]:
    """Registration files of this fingerprint anywhere under the repository's ablations/."""
    found = []
    for path in sorted((repo / "ablations").rglob(f"{REGISTERED}/*.json")):
        try:
            if json.loads(path.read_text()).get("fingerprint") == fp:
                found.append(path)
        except (OSError, ValueError):
            continue
    return found


def status(run: Run, repo: Path = REPO) -> tuple[str, str]:
    """('confirmatory' | 'exploratory', why)."""
    if run.spec.get("pilot"):
        return "exploratory", "a pilot run (scm-bench run --pilot)"
    d = run_design(run)
    if d is None:
        return "exploratory", "its spec.yaml does not validate with this version"
    fp = fingerprint(d)
    found = registrations(fp, repo)
    if not found:
        return "exploratory", f"design {fp[:12]} was not registered"
    commits = run.results.get("commit")
    commits = set() if commits is None else {str(c) for c in commits.dropna()}
    if not commits or any(c.endswith("+dirty") or c in ("", "nan") for c in commits):
        return "exploratory", "a trial ran from an unknown or uncommitted checkout"
    for path in found:
        log = _git("log", "--diff-filter=A", "--format=%H", "--", str(path), repo=repo)
        added = log.stdout.split()[-1:] if log.returncode == 0 else []
        if added and _descend(commits, added[0], repo):
            ids = [str(t) for t in run.results["trial_id"]]
            settings = fmt.flatten(run.spec.get("trial") or {})
            later = partial(_descend, ancestor=added[0], repo=repo)
            k = replayed(ids, repo / HISTORY, (fp, {c[:7] for c in commits}), settings, later)
            if k:
                return "exploratory", (f"{k} of its {len(ids)} trials repeat trials of a run "
                                       "published before (same settings and seed: the same "
                                       "numbers, not new data)")  # fmt: skip
            return "confirmatory", f"design {fp[:12]} registered at {added[0][:7]}"
    return "exploratory", f"design {fp[:12]} was registered after (or apart from) its trials"

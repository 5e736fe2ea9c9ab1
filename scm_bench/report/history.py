"""Every published run of a spec: a log that ``publish`` appends to (``reports/history.jsonl``,
one JSON object per line), first seeded from the repository's history of ``reports/``.

Each entry: the spec's name, when it was published, the commit(s) its trials ran at, its design
fingerprint (``spec.registration``), the trial settings that differ from the spec's current
ones, and the verdicts its report gave then. A report lists every earlier entry of its spec
(not its own run); the scoreboard counts the earlier designs.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from scm_bench.report import format as fmt
from scm_bench.report.confirm import HISTORY
from scm_bench.report.section import HISTORY_COLUMNS
from scm_bench.safe_yaml import YamlLoadError, load_yaml
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.registration import changes, design, fingerprint

LOG = HISTORY.name  # reports/history.jsonl: the one path confirm and register read too


def design_of(spec: dict, trial_ids: list[str]) -> dict:
    """The design of a published spec: validated when this version can (new defaults filled),
    else as written (an older schema)."""
    try:
        spec = AblationSpec.model_validate(spec).model_dump(mode="json")
    except ValidationError:
        pass
    return design(spec, trial_ids)


def _verdicts_from_markdown(md: str) -> dict[str, str]:
    """claim -> 'verdict, effect' from a report.md's Verdicts table (older reports)."""
    if "## Verdicts" not in md:
        return {}
    lines = [ln for ln in md.split("## Verdicts", 1)[1].split("\n## ", 1)[0].splitlines()
             if ln.startswith("|")]  # fmt: skip
    if len(lines) < 3:
        return {}
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head = cells[0]
    effect = next((i for i, h in enumerate(head) if h.startswith("effect")), None)
    out = {}
    for row in cells[2:]:
        r = dict(zip(head, row, strict=False))
        out[r.get("claim", "?")] = r.get("verdict", "?").strip("*") + (
            f", {row[effect]}" if effect is not None and effect < len(row) else ""
        )
    return out


def entry(name: str, spec: dict, results: pd.DataFrame, verdicts: dict, published: str) -> dict:
    ids = [str(t) for t in results.get("trial_id", [])]
    commits = sorted({str(c)[:7] for c in results.get("commit", pd.Series()).dropna()})
    return {"name": name, "published": published, "commits": commits,
            "fingerprint": fingerprint(design_of(spec, ids)), "design": design_of(spec, ids),
            "trial": fmt.flatten(spec.get("trial") or {}), "verdicts": verdicts}  # fmt: skip


def folder_entry(folder: Path) -> dict:
    """The entry of a published report folder as it is now."""
    spec = load_yaml((folder / "spec.yaml").read_text(), str(folder / "spec.yaml")) or {}
    results = pd.read_csv(folder / "results.csv")
    summary = json.loads((folder / "report" / "summary.json").read_text())
    verdicts = {c["claim"]: f"{c['verdict']}, {c.get('effect [CI]', '')}"
                for c in summary.get("claims", [])}  # fmt: skip
    now = time.strftime("%Y-%m-%d", time.gmtime())
    return entry(spec.get("name") or folder.name, spec, results, verdicts, now)


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else ""


def from_git(reports_dir: Path) -> list[dict]:
    """Entries of every commit that changed a report's results, spec or verdicts, oldest
    first; one per (spec, trial commits, design), with the verdicts of its last report."""
    reports_dir = Path(reports_dir).resolve()
    repo = Path(_git(reports_dir, "rev-parse", "--show-toplevel").strip() or reports_dir)
    rel = reports_dir.relative_to(repo).as_posix()
    found: dict[tuple, dict] = {}
    for line in reversed(_git(repo, "log", "--format=%H %cs", "--", rel).splitlines()):
        sha, day = line.split()
        names = {p.split("/")[len(rel.split("/"))] for p in _git(
            repo, "show", "--name-only", "--format=", sha, "--", rel).splitlines()
            if p.count("/") > len(rel.split("/"))}  # fmt: skip
        for name in sorted(names):
            show = lambda f, n=name, s=sha: _git(repo, "show", f"{s}:{rel}/{n}/{f}")
            text, csv = show("spec.yaml"), show("results.csv")
            if not (text and csv):
                continue
            try:
                spec = load_yaml(text, f"{sha[:7]}:{rel}/{name}/spec.yaml") or {}
            except YamlLoadError:
                continue
            summary = json.loads(show("report/summary.json") or "{}")
            verdicts = _verdicts_from_markdown(show("report.md")) or {
                c: str(v) for c, v in (summary.get("verdicts") or {}).items()}  # fmt: skip
            e = entry(name, spec, pd.read_csv(io.StringIO(csv)), verdicts, day)
            found[(name, tuple(e["commits"]), e["fingerprint"])] = e
    return list(found.values())


def read_log(reports_dir: Path) -> list[dict]:
    """The log's entries; seeded from git (and written) when there is none yet."""
    path = Path(reports_dir) / LOG
    if not path.exists():
        entries = from_git(reports_dir)
        path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
        return entries
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def append(reports_dir: Path, folder: Path) -> dict:
    """Log the report just published into ``folder`` (after seeding the log)."""
    known = read_log(reports_dir)
    e = folder_entry(folder)
    key = (e["name"], e["commits"], e["fingerprint"])
    if all((k["name"], k["commits"], k["fingerprint"]) != key for k in known):
        with (Path(reports_dir) / LOG).open("a") as f:
            f.write(json.dumps(e, sort_keys=True) + "\n")
    return e


def earlier(reports_dir: Path, folder: Path) -> list[dict]:
    """History rows (section.HISTORY_COLUMNS) of every logged run of the folder's spec other
    than the one it holds now, oldest first."""
    now = folder_entry(folder)
    rows = []
    for e in read_log(reports_dir):
        if e["name"] != now["name"] or (e["commits"], e["fingerprint"]) == (
            now["commits"], now["fingerprint"]):  # fmt: skip
            continue
        moved = [f"{k}: {e['trial'].get(k, '–')} -> {now['trial'].get(k, '–')}"
                 for k in sorted(set(e["trial"]) | set(now["trial"]))
                 if e["trial"].get(k) != now["trial"].get(k)]  # fmt: skip
        what = ", ".join(changes(e["design"], now["design"])) or "nothing"
        what += ("; " + "; ".join(moved[:6]) + (" ..." if len(moved) > 6 else "")) if moved else ""
        said = "; ".join(f"{c}: {v}" for c, v in e["verdicts"].items()) or "no verdicts"
        rows.append(
            dict(
                zip(
                    HISTORY_COLUMNS,
                    [
                        e["published"],
                        ", ".join(e["commits"]) or "–",
                        e["fingerprint"][:12],
                        what,
                        said,
                    ],
                    strict=True,
                )
            )
        )
    return rows


def published_folders(reports_dir: Path) -> list[Path]:
    """Report folders below ``reports_dir`` that hold a results table and a spec."""
    return [md.parent for md in sorted(Path(reports_dir).rglob("report.md"))
            if md.parent != Path(reports_dir) and (md.parent / "results.csv").exists()
            and (md.parent / "spec.yaml").exists()]  # fmt: skip


def primary_claims(folders: list[Path]) -> int:
    """How many primary claims the published specs state: the scoreboard's family size."""
    n = 0
    for f in folders:
        spec = load_yaml((f / "spec.yaml").read_text(), str(f / "spec.yaml")) or {}
        n += sum(bool(c.get("primary", True)) for c in spec.get("claims") or [])
    return n


def refresh(reports_dir: Path, published=()) -> list[str]:
    """Log the folders just published, then re-render every published report's verdicts at
    the scoreboard's adjusted alpha (ALPHA / its primary claims) with its spec's history.
    Returns one line per report that could not be re-rendered (it keeps its old verdicts)."""
    from scm_bench.errors import UserError
    from scm_bench.report.rejudge import rejudge
    from scm_bench.report.stats import ALPHA

    problems = []
    for folder in published:
        try:
            append(reports_dir, Path(folder))
        except (UserError, OSError, ValueError) as err:  # e.g. a report without its spec.yaml
            problems.append(f"{folder}: not added to the history ({err})")
    folders = published_folders(reports_dir)
    alpha = ALPHA / max(1, primary_claims(folders))
    for folder in folders:
        try:
            rejudge(folder, alpha, earlier(reports_dir, folder))
        except (UserError, OSError, ValueError) as err:
            problems.append(f"{folder}: verdicts not re-rendered ({err})")
    return problems

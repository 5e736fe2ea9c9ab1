"""What `scm-bench ls` lists, and docs/spec-reference.md (`python -m scm_bench.spec.docs`), both
made from the schema and the registries."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from scm_bench.errors import SpecError
from scm_bench.spec.ablation import AblationSpec, Resources, SearchParam, SearchSpec
from scm_bench.spec.bases import bundled_bases
from scm_bench.spec.bundled import ABLATIONS, PAPER, descriptions, find_spec
from scm_bench.spec.claims import Claim
from scm_bench.spec.load import resolve_bases
from scm_bench.spec.paths import allowed_values, field_docs
from scm_bench.spec.plugins import load_plugins
from scm_bench.spec.schema import TrialSpec


def listing(what: str = "all", spec: str | None = None) -> list[str]:
    """The lines `scm-bench ls [TOPIC]` prints: a '# topic (columns)' header, one row per item;
    with ``spec``, the values its plugins register are listed too."""
    from scm_bench import metrics
    from scm_bench.data import DATASETS

    if spec is not None:
        path = find_spec(spec)
        problems = load_plugins(resolve_bases(path).get("plugins", []), path)
        if problems:
            raise SpecError(problems)
    lines = []
    if what in ("all", "settings"):
        lines.append("# settings (dotted path, default, description, allowed values)")
        lines += [f"{p:28s} {d:24s} {desc}{_allowed(p)}" for p, d, desc in field_docs(TrialSpec)]
    if what in ("all", "datasets"):
        lines.append("# datasets (name, description)")
        lines += [f"{name:14s} {doc}" for name, doc in sorted(DATASETS.described())]
    if what in ("all", "metrics"):
        lines.append("# metrics (name, better, aggregate, kind, description)")
        for m in sorted(metrics.list_metrics(), key=lambda m: (m["kind"], m["name"])):
            better = {True: "higher", False: "lower", None: "-"}[m["higher_is_better"]]
            lines.append(
                f"{m['name']:20s} {better:7s} {m['aggregate']:6s} {m['kind']:9s} {m['description']}"
            )
    if what in ("all", "bases"):
        lines.append("# bases (name, file): `base: NAME` in a spec, from any folder")
        lines += [f"{name:16s} {path}" for name, path in bundled_bases().items()]
    if what in ("all", "ablations"):
        lines.append("# ablations (name, description): scm-bench run NAME")
        rows = descriptions() or [("(none)", "bundled specs come with a source checkout")]
        plans = preset_plans()
        lines += [f"{name:16s} {plan_note(name, plans)}{desc}" for name, desc in rows]
    return lines


def _allowed(path: str) -> str:
    """' (allowed: a | b)' for a trial setting with a closed or registered set of values."""
    values = allowed_values(TrialSpec).get(path)
    return f" (allowed: {' | '.join(values)})" if values else ""


PLANS = ABLATIONS / PAPER / "plans.json"  # python -m scm_bench.train.compute_plan > PLANS


def fingerprint(trials) -> str:
    """Short hash of a spec's resolved trials: a recorded plan is current while it matches."""
    blob = " ".join(sorted(t.spec.digest() for t in trials))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def preset_plans() -> dict[str, dict]:
    """The recorded plans of the paper presets (PLANS), or none."""
    try:
        return json.loads(PLANS.read_text())
    except (OSError, ValueError):
        return {}


def plan_note(name: str, plans: dict[str, dict]) -> str:
    """'[62.9M params; 48 GPU-h on h100 at MFU 0.4] ' for a paper preset whose recorded plan
    matches its trials; a pointer to `scm-bench plan` when it does not; '' for other specs."""
    if name not in plans:
        return "[plan: scm-bench plan NAME] " if name.startswith(f"{PAPER}/") else ""
    from scm_bench.spec import load_trials

    rec = plans[name]
    if rec.get("fingerprint") != fingerprint(load_trials(name).trials):
        return "[plan outdated: scm-bench plan NAME] "
    params = "/".join(f"{p / 1e6:.4g}M" for p in rec["params"])
    hours = f"{rec['gpu_hours']:,.0f}"
    return f"[{params} params; {hours} GPU-h on {rec['device']} at MFU {rec['mfu']}] "


def _table(rows) -> list[str]:
    out = ["| setting | default | description |", "|---|---|---|"]
    cell = lambda text: str(text).replace("|", "\\|")  # a bare | would end the table cell
    out += [f"| `{p}` | `{cell(d)}` | {cell(desc)} |" for p, d, desc in rows]
    return out


def _trial_table() -> list[str]:
    """Trial settings with their allowed values (those of the built-ins: no plugin loaded)."""
    allowed = allowed_values(TrialSpec)
    out = ["| setting | default | allowed | description |", "|---|---|---|---|"]
    for p, d, desc in field_docs(TrialSpec):
        values = " \\| ".join(f"`{v}`" for v in allowed.get(p, ()))
        out.append(f"| `{p}` | `{d}` | {values} | {desc.replace('|', chr(92) + '|')} |")
    return out


def _top_level(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    rows = []
    for name, info in model.model_fields.items():
        default = (
            "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        )
        rows.append((name, default, info.description or ""))
    return rows


def reference() -> str:
    lines = [
        "# Spec reference",
        "",
        "Generated from the schema (`python -m scm_bench.spec.docs > docs/spec-reference.md`);",
        "a test keeps it in sync. Defaults are the paper's recommended settings.",
        "",
        "## Ablation spec (top level of `ablations/*.yaml`)",
        "",
        *_table(_top_level(AblationSpec)),
        "",
        "`resources`: " + " ".join(f"`{n}`: {d}" for n, _, d in _top_level(Resources)),
        "",
        "`search`: " + " ".join(f"`{n}`: {d}" for n, _, d in _top_level(SearchSpec)),
        "",
        "`search.params.<path>`: " + " ".join(f"`{n}`: {d}" for n, _, d in _top_level(SearchParam)),
        "",
        "### `claims[i]`: one claim (verdicts: reproduced / contradicted / inconclusive)",
        "",
        *_table(_top_level(Claim)),
        "",
        "## Trial settings (under `trial:`, as `axes:` paths, and as `--set` paths)",
        "",
        *_trial_table(),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")

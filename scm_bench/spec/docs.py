"""What `scm-bench ls` lists, and docs/spec-reference.md (`python -m scm_bench.spec.docs`), both
made from the schema and the registries."""

from __future__ import annotations

from pydantic import BaseModel

from scm_bench.spec.ablation import AblationSpec, Resources, SearchParam, SearchSpec
from scm_bench.spec.bundled import descriptions
from scm_bench.spec.claims import Claim
from scm_bench.spec.paths import field_docs
from scm_bench.spec.schema import TrialSpec


def listing(what: str = "all") -> list[str]:
    """The lines `scm-bench ls [TOPIC]` prints: a '# topic (columns)' header, one row per item."""
    from scm_bench import metrics
    from scm_bench.data import LOADERS

    lines = []
    if what in ("all", "settings"):
        lines.append("# settings (dotted path, default, description)")
        lines += [f"{p:28s} {d:24s} {desc}" for p, d, desc in field_docs(TrialSpec)]
    if what in ("all", "datasets"):
        lines.append("# datasets (name, description)")
        for name, load in sorted(LOADERS.items()):
            doc = (load.__doc__ or "").strip().partition("\n")[0]  # the loader's first line
            lines.append(f"{name:14s} {doc}")
    if what in ("all", "metrics"):
        lines.append("# metrics (name, better, aggregate, kind, description)")
        for m in sorted(metrics.list_metrics(), key=lambda m: (m["kind"], m["name"])):
            better = {True: "higher", False: "lower", None: "-"}[m["higher_is_better"]]
            lines.append(
                f"{m['name']:20s} {better:7s} {m['aggregate']:6s} {m['kind']:9s} {m['description']}"
            )
    if what in ("all", "ablations"):
        lines.append("# ablations (name, description): scm-bench run NAME")
        rows = descriptions() or [("(none)", "bundled specs come with a source checkout")]
        lines += [f"{name:16s} {desc}" for name, desc in rows]
    return lines


def _table(rows) -> list[str]:
    out = ["| setting | default | description |", "|---|---|---|"]
    cell = lambda text: str(text).replace("|", "\\|")  # a bare | would end the table cell
    out += [f"| `{p}` | `{cell(d)}` | {cell(desc)} |" for p, d, desc in rows]
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
        *_table(field_docs(TrialSpec)),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")

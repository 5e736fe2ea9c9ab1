"""Generate docs/spec-reference.md from the schema: `python -m scm_bench.spec.docs`."""

from __future__ import annotations

from pydantic import BaseModel

from scm_bench.spec.ablation import AblationSpec, Resources, SearchParam, SearchSpec
from scm_bench.spec.claims import Claim
from scm_bench.spec.schema import TrialSpec, field_docs


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

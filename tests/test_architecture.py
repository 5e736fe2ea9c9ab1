"""The package's shape: no import cycles, no module importing from a layer above its own, no
file over 300 lines, and every allowed value of a setting listed once (its Literal alias)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

ROOT = Path(__file__).resolve().parents[1] / "scm_bench"
# Lowest first; a module may import from its own layer or any layer below, never above.
LAYERS = [
    {"errors", "exit_codes", "names", "safe_yaml", "safe_files", "lock", "rundir"}
    | {"owned", "private", "interrupts", "messages"},
    {"core"},
    {"nets", "data"},
    {"metrics"},
    {"spec"},
    {"train"},
    {"report"},
    {"runner"},
    {"cli"},
]
RANK = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """scm_bench modules imported anywhere in the file (function-level imports included)."""
    out, pkg = set(), module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in modules and n != pkg}
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: imports_of(p, set(files)) for m, p in files.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycles():
    g = graph()
    # A package's __init__ re-exporting its submodules is not a cycle edge back into it.
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in g.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in edges.get(m, ()):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d] if d in stack else [m, d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_no_module_imports_from_a_layer_above():
    g = graph()
    assert all(layer(m) is not None for m in g if m != "scm_bench"), "a module outside LAYERS"
    upward = [
        f"{m} ({layer(m)}) imports {d} ({layer(d)})"
        for m, deps in g.items()
        for d in deps
        if layer(m) is not None and layer(d) is not None and layer(d) > layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_the_run_directory_format_is_a_leaf_over_the_file_helpers():
    assert graph()["scm_bench.rundir"] == {"scm_bench.safe_files"}


def test_no_file_over_300_lines():
    long = {str(p): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long


def test_the_spec_reuses_the_vocabulary_core_and_nets_define():
    from scm_bench.core.choices import registry
    from scm_bench.core.jvp import JVPBackend, JVPOrdering, JVPPrecision
    from scm_bench.core.tangent import TangentMode
    from scm_bench.nets.attend import AttentionKernel
    from scm_bench.spec.schema import TrialSpec

    fields = {
        "tangent": ("mode", TangentMode),
        "jvp": ("ordering", JVPOrdering),
        "attention": ("kernel", AttentionKernel),
    }
    for section, (name, alias) in fields.items():
        model = TrialSpec.model_fields[section].annotation
        info = model.model_fields[name]
        if registry(alias) is None:  # a Literal
            assert info.annotation is alias
        else:  # a registry: the field carries the same Choices (plugins extend it)
            assert registry(alias) in info.metadata
    jvp = TrialSpec.model_fields["jvp"].annotation.model_fields
    assert jvp["precision"].annotation is JVPPrecision
    assert jvp["backend"].annotation is JVPBackend
    assert get_args(AttentionKernel) == ("flash", "math", "triton")

"""safe_yaml: hostile and careless spec texts are refused fast with one line; normal ones load."""

from __future__ import annotations

import math
import tracemalloc
from contextlib import contextmanager
from unittest import mock

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scm_bench import safe_yaml
from scm_bench.safe_yaml import (
    MAX_ALIAS_NODES,
    MAX_AXIS_VALUES,
    MAX_SEEDS,
    MAX_TRIALS,
    MAX_YAML_CHARS,
    YamlLoadError,
    check_sizes,
    excerpt,
    load_yaml,
)

KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda k: yaml.safe_load(k) == k  # plain strings only (not y/n/null/true, which resolve)
)


def refusal(text: str) -> str:
    with pytest.raises(YamlLoadError) as info:
        load_yaml(text, "spec.yaml")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("spec.yaml: ") and len(msg) < 300, msg
    return msg


@contextmanager
def work_counted():
    """Counts the loader's work: nodes whose children are listed (the alias-budget walk) and
    objects constructed. The work, not the wall clock, is what a test can bound."""
    calls = {"children": 0, "constructed": 0}
    children, construct = safe_yaml._children, safe_yaml._SafeSpecLoader.construct_object

    def counted_children(node):
        calls["children"] += 1
        return children(node)

    def counted_construct(self, node, deep=False):
        calls["constructed"] += 1
        return construct(self, node, deep)

    with (
        mock.patch.object(safe_yaml, "_children", counted_children),
        mock.patch.object(safe_yaml._SafeSpecLoader, "construct_object", counted_construct),
    ):
        yield calls


# Duplicate keys.


def test_plain_pyyaml_keeps_the_last_duplicate_silently_and_load_yaml_refuses_it():
    text = "name: a\ntrial:\n  lr: 1\n  lr: 2\n"
    assert yaml.safe_load(text) == {"name": "a", "trial": {"lr": 2}}  # the bug being fixed
    assert refusal(text) == (
        "spec.yaml: line 4: duplicate key 'lr' (first at line 3); a key may appear once per mapping"
    )


def test_keys_equal_after_loading_are_duplicates():
    assert "duplicate key 1 (first at line 1)" in refusal("1: a\n0x1: b\n")
    assert "line 2: duplicate key None (first at line 1)" in refusal("~: a\nnull: b\n")
    two_merges = "d: &d {a: 1}\ne:\n  <<: *d\n  <<: *d\n"
    assert "line 4: duplicate key '<<' (first at line 3)" in refusal(two_merges)


@given(st.lists(KEYS, min_size=1, max_size=8, unique=True), st.data())
def test_any_repeated_key_at_any_depth_is_refused_with_its_line(keys, data):
    depth = data.draw(st.integers(0, 3), label="depth")
    dup_at = data.draw(st.integers(0, len(keys)), label="position of the repeat")
    dup = data.draw(st.sampled_from(keys), label="repeated key")
    order = [*keys[:dup_at], dup, *keys[dup_at:]]
    head = [f"{'  ' * i}lvl{i}:" for i in range(depth)]
    body = [f"{'  ' * depth}{k}: {i}" for i, k in enumerate(order)]
    lines = head + body
    msg = refusal("\n".join(lines) + "\n")
    second = max(i for i, k in enumerate(order) if k == dup) + depth + 1
    first = min(i for i, k in enumerate(order) if k == dup) + depth + 1
    assert msg == (
        f"spec.yaml: line {second}: duplicate key {dup!r} (first at line {first}); "
        "a key may appear once per mapping"
    )


@given(st.dictionaries(KEYS, st.integers() | st.text(max_size=5), max_size=8))
def test_mappings_without_repeats_load_as_pyyaml_does(mapping):
    text = yaml.safe_dump(mapping)
    assert load_yaml(text, "spec.yaml") == yaml.safe_load(text) == mapping


def test_a_normal_spec_with_small_aliases_and_merge_overrides_loads():
    text = """\
name: demo
defaults: &train {steps: 100, lr: 0.001, batch: 64}
trial:
  train: {<<: *train, steps: 200}
axes:
  train.lr: &lrs [0.001, 0.0003]
  teacher.lr: *lrs
"""
    spec = load_yaml(text, "spec.yaml")
    assert spec == yaml.safe_load(text)
    assert spec["trial"]["train"] == {"steps": 200, "lr": 0.001, "batch": 64}


# Alias bombs, cycles, depth, size.


def bomb(fanouts: list[int], kinds: list[str]) -> str:
    """Level i repeats level i-1 fanouts[i] times, as a list or a mapping."""
    lines = ["l0: &l0 lol"]
    for i, (f, kind) in enumerate(zip(fanouts, kinds, strict=True), start=1):
        refs = [f"*l{i - 1}"] * f
        inner = (
            ", ".join(refs)
            if kind == "list"
            else ", ".join(f"k{j}: {r}" for j, r in enumerate(refs))
        )
        lines.append(f"l{i}: &l{i} " + (f"[{inner}]" if kind == "list" else f"{{{inner}}}"))
    return "\n".join(lines) + "\n"


@settings(deadline=None, max_examples=30)
@given(st.data())
def test_nested_alias_bombs_are_refused_fast_in_little_memory(data):
    levels = data.draw(st.integers(2, 30), label="levels")
    fanouts = data.draw(st.lists(st.integers(2, 30), min_size=levels, max_size=levels))
    kinds = data.draw(st.lists(st.sampled_from(["list", "map"]), min_size=levels, max_size=levels))
    assume(math.prod(fanouts) > MAX_ALIAS_NODES)  # each level multiplies the expansion
    text = bomb(fanouts, kinds)
    with work_counted() as work:
        msg = refusal(text)
    # Refused before anything is constructed, after a walk over the distinct nodes only (each
    # takes at least one character of the text; the expansion has more than 10,000).
    assert work["constructed"] == 0 and work["children"] <= 2 * len(text)
    tracemalloc.start()
    with pytest.raises(YamlLoadError):
        load_yaml(text, "spec.yaml")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6
    assert msg == (
        f"spec.yaml: YAML aliases expand to more than {MAX_ALIAS_NODES} nodes; "
        f"allowed: at most {MAX_ALIAS_NODES} nodes reached through *aliases"
    )


@given(st.lists(st.integers(2, 4), min_size=1, max_size=3))
def test_alias_use_within_the_budget_loads_like_pyyaml(fanouts):
    text = bomb(fanouts, ["list"] * len(fanouts))
    assert load_yaml(text, "spec.yaml") == yaml.safe_load(text)


def test_the_classic_billion_laughs_is_refused():
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)
    )
    with work_counted() as work:
        assert "aliases expand to more than" in refusal(text)
    assert work["constructed"] == 0 and work["children"] <= 2 * len(text)  # 9**9 expanded


def test_a_recursive_alias_is_refused_where_pyyaml_builds_a_cycle():
    loaded = yaml.safe_load("a: &a [*a]")
    assert loaded["a"][0] is loaded["a"]  # plain PyYAML: a self-containing list
    assert "line 1: a YAML alias refers to a node that contains it" in refusal("a: &a [*a]")


def test_deep_nesting_is_refused_where_pyyaml_overflows_the_stack():
    text = "[" * 600 + "]" * 600
    with pytest.raises(RecursionError):
        yaml.safe_load(text)
    assert refusal(text) == (
        "spec.yaml: line 1: nested deeper than 100 levels; "
        "allowed: at most 100 levels of mappings and lists"
    )


def test_a_text_over_the_size_limit_is_refused_before_parsing():
    text = "a: [" + "1," * (MAX_YAML_CHARS // 2) + "]"
    never = mock.Mock(side_effect=AssertionError("the parser was started"))
    with mock.patch.object(safe_yaml, "_SafeSpecLoader", never):
        assert f"allowed: at most {MAX_YAML_CHARS:,}" in refusal(text)
    never.assert_not_called()


# Tags and values.


def test_python_and_custom_tags_are_refused_in_one_line(tmp_path):
    marker = tmp_path / "ran"
    msg = refusal(f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    assert not marker.exists()
    assert msg == (
        "spec.yaml: line 1, column 4: tag 'tag:yaml.org,2002:python/object/apply:os.system' is "
        "not allowed; allowed: plain YAML (mappings, lists, strings, numbers, booleans, null)"
    )
    assert "tag '!custom' is not allowed" in refusal("a: !custom 1\n")


def test_unconvertible_values_name_their_line_where_pyyaml_raises_a_bare_valueerror():
    with pytest.raises(ValueError):
        yaml.safe_load("a: 1\nb: 2001-99-99\n")
    assert refusal("a: 1\nb: 2001-99-99\n") == (
        "spec.yaml: line 2: cannot read '2001-99-99': month must be in 1..12"
    )
    msg = refusal("a: " + "1" * 5000)
    assert msg.startswith("spec.yaml: line 1: cannot read '1111") and "(5,000 chars)" in msg


def test_syntax_errors_and_second_documents_are_one_line():
    assert refusal("a: [1, 2\n") == (
        "spec.yaml: line 2, column 1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1)"
    )
    assert refusal("a: &x 1\nb: &x 2\n") == (
        "spec.yaml: line 2, column 4: second occurrence (found duplicate anchor 'x'; "
        "first occurrence at line 1)"
    )
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("a: \x00")
    assert refusal("a: \x00") == (
        "spec.yaml: invalid YAML: unacceptable character #x0000: special characters are not allowed"
    )
    assert "one document per spec" in refusal("a: 1\n---\nb: 2\n")


# excerpt.

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner)
        | st.dictionaries(st.text(max_size=5), inner)
        | st.tuples(inner)
        | st.tuples(inner, inner)
    ),
    max_leaves=30,
)


@given(VALUES, st.integers(10, 120))
def test_excerpt_is_repr_when_it_fits_else_a_short_line_with_the_size(value, limit):
    out = excerpt(value, limit)
    full = repr(value)
    assert "\n" not in out
    if len(full) <= limit:
        assert out == full
    else:
        assert out.startswith(full[:limit]) and out[limit] == "…"
        assert len(out) <= limit + len("… (9,999,999,999 chars)")


def test_excerpt_of_huge_and_exponentially_shared_values_is_fast_and_short():
    shared: list = [0] * 10
    for _ in range(60):
        shared = [shared] * 10  # repr() would need 10**60 characters
    reprs: list[object] = []

    def counted_repr(value):
        reprs.append(value)
        return repr(value)

    with mock.patch.object(safe_yaml, "repr", counted_repr, create=True):
        assert excerpt(shared).endswith("… (10 items)")
        assert excerpt("x" * 10**7) == "'" + "x" * 79 + "… (10,000,000 chars)"
        assert excerpt(7**20000).startswith("<int of about 16,90")  # repr() refuses > 4300 digits
    # O(limit) work: a few dozen scalars, each at most limit + 1 characters; never the huge int.
    assert len(reprs) <= 80 and all(len(str(v)) <= 81 for v in reprs if isinstance(v, str))
    assert not any(isinstance(v, int) and v > 10**100 for v in reprs)


# check_sizes.


def test_check_sizes_names_each_field_over_its_limit_and_the_override_flag():
    assert check_sizes({"axes.train.lr": MAX_AXIS_VALUES}, MAX_SEEDS, MAX_TRIALS, False) == []
    problems = check_sizes(
        {"axes.train.lr": MAX_AXIS_VALUES + 1, "axes.net.width": 3},
        MAX_SEEDS + 1,
        MAX_TRIALS + 1,
        False,
        where="spec.yaml",
    )
    assert problems == [
        "spec.yaml: axes.train.lr: 1,001 values; allowed: at most 1,000 per axis "
        "(pass --allow-large to run more)",
        "spec.yaml: seeds: 1,001 seeds; allowed: at most 1,000 (pass --allow-large to run more)",
        "spec.yaml: axes x seeds: the spec expands to 5,001 trials; allowed: at most 5,000 per "
        "spec (pass --allow-large to run more)",
    ]
    assert check_sizes({"axes.train.lr": 10**6}, 10**6, 10**9, True) == []

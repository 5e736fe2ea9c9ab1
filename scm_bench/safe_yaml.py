"""YAML for specs that may be hostile or careless: one-line errors, bounded cost, size limits.

``load_yaml`` is ``yaml.safe_load`` plus these refusals, each a one-line :class:`YamlLoadError`
``WHERE: line L: what is wrong; what is allowed``:

- duplicate keys in a mapping (plain PyYAML keeps the last one silently);
- aliases expanding to over ``MAX_ALIAS_NODES`` nodes ("billion laughs": PyYAML shares aliased
  objects, but whatever walks, copies, validates or prints the spec expands them), and cycles;
- nesting deeper than ``MAX_DEPTH`` (plain PyYAML dies with RecursionError); texts over
  ``MAX_YAML_CHARS``; python/custom tags; unconvertible values (``2001-99-99``).

``excerpt`` renders any value for an error message in bounded time and length;
``check_sizes`` enforces the per-spec limits below unless ``--allow-large`` is given.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_YAML_CHARS = 1_000_000
"""Characters in one spec file; specs are written by hand (1,000 values of 3 axes is ~60 KB)."""
MAX_DEPTH = 100
"""Nesting levels of mappings and lists in one document."""
MAX_ALIAS_NODES = 10_000
"""Nodes reached through ``*alias`` references in one document (every visit counts)."""
MAX_AXIS_VALUES = 1000
"""Values of one axis (``axes.<path>`` or a ``zip`` entry) unless ``--allow-large``."""
MAX_SEEDS = 1000
"""Entries of ``seeds`` unless ``--allow-large``."""
MAX_TRIALS = 5000
"""Trials one spec expands to (variants x seeds) unless ``--allow-large``."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_UNCOMPARABLE = object()


class YamlLoadError(Exception):
    """A spec text that cannot or must not be loaded; the message is one line."""


class _SafeSpecLoader(yaml.SafeLoader):
    """SafeLoader with duplicate-key, depth, alias-budget and one-line value checks."""

    def __init__(self, text: str, where: str):
        super().__init__(text)
        self.where = where
        self._depth = 0
        self._key_reader = yaml.constructor.SafeConstructor()  # constructs keys to compare them

    def fail(self, node_or_mark, msg: str) -> YamlLoadError:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        return YamlLoadError(f"{self.where}: line {mark.line + 1}: {msg}")

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self.fail(
                    self.peek_event(),
                    f"nested deeper than {MAX_DEPTH} levels; allowed: at most "
                    f"{MAX_DEPTH} levels of mappings and lists",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        first: dict[object, Node] = {}
        for key_node, _ in node.value:  # as written: merges (<<) are not flattened yet
            key = self._key_of(key_node)
            if key is not _UNCOMPARABLE and key in first:
                raise self.fail(
                    key_node,
                    f"duplicate key {excerpt(key, 40)} (first at line "
                    f"{first[key].start_mark.line + 1}); a key may appear once per mapping",
                )
            first.setdefault(key, key_node)
        return node

    def _key_of(self, key_node: Node) -> object:
        """The key as loaded (so `1` and `0x1` collide), or _UNCOMPARABLE."""
        if key_node.tag == _MERGE_TAG:
            return "<<"
        if not isinstance(key_node, ScalarNode):
            return (
                _UNCOMPARABLE  # a list or mapping key is refused as unhashable by the constructor
            )
        try:
            key = self._key_reader.construct_object(key_node, deep=True)
            hash(key)
        except Exception:  # a bad tag or value: construction reports it with its line
            return _UNCOMPARABLE
        return key

    def compose_document(self):
        node = super().compose_document()
        distinct, expanded = _tree_sizes(node, self)
        if expanded - distinct > MAX_ALIAS_NODES:
            raise YamlLoadError(
                f"{self.where}: YAML aliases expand to more than {MAX_ALIAS_NODES} nodes; "
                f"allowed: at most {MAX_ALIAS_NODES} nodes reached through *aliases"
            )
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # e.g. a date 2001-99-99, a 5000-digit int
            what = excerpt(node.value, 30) if isinstance(node, ScalarNode) else "value"
            raise self.fail(node, f"cannot read {what}: {_first_line(exc)}") from None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, SequenceNode) else []


def _tree_sizes(root: Node, loader: _SafeSpecLoader) -> tuple[int, int]:
    """(distinct nodes, nodes of the tree with every alias expanded); a cycle is refused.

    Iterative post-order over the node DAG with memoized subtree sizes, so the cost is the
    number of distinct nodes whatever the expansion (sizes are capped to stay small ints).
    """
    cap = 10 * MAX_ALIAS_NODES + 1
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = min(cap, 1 + sum(size[id(c)] for c in _children(node)))
            continue
        if key in size:
            continue
        if key in open_nodes:  # reached again from inside itself
            raise loader.fail(
                node,
                "a YAML alias refers to a node that contains it (a cycle); "
                "allowed: aliases of earlier, complete values",
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return len(size), size[id(root)]


def _first_line(exc: BaseException) -> str:
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line if len(line) <= 120 else line[:120] + "…"


def load_yaml(text: str, where: str) -> object:
    """The object of a one-document YAML ``text`` (``None`` when empty), or YamlLoadError.

    ``where`` (usually the file path) starts every message. Only plain YAML is accepted:
    mappings, lists, strings, numbers, booleans, null, timestamps; anchors and ``<<`` merges
    within the budgets of this module.
    """
    if len(text) > MAX_YAML_CHARS:
        raise YamlLoadError(
            f"{where}: YAML text has {len(text):,} characters; allowed: at most "
            f"{MAX_YAML_CHARS:,} (split the spec or generate fewer values)"
        )
    try:  # the loader refuses non-printable characters as it is created
        return _SafeSpecLoader(text, where).get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join((exc.problem or exc.context or "invalid YAML").split())
        if exc.problem and exc.context:  # e.g. (while scanning a simple key at line 3)
            ctx = " ".join(exc.context.split())
            line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            problem += f" ({ctx}{line})"
        if problem.startswith("could not determine a constructor for the tag"):
            tag = problem.split("tag", 1)[1].strip()
            problem = (
                f"tag {excerpt(tag.strip(chr(39)), 60)} is not allowed; allowed: plain YAML "
                "(mappings, lists, strings, numbers, booleans, null)"
            )
        elif exc.problem == "but found another document":
            problem = "a second YAML document (---); allowed: one document per spec"
        raise YamlLoadError(f"{where}: {at}{problem}") from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"{where}: invalid YAML: {_first_line(exc)}") from None


def check_sizes(
    n_values_by_axis: dict[str, int],
    n_seeds: int,
    n_trials: int,
    allow_large: bool,
    *,
    where: str | None = None,
) -> list[str]:
    """One line per limit exceeded (none when ``allow_large``). ``n_values_by_axis``: the YAML
    path the user wrote (``axes.train.lr``) -> its number of values; ``n_trials``: variants x
    seeds, computed before expanding."""
    if allow_large:
        return []
    pre = f"{where}: " if where else ""
    more = "pass --allow-large to run more"
    problems = [
        f"{pre}{path}: {n:,} values; allowed: at most {MAX_AXIS_VALUES:,} per axis ({more})"
        for path, n in n_values_by_axis.items()
        if n > MAX_AXIS_VALUES
    ]
    if n_seeds > MAX_SEEDS:
        problems.append(f"{pre}seeds: {n_seeds:,} seeds; allowed: at most {MAX_SEEDS:,} ({more})")
    if n_trials > MAX_TRIALS:
        problems.append(
            f"{pre}axes x seeds: the spec expands to {n_trials:,} trials; allowed: at most "
            f"{MAX_TRIALS:,} per spec ({more})"
        )
    return problems


class _Full(Exception):
    """The excerpt is long enough."""


class _Excerpt:
    """Appends the repr of a value piece by piece and stops at ``limit`` characters."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.n, self.cut = limit, [], 0, False

    def put(self, s: str) -> None:
        if self.n + len(s) > self.limit:
            self.parts.append(s[: self.limit - self.n])
            self.cut = True
            raise _Full
        self.parts.append(s)
        self.n += len(s)

    def value(self, v: object) -> None:
        if isinstance(v, str | bytes):
            self.put(repr(v[: self.limit + 1]))
        elif isinstance(v, bool | float) or v is None:
            self.put(repr(v))
        elif isinstance(v, int):  # repr of a huge int is slow, and refused past 4300 digits
            digits = int(abs(v).bit_length() * 0.30103) + 1
            self.put(repr(v) if digits < 4000 else f"<int of about {digits:,} digits>")
        elif isinstance(v, dict):
            self.items("{", "}", v.items(), pairs=True)
        elif isinstance(v, list | tuple | set | frozenset):
            if isinstance(v, set | frozenset) and not v:
                self.put(f"{type(v).__name__}()")
            elif isinstance(v, tuple) and len(v) == 1:
                self.items("(", ",)", v)
            else:
                brackets = {list: "[]", tuple: "()"}.get(type(v), "{}")
                self.items(brackets[0], brackets[1], v)
        else:
            try:
                text = repr(v)
            except Exception:
                text = f"<{type(v).__name__}>"
            self.put(" ".join(text.split()))  # one line

    def items(self, open_: str, close: str, items, pairs: bool = False) -> None:
        self.put(open_)
        for i, item in enumerate(items):
            if i:
                self.put(", ")
            if pairs:
                self.value(item[0])
                self.put(": ")
                item = item[1]
            self.value(item)
        self.put(close)


def excerpt(value: object, limit: int = 80) -> str:
    """``repr(value)`` when it fits in ``limit`` characters, else its first ``limit``
    characters, an ellipsis and the total size, e.g. ``'aaaa…' (300,000,000 chars)``.

    Always one line, and costs O(limit) for strings and containers (even shared or cyclic
    ones), so an error message never echoes or walks a huge value.
    """
    out = _Excerpt(limit)
    try:
        out.value(value)
    except _Full:
        pass
    text = "".join(out.parts)
    if not out.cut:
        return text
    size = ""
    if isinstance(value, str):
        size = f" ({len(value):,} chars)"
    elif isinstance(value, bytes):
        size = f" ({len(value):,} bytes)"
    elif isinstance(value, dict | list | tuple | set | frozenset):
        size = f" ({len(value):,} items)"
    return f"{text}…{size}"

"""The allowed values of a setting, listed once: a ``Literal`` alias for a closed set, or a
``Choices`` registry for a technique switch that a user's module may extend.

A registry maps a value (``tangent.mode: normalize``) to what implements it. The built-in
values register exactly as a plugin's do::

    from scm_bench.core.tangent import TANGENT_MODES

    @TANGENT_MODES.register("halfnorm", "g / (||g|| + c)^(1/2)")
    def halfnorm(g, cfg):
        ...

Its ``alias`` is the type the spec schema uses: a string that must be a registered value, with
the same one-line error as a ``Literal`` (allowed values and a near match). Plugins named by a
spec reach other processes (Ray workers) through ``PLUGINS_ENV``; installed packages through
the entry-point group ``scm_bench.plugins``. Both are imported the first time a registry is
asked for its values (``discover``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from scm_bench.errors import did_you_mean

PLUGINS_ENV = "SCM_BENCH_PLUGINS"  # JSON [[module, folder or null], ...] of the spec's plugins
ENTRY_POINTS = "scm_bench.plugins"  # entry-point group: each names a module to import
_imported: set[tuple[str, str | None]] = set()
_discovered = False


def import_plugin(module: str, folder: str | None = None) -> None:
    """Import ``module`` (from ``folder`` first when given); remembered, so once per process."""
    if (module, folder) in _imported:
        return
    if folder and folder not in sys.path:
        sys.path.insert(0, folder)
    importlib.import_module(module)
    _imported.add((module, folder))


def discover() -> None:
    """Import the plugins this process was handed (``PLUGINS_ENV``) and the installed ones
    (entry points of ``ENTRY_POINTS``)."""
    global _discovered
    _discovered = True
    for module, folder in json.loads(os.environ.get(PLUGINS_ENV) or "[]"):
        import_plugin(module, folder)
    for ep in entry_points(group=ENTRY_POINTS):
        import_plugin(ep.value.partition(":")[0])


def _quoted(names) -> str:
    """'a', 'b' or 'c': how pydantic lists a Literal's values."""
    q = [repr(n) for n in names]
    return q[0] if len(q) == 1 else f"{', '.join(q[:-1])} or {q[-1]}"


class Choices:
    """The values of one setting, each with what implements it and a one-line description."""

    every: list[Choices] = []  # every registry, in the order they were made

    def __init__(self, setting: str):
        self.setting = setting  # dotted spec path, for messages
        self._items: dict[str, tuple[Any, str]] = {}
        Choices.every.append(self)
        self.alias = Annotated[str, AfterValidator(self._validate), self]  # the schema's type

    def register(self, name: str, description: str = "") -> Callable[[Any], Any]:
        """Decorator: ``@REG.register("name", "what it does")`` on what implements the value."""

        def add(obj: Any) -> Any:
            if name in self._items and self._items[name][0] is not obj:
                raise ValueError(f"{self.setting}: {name!r} registered twice")
            doc = description or (getattr(obj, "__doc__", "") or "").strip().partition("\n")[0]
            self._items[name] = (obj, doc)
            return obj

        return add

    def names(self) -> tuple[str, ...]:
        if not _discovered:
            discover()
        return tuple(self._items)

    def described(self) -> list[tuple[str, str]]:
        """(value, description) of every registered value, built-ins first."""
        self.names()
        return [(n, doc) for n, (_, doc) in self._items.items()]

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a registered value, or None."""
        if isinstance(value, str) and value in self._items:
            return None
        discover()  # a value a plugin of this process registers
        if isinstance(value, str) and value in self._items:
            return None
        hint = did_you_mean(value, self._items) if isinstance(value, str) else ""
        return f"{value!r} is not allowed; allowed: {_quoted(self._items)}{hint}"

    def get(self, value: str) -> Any:
        """What implements ``value``; ValueError naming the setting when it is not registered."""
        check(value, self.alias, self.setting)
        return self._items[value][0]

    def _validate(self, value: str) -> str:
        if self.problem(value) is not None:
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": _quoted(self._items)}
            )
        return value


def registry(alias: Any) -> Choices | None:
    """The ``Choices`` behind an alias (``TangentMode``), or None for a ``Literal``."""
    if get_origin(alias) is Annotated:
        return next((m for m in alias.__metadata__ if isinstance(m, Choices)), None)
    return None


def allowed(alias: Any) -> tuple[str, ...]:
    """The values an alias admits: a ``Literal``'s, or a registry's (plugins included)."""
    reg = registry(alias)
    return reg.names() if reg is not None else get_args(alias)


def check(value: Any, alias: Any, name: str) -> None:
    """ValueError naming the setting and its allowed values when ``value`` is not one of them."""
    reg = registry(alias)
    if reg is not None:
        problem = reg.problem(value)
        if problem:
            raise ValueError(f"{name}: {problem}")
    elif value not in get_args(alias):
        raise ValueError(f"{name} must be one of {', '.join(get_args(alias))}; got {value!r}")

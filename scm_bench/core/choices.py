"""Checking a setting against its ``Literal`` alias, so allowed values are listed only once."""

from __future__ import annotations

from typing import Any, get_args


def allowed(alias: Any) -> tuple[str, ...]:
    """The values a ``Literal`` alias admits, e.g. ``allowed(TangentMode)``."""
    return get_args(alias)


def check(value: Any, alias: Any, name: str) -> None:
    """ValueError naming the setting and its allowed values when ``value`` is not one of them."""
    if value not in get_args(alias):
        raise ValueError(f"{name} must be one of {', '.join(get_args(alias))}; got {value!r}")

"""Dotted setting paths (``tangent.mode``) and one-line messages for pydantic errors."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from scm_bench.core.choices import Choices
from scm_bench.errors import SpecError, did_you_mean
from scm_bench.safe_yaml import excerpt


def set_dotted(data: dict, dotted: str, value: Any, where: str = "--set") -> None:
    """data[a][b][c] = value for 'a.b.c', creating mappings on the way."""
    *heads, last = dotted.split(".")
    node = data
    for h in heads:
        node = node.setdefault(h, {})
        if not isinstance(node, dict):
            raise SpecError([f"{where}: {dotted}: {h} is not a mapping"])
    node[last] = value


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The pydantic model that owns the field at ``loc`` (for listing allowed keys)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return model
        model = ann
    return model


def format_errors(
    err: ValidationError, where: str, model: type[BaseModel], prefix: str = ""
) -> list[str]:
    """One line per pydantic error: path, bad value, what is allowed, near-match suggestion."""
    lines = []
    for e in err.errors():
        loc = e["loc"]
        path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)[1:]
        bad = e.get("input")
        if e["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields)
            hint = did_you_mean(loc[-1], allowed) if len(str(loc[-1])) <= 100 else ""
            msg = f"unknown key{hint}; allowed: {', '.join(allowed)}"
        elif e["type"] == "literal_error":
            allowed = e["ctx"]["expected"]
            msg = f"{excerpt(bad)} is not allowed; allowed: {allowed}"
            options = [a.strip(" '") for a in allowed.replace(" or ", ",").split(",")]
            if isinstance(bad, str) and len(bad) <= 100:
                msg += did_you_mean(bad, options)
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "value_error":  # our own validators' sentences, without pydantic's tag
            msg = e["msg"].removeprefix("Value error, ")
        else:
            text = e["msg"].removeprefix("Value error, ")  # a validator's own message
            msg = f"{text} (got {excerpt(bad)})" if bad is not None else text
        lines.append(f"{where}: {path}: {msg}")
    return lines


def field_docs(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, default, description) for every leaf setting, for `ls` and the docs."""
    rows = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(field_docs(ann, path + "."))
        else:
            default = info.default
            rows.append((path, json.dumps(default, default=str), info.description or ""))
    return rows


def allowed_of(info: FieldInfo) -> tuple[str, ...]:
    """The values a setting admits as YAML spells them (a registry's include its plugins'),
    or () for numbers, text and lists."""
    registry = next((m for m in info.metadata if isinstance(m, Choices)), None)
    if registry is not None:
        return registry.names()
    if info.annotation is bool:
        return ("true", "false")
    if get_origin(info.annotation) is Literal:
        return tuple(str(v) for v in get_args(info.annotation))
    return ()


def allowed_values(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, ...]]:
    """Dotted name -> allowed values of every leaf setting with a closed (or registered) set."""
    out = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= allowed_values(ann, f"{prefix}{name}.")
        elif values := allowed_of(info):
            out[f"{prefix}{name}"] = values
    return out

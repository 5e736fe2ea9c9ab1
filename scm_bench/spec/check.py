"""Checking a spec in one pass: every problem, one line each, before anything trains.

``validate_all`` validates a section, reports its problems, and keeps going with the broken
entries dropped (so axes, claims and data are still checked when the schema has errors);
``preflight`` checks what a trial would reject later: data folders, sample-metric names and
feature-network weights.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from scm_bench import metrics
from scm_bench.data import load_dataset
from scm_bench.errors import SpecError, UserError
from scm_bench.spec.expand import Trial
from scm_bench.spec.paths import format_errors

Model = TypeVar("Model", bound=BaseModel)
PLACEHOLDERS = {"name": "spec"}  # required keys a broken entry is replaced by, to go on


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def drop(data: Any, loc: tuple) -> None:
    """Remove the entry at ``loc`` (a pydantic error location) from nested dicts and lists:
    a key goes back to its default, a list item (a claim) is blanked for ``validate_all``."""
    if not loc:
        return
    node = data
    for part in loc[:-1]:
        if not _has(node, part):
            return  # a location inside a value (a model validator's own loc)
        node = node[part]
    last = loc[-1]
    if isinstance(node, dict) and _has(node, last):
        del node[last]
    elif _has(node, last):
        node[last] = None


def validate_all(
    model: type[Model], data: dict, where: str, prefix: str = ""
) -> tuple[Model | None, list[str], dict[str, list[int]]]:
    """(``data`` validated as ``model`` with every broken entry dropped, one line per problem
    of the data as given, the original index of every list item kept: ``{"claims": [0, 2]}``);
    the model is None when nothing valid is left."""
    data, lines = copy.deepcopy(data), []
    kept = {k: list(range(len(v))) for k, v in data.items() if isinstance(v, list)}
    for attempt in range(8):
        try:
            return model.model_validate(data), lines, kept
        except ValidationError as err:
            if attempt == 0:
                lines = format_errors(err, where, model, prefix)
            for e in err.errors():
                loc = e["loc"]
                if loc and loc[0] in PLACEHOLDERS and not prefix:
                    data[loc[0]] = PLACEHOLDERS[loc[0]]
                else:  # a list item (a claim) goes whole
                    drop(data, loc[:2] if len(loc) >= 2 and isinstance(loc[1], int) else loc)
            for key, value in list(data.items()):
                if isinstance(value, list) and None in value:
                    kept[key] = [i for i, v in zip(kept[key], value, strict=True) if v is not None]
                    data[key] = [v for v in value if v is not None]
    return None, lines, kept


def preflight(trials: list[Trial], where: str = "spec") -> None:
    """SpecError listing every problem of every distinct data / metric setting."""
    problems, seen = [], set()
    for t in trials:
        key = (t.spec.data.model_dump_json(), t.spec.eval.metrics, t.spec.eval.inception)
        if key in seen:
            continue
        seen.add(key)
        try:
            ds = load_dataset(t.spec.data)
        except UserError as err:
            problems += [f"{where}: trial.data: {line}" for line in err.lines]
            continue
        names = t.spec.eval.metrics or metrics.default_sample_metrics(ds.name)
        try:
            metrics.check_available(ds.name, names, inception=t.spec.eval.inception)
        except (UserError, ValueError) as err:
            problems.append(f"{where}: trial.eval.metrics: {err}")
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))

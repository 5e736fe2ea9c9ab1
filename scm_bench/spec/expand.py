"""Expansion of an ablation spec into trials: grid x zipped groups x seeds."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scm_bench.errors import SpecError, did_you_mean
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.claims import check_claims
from scm_bench.spec.gates import check_gates
from scm_bench.spec.paths import field_docs, format_errors
from scm_bench.spec.schema import TrialSpec

LEAF_PATHS = [row[0] for row in field_docs(TrialSpec)]


@dataclass(frozen=True)
class Trial:
    """One trial of an ablation: a stable readable id, its axis values and its resolved spec."""

    trial_id: str
    variant: str  # 'path=value,path=value' or 'base'
    axes: dict[str, Any]
    seed: int
    spec: TrialSpec

    def record(self) -> dict:
        """The trial as plain data: trials.json and `scm-bench expand --json`."""
        return {"trial_id": self.trial_id, "variant": self.variant, "axes": self.axes,
                "seed": self.seed, "spec": self.spec.model_dump(mode="json")}  # fmt: skip


def check_path(path: str, where: str, field: str) -> None:
    """An axis / search path must name a leaf setting of the trial spec."""
    if path not in LEAF_PATHS:
        raise SpecError(
            [f"{where}: {field}.{path}: unknown trial setting{did_you_mean(path, LEAF_PATHS)}"]
        )


def check_search_metric(column: str, samplers: tuple[str, ...], where: str) -> None:
    """The searched column must be a registered metric with a direction, and a sample metric
    must name one of the trial's samplers (``<metric>_<sampler>``)."""
    from scm_bench import metrics

    name = metrics.base_name(column)
    if name in metrics.REGISTRY and metrics.get(name).kind == "sample":
        allowed = [f"{name}_{s}" for s in samplers]
        if column not in allowed:
            raise SpecError(
                [
                    f"{where}: search.metric: {column!r} is not a result column"
                    f"{did_you_mean(column, allowed)}; allowed: {', '.join(allowed)}"
                ]
            )
    try:
        metric = metrics.get(name)
    except metrics.UnknownMetric as err:
        raise SpecError([f"{where}: search.metric: {err}"]) from None
    if metric.higher_is_better is None:
        raise SpecError(
            [
                f"{where}: search.metric: {column!r} has no better direction; "
                "pick a metric such as swd_2step or fid_1step"
            ]
        )


def combos(spec: AblationSpec, where: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(every combination of axis values: the product of grid axes and zipped groups, one line
    per bad axis); a bad axis is left out of the product so the rest is still checked."""
    dims: list[list[dict[str, Any]]] = []
    errors: list[str] = []
    for path, values in spec.axes.items():
        try:
            check_path(path, where, "axes")
        except SpecError as err:
            errors += err.lines
            continue
        if not values:
            errors.append(f"{where}: axes.{path}: needs at least one value")
            continue
        dims.append([{path: v} for v in values])
    for i, group in enumerate(spec.zip):
        lengths = {len(v) for v in group.values()}
        bad = [f"{where}: zip[{i}].{p}: unknown trial setting{did_you_mean(p, LEAF_PATHS)}"
               for p in group if p not in LEAF_PATHS]  # fmt: skip
        if len(lengths) != 1:
            bad.append(f"{where}: zip[{i}]: lists must have equal lengths, got {lengths}")
        errors += bad
        if bad or not group:
            continue
        n = lengths.pop()
        dims.append([{p: vals[j] for p, vals in group.items()} for j in range(n)])
    grid = [dict(kv for d in combo for kv in d.items()) for combo in itertools.product(*dims)]
    return grid, errors


def slug(value: Any) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "", text.lower()) or "x"


def trial_id(name: str, axes: dict[str, Any], seed: int, spec: TrialSpec) -> str:
    """'<name>-<last path part>=<value>_...-s<seed>-<hash of the resolved trial>'."""
    parts = "_".join(f"{p.split('.')[-1]}={slug(v)}" for p, v in axes.items())
    return "-".join(x for x in (name, parts, f"s{seed}", spec.digest()) if x)


def base_trial(spec: AblationSpec, where: str) -> TrialSpec:
    """The spec's ``trial:`` section validated as a TrialSpec (every default filled in)."""
    try:
        return TrialSpec.model_validate(spec.trial)
    except ValidationError as err:
        raise SpecError(format_errors(err, where, TrialSpec, "trial.")) from None


def yaml_text(value: Any) -> str:
    """A value as a spec spells it: true / false, null, [a, b], text and numbers as they are."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list | tuple):
        return f"[{', '.join(yaml_text(v) for v in value)}]"
    return str(value)


def variant_label(axes: dict[str, Any]) -> str:
    return ",".join(f"{p}={yaml_text(v)}" for p, v in axes.items()) or "base"


def expand(spec: AblationSpec, base: TrialSpec, where: str = "spec") -> list[Trial]:
    """All trials of a grid spec: ``base`` with each combination of axis values and each seed
    (a search spec expands to its base trial per seed)."""
    if spec.search is not None:
        if spec.axes or spec.zip:
            raise SpecError([f"{where}: search: a search spec cannot also have axes or zip"])
        for path in spec.search.params:
            check_path(path, where, "search.params")
    trials = []
    grid, errors = combos(spec, where)
    for axes in grid:
        try:  # axis values are checked once per variant, not once per seed
            variant = base.override(axes, where) if axes else base
        except SpecError as err:
            note = f" (variant {variant_label(axes)})"
            errors.extend(ln + note for ln in err.lines if ln + note not in errors)
            continue
        for seed in spec.seeds:
            ts = variant.model_copy(update={"seed": seed})
            trials.append(
                Trial(trial_id(spec.name, axes, seed, ts), variant_label(axes), axes, seed, ts)
            )
    if spec.search is not None:
        errors += _collect_lines(
            lambda: check_search_metric(spec.search.metric, base.eval.samplers, where)
        )
    if spec.baseline is not None and not errors:
        if not any(t.axes == spec.baseline for t in trials):
            labels = sorted({t.variant for t in trials})
            errors.append(f"{where}: baseline: {spec.baseline} is not one of the variants: "
                          f"{labels}")  # fmt: skip
    axes = [*spec.axes, *(p for group in spec.zip for p in group)]
    good = {p for p in axes if p in LEAF_PATHS}
    for line in check_claims(spec.claims, trials, base, axes, where):
        claim = spec.claims[int(line.split("claims[", 1)[1].split("]", 1)[0])]
        if ".metric:" in line or good == set(axes) or {*claim.variant, *claim.baseline} <= good:
            errors.append(line)  # not a claim that may name a misspelt axis: its line says it
    errors += check_gates(spec.gates, spec.claims, trials, base, where)
    if spec.search is not None and spec.claims:
        errors.append(f"{where}: claims: a search spec has no fixed variants to compare")
    if errors:
        raise SpecError(list(dict.fromkeys(errors)))
    return trials


def _collect_lines(fn) -> list[str]:
    """The lines of the SpecError ``fn()`` raises (none when it passes)."""
    try:
        fn()
    except SpecError as err:
        return list(err.lines)
    return []

"""Validity gates checked on a run's results (the spec side: ``spec.gates``).

A claim is judged only in a healthy regime: when one of its gates fails, its verdict is
"invalid regime" whatever its p. Default gate of a claim on a sample metric: every baseline-side
variant of its contrast beats the uniform sampler in that metric (mean over its ok seeds against
``<metric>_uniform``), so two broken models are never compared. Gates from the spec add more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd

from scm_bench import metrics, rundir
from scm_bench.report.pairs import contrast_cells, matching_variants
from scm_bench.spec.claims import DIVERGED, Claim
from scm_bench.spec.gates import Gate


class Outcome(NamedTuple):
    """A gate checked: did it hold, and what was measured against what."""

    passed: bool
    text: str


def _mean(rows: pd.DataFrame, column: str) -> float:
    if column not in rows:
        return math.nan
    v = pd.to_numeric(rows.loc[rows["status"] == rundir.OK, column], errors="coerce").to_numpy(
        float
    )
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def _better(value: float, reference: float, column: str) -> bool:
    m = metrics.REGISTRY.get(metrics.base_name(column))
    higher = m.higher_is_better if m is not None else None
    return value > reference if higher else value < reference


def _reference(df: pd.DataFrame, column: str, row: str) -> float:
    """The uniform (or teacher) value of a sample-metric column: ``<base>_<row>``."""
    return _mean(df.assign(status=rundir.OK), f"{metrics.base_name(column)}_{row}")


def beats_uniform(df: pd.DataFrame, rows: pd.DataFrame, label: str, column: str) -> Outcome:
    """Does the variant beat uniform in ``column``? (True with no text where no uniform value
    was recorded: nothing to check.)"""
    value, uniform = _mean(rows, column), _reference(df, column, metrics.UNIFORM)
    if not (math.isfinite(value) and math.isfinite(uniform)):
        return Outcome(True, "")
    ok = _better(value, uniform, column)
    said = "beats" if ok else "does not beat"
    return Outcome(ok, f"{label} {column} {value:.4g} {said} uniform {uniform:.4g}")


def check_gate(df: pd.DataFrame, gate: Gate, claim: Claim) -> Outcome:
    """The gate's outcome, one line saying what was measured against what."""
    label = matching_variants(df, claim, gate.variant)
    if len(label) != 1:
        return Outcome(False, f"gate variant {gate.variant} selects {len(label)} variants")
    rows = df[df["variant"].astype(str) == label[0]]
    if gate.check == "finite":
        k = int((rows["status"] == rundir.DIVERGED).sum())
        return Outcome(not k, f"{label[0]} diverged in {k} of {len(rows)} trials")
    if gate.check == "beats_uniform":
        return beats_uniform(df, rows, label[0], gate.metric)
    value = _mean(rows, gate.metric)
    teacher = _mean(rows, f"{metrics.base_name(gate.metric)}_teacher")
    if not (math.isfinite(value) and math.isfinite(teacher) and teacher):
        return Outcome(False, f"{label[0]} {gate.metric}: no value or no teacher value to compare")
    gap = abs(value / teacher - 1)
    return Outcome(gap <= gate.tolerance, f"{label[0]} {gate.metric} {value:.4g} is {gap:.0%} "
                   f"from its teacher's {teacher:.4g} (allowed {gate.tolerance:.0%})")  # fmt: skip


def gate_checks(df: pd.DataFrame, claim: Claim, gates: list[Gate]) -> list[Outcome]:
    """The claim's gates, checked: the default gate (each baseline-side cell of a sample-metric
    contrast beats uniform), then the spec's gates for it."""
    checks = []
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    if claim.metric != DIVERGED and m is not None and m.kind == "sample":
        for _, side, rows in contrast_cells(df, claim):
            if side == "baseline":
                label = str(rows["variant"].iloc[0]) if len(rows) else "baseline"
                checks.append(beats_uniform(df, rows, label, claim.metric))
    for gate in gates:
        if not gate.claims or claim.name in gate.claims:
            checks.append(check_gate(df, gate, claim))
    return [c for c in checks if c.text]


def failures(checks: Iterable[Outcome]) -> list[str]:
    """Why the regime is invalid: the texts of the checks that failed ([] when all held)."""
    return [c.text for c in checks if not c.passed]


def gate_failures(df: pd.DataFrame, claim: Claim, gates: list[Gate]) -> list[str]:
    """Why the claim's regime is invalid ([] when every gate holds)."""
    return failures(gate_checks(df, claim, gates))


def frame(df: pd.DataFrame, claim: Claim) -> str:
    """A sample-metric claim's baseline beside its references, 'baseline 12.3 · teacher 11 ·
    floor 0.594 · uniform 77.5' (means over ok seeds; '–' for other metrics), so a reader sees
    whether the compared models are any good before reading the effect."""
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    if claim.metric == DIVERGED or m is None or m.kind != "sample":
        return "–"
    base = [rows for _, side, rows in contrast_cells(df, claim) if side == "baseline"]
    values = {"baseline": _mean(pd.concat(base), claim.metric) if base else math.nan}
    for row in ("teacher", metrics.FLOOR, metrics.UNIFORM):
        values[row] = _reference(df, claim.metric, row)
    return " · ".join(f"{k} {v:.3g}" for k, v in values.items() if math.isfinite(v)) or "–"

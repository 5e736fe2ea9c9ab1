"""Validity gates: conditions the regime must meet before a claim's verdict means anything.

A claim whose gate fails reads "invalid regime" (never reproduced or contradicted):
``report.gates`` checks them on the results. Besides the spec's own gates, every claim on a
sample metric has a default one: its baseline must beat the report's uniform reference in that
metric. Example (YAML)::

    gates:
      - check: near_teacher        # the baseline's 2-step FID within 50% of its teacher's
        variant: {tangent.mode: normalize}
        metric: fid_2step
        tolerance: 0.5
      - check: finite               # the float32 reference never diverged
        variant: {train.precision: float32}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from scm_bench.spec.schema import Section

# beats_uniform: the variant's mean of a sample metric is better than the uniform sampler's |
# near_teacher: within `tolerance` (relative) of its teacher's value of the metric |
# finite: none of the variant's finished trials diverged
GateCheck = Literal["beats_uniform", "near_teacher", "finite"]


class Gate(Section):
    check: GateCheck = Field(
        description="beats_uniform | near_teacher | finite: what the variant's trials must meet."
    )
    variant: dict[str, Any] = Field(
        min_length=1, description="Axis values of the variant the gate checks."
    )
    metric: str | None = Field(
        None,
        description="beats_uniform, near_teacher: the sample-metric column, e.g. fid_2step.",
    )
    tolerance: float | None = Field(
        None, gt=0, description="near_teacher: largest relative distance (0.5 = 50%)."
    )
    claims: list[str] = Field(
        default_factory=list, description="Names of the claims it guards (empty: every claim)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Gate:
        if self.check != "finite" and self.metric is None:
            raise ValueError(f"a {self.check} gate needs a metric (a sample-metric column)")
        if (self.check == "near_teacher") != (self.tolerance is not None):
            raise ValueError("tolerance belongs to near_teacher gates, which need one")
        return self


def check_gates(gates: list[Gate], claims, trials, base, where: str) -> list[str]:
    """One line per problem: a gate's variant selects exactly one variant of ``trials``, its
    metric is a result column (``check_metric``) and the claims it names exist."""
    from scm_bench.spec.claims import check_metric

    errors, names = [], {c.name for c in claims}
    for i, gate in enumerate(gates):
        found = {t.variant for t in trials if all(t.axes.get(p) == v
                                                   for p, v in gate.variant.items())}  # fmt: skip
        if len(found) != 1:
            errors.append(f"{where}: gates[{i}].variant: {gate.variant} selects {len(found)} "
                          "variants; give axis values of exactly one")  # fmt: skip
        problem = gate.metric and check_metric(gate.metric, base)
        if problem:
            errors.append(f"{where}: gates[{i}].metric: {problem}")
        unknown = [c for c in gate.claims if c not in names]
        if unknown:
            errors.append(f"{where}: gates[{i}].claims: {unknown[0]!r} is not a claim's name")
    return errors

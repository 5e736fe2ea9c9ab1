"""A claim as data: what the paper says one variant does to one metric, relative to another.

A spec lists claims next to its axes; ``report.stats.evaluate_claims`` turns each into a verdict
(reproduced / contradicted / inconclusive) from the paired per-seed results.

Variants are named by their axis values, the same form as ``AblationSpec.baseline``: a dict
from dotted trial path to value, e.g. ``{"tangent.mode": "raw"}``. The dict must select exactly
one variant of the results table (it may leave out axes that are the same for every matching
trial). Example (YAML)::

    claims:
      - name: adaptive weighting lowers 2-step FID
        metric: fid_2step
        variant: {weighting.adaptive: true}
        baseline: {weighting.adaptive: false}
        kind: difference
        direction: lower
        paper_effect: -0.10
        paper: "Lu & Song 2024, Fig. 5b (a few tenths of FID, ~10%)"
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from scm_bench.spec.schema import Section

ClaimKind = Literal["difference", "equivalence"]
Direction = Literal["lower", "higher", "any"]
Scale = Literal["log", "linear"]
DIVERGED = "diverged"  # the metric name that selects the divergence (exact test) path


class Claim(Section):
    name: str = Field(min_length=1, description="Short statement of the claim (report heading).")
    metric: str = Field(
        description="Result column the claim is about, e.g. fid_2step; 'diverged' compares "
        "divergence rates with an exact test."
    )
    variant: dict[str, Any] = Field(
        min_length=1, description="Axis values of the treated variant: dotted path -> value."
    )
    baseline: dict[str, Any] = Field(
        min_length=1, description="Axis values of the variant it is compared with."
    )
    kind: ClaimKind = Field(
        "difference",
        description="difference: the variant changes the metric | equivalence: it changes it "
        "by less than the margin.",
    )
    direction: Direction = Field(
        "any",
        description="difference: what the variant does to the metric (lower | higher | any); "
        "equivalence: any.",
    )
    margin: float | None = Field(
        None,
        gt=0,
        description="equivalence: largest relative change still called equal (0.01 = 1%; on "
        "a linear scale relative to the baseline mean).",
    )
    paper_effect: float | None = Field(
        None,
        description="Relative effect the paper reports (-0.10: 10% lower); for 'diverged' the "
        "difference of divergence rates. Sizes the seeds-needed estimate.",
    )
    paper: str = Field("", description="Where the paper says it (section, figure, table).")
    primary: bool = Field(
        True,
        description="Primary claims share one Holm correction; secondary ones are descriptive.",
    )
    scale: Scale | None = Field(
        None,
        description="Scale of the paired differences: log (ratios) | linear; None: log for "
        "sample and cost metrics (positive quantities), linear otherwise.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Claim:
        """Cross-field rules, one line each (pydantic prefixes the location)."""
        if self.variant == self.baseline:
            raise ValueError("variant and baseline select the same axis values")
        if self.kind == "equivalence":
            if self.margin is None:
                raise ValueError("an equivalence claim needs a margin (e.g. 0.01 for 1%)")
            if self.direction != "any":
                raise ValueError("an equivalence claim has no direction (leave it 'any')")
        elif self.margin is not None:
            raise ValueError("margin applies to equivalence claims only")
        if self.paper_effect is not None:
            effect = self.paper_effect
            if self.metric == DIVERGED:
                if not -1 <= effect <= 1:
                    raise ValueError(f"paper_effect {effect}: a rate difference lies in [-1, 1]")
            elif not effect > -1:
                raise ValueError(f"paper_effect {effect}: a relative change is above -1")
            if (self.direction == "lower" and effect >= 0) or (
                self.direction == "higher" and effect <= 0
            ):
                raise ValueError(
                    f"paper_effect {effect} disagrees with direction {self.direction!r}"
                )
        if self.metric == DIVERGED and (self.scale == "log" or self.kind == "equivalence"):
            raise ValueError("'diverged' compares rates with an exact test: difference, linear")
        return self

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
# simple: one variant against one | main: one factor's levels, each seed averaged over the
# other axes | interaction: (a1 b1 - a0 b1) - (a1 b0 - a0 b0) on a 2x2 grid, per seed
Contrast = Literal["simple", "main", "interaction"]
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
    sized_for: float | None = Field(
        None,
        description="Relative effect the claim is sized for when the paper reports none (fixed "
        "before the run, registered with the design); sizes the seeds-needed estimate.",
    )
    contrast: Contrast = Field(
        "simple",
        description="simple: variant against baseline | main: the factor(s) whose values differ "
        "in variant and baseline, each seed averaged over the other axes (keys equal in both fix "
        "the context) | interaction: two factors differ, (a1, b1) against (a0, b0): the "
        "difference of differences.",
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
        if self.contrast != "simple" and set(self.variant) != set(self.baseline):
            raise ValueError(f"a {self.contrast} contrast names the same factors in variant "
                             "and baseline")  # fmt: skip
        differ = [k for k in self.variant if self.variant[k] != self.baseline.get(k)]
        if self.contrast == "interaction" and len(differ) != 2:
            raise ValueError(
                "an interaction names two factors at different levels in variant and baseline "
                "(other keys, equal in both, fix the context)"
            )
        if self.paper_effect is not None and self.sized_for is not None:
            raise ValueError("sized_for is for claims whose paper gives no effect; drop one")
        for effect in (e for e in (self.paper_effect, self.sized_for) if e is not None):
            if self.metric == DIVERGED:
                if not -1 <= effect <= 1:
                    raise ValueError(f"effect {effect}: a rate difference lies in [-1, 1]")
            elif not effect > -1:
                raise ValueError(f"effect {effect}: a relative change is above -1")
            if (self.direction == "lower" and effect >= 0) or (
                self.direction == "higher" and effect <= 0
            ):
                raise ValueError(f"effect {effect} disagrees with direction {self.direction!r}")
        if self.metric == DIVERGED and self.contrast != "simple":
            raise ValueError("'diverged' compares two variants (contrast: simple)")
        if self.metric == DIVERGED and (self.scale == "log" or self.kind == "equivalence"):
            raise ValueError("'diverged' compares rates with an exact test: difference, linear")
        return self


def _selects(claim_axes: dict[str, Any], trial_axes: dict[str, Any]) -> bool:
    return all(p in trial_axes and trial_axes[p] == v for p, v in claim_axes.items())


def _dataset_name(data) -> str:
    """The dataset name metrics see ('toy2d/grid', 'digits') for a DataSpec."""
    return f"toy2d/{data.variant}" if data.name == "toy2d" else data.name


def check_metric(column: str, base) -> str | None:
    """Why ``column`` is not a result column the trials of ``base`` (a TrialSpec) will have, or
    None: a registered metric; a sample metric applies to the data, is evaluated (eval.metrics)
    and names a sampler (``<metric>_<sampler>``, ``teacher`` included)."""
    from scm_bench import metrics
    from scm_bench.errors import did_you_mean

    if column == DIVERGED:
        return None
    name, samplers = metrics.base_name(column), (*base.eval.samplers, "teacher")
    dataset = _dataset_name(base.data)
    evaluated = base.eval.metrics or metrics.default_sample_metrics(dataset)
    if name not in metrics.REGISTRY:
        known = [m for m in metrics.REGISTRY if metrics.REGISTRY[m].kind != "sample"]
        known += [f"{m}_{s}" for m in evaluated for s in samplers]
        return f"unknown metric {column!r}{did_you_mean(column, known)}"
    if metrics.REGISTRY[name].kind != "sample":
        return None
    if name not in evaluated:
        return f"{name!r} is not evaluated on {dataset}; evaluated: {', '.join(evaluated)}"
    allowed = [f"{name}_{s}" for s in samplers]
    if column not in allowed:
        hint = did_you_mean(column, allowed)
        return f"{column!r} is not a result column{hint}; allowed: {', '.join(allowed)}"
    return None


def check_claims(claims: list[Claim], trials, base, axes: list[str], where: str) -> list[str]:
    """One line per problem: a claim's variant and baseline must each select exactly one variant
    (a main-effect contrast: at least one) of the expanded ``trials`` by axis paths in
    ``axes``, and its metric must be a result column (``check_metric``)."""
    errors, labels = [], sorted({t.variant for t in trials})
    for i, claim in enumerate(claims):
        for role in ("variant", "baseline"):
            values = getattr(claim, role)
            unknown = [p for p in values if p not in axes]
            if unknown:
                errors.append(f"{where}: claims[{i}].{role}.{unknown[0]}: not an axis of this "
                              f"spec; axes: {', '.join(axes) or 'none'}")  # fmt: skip
                continue
            found = sorted({t.variant for t in trials if _selects(values, t.axes)})
            if not found:
                errors.append(f"{where}: claims[{i}].{role}: {values} is not a variant; "
                              f"variants: {labels}")  # fmt: skip
            elif len(found) > 1 and claim.contrast != "main":  # a main effect averages them
                errors.append(f"{where}: claims[{i}].{role}: {values} selects {len(found)} "
                              f"variants {found}; give every axis value")  # fmt: skip
        problem = check_metric(claim.metric, base)
        if problem:
            errors.append(f"{where}: claims[{i}].metric: {problem}")
    return errors

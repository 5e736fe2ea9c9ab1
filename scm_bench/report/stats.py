"""The tests behind verdicts: paired per-seed tests, power, bounded intervals (``report.decide``
turns them into verdicts with Holm's correction; ``report.survival`` tests divergence).

Variants of one seed share teacher, training draws and sampling noise, so claims are tested on
per-seed differences (treated - baseline), where seed-to-seed spread cancels; positive metrics
as log ratios, so effects are relative and intervals never reach below zero. Every test is
scipy's or statsmodels'. Input: the results table, one row per trial (``trial_id, variant,
seed, status, <axis columns>, <metrics>``); claims name variants by axis values (spec.claims).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from scm_bench.report.pairs import claim_scale, paired_differences, variant_rows
from scm_bench.report.power import detectable_d, pairs_needed
from scm_bench.spec.claims import Claim

__all__ = ["claim_scale", "paired_differences", "variant_rows"]  # (from report/pairs.py)

ALPHA = 0.05  # family-wise error rate of the primary claims (Holm); TOST level
POWER = 0.8  # power at which detectable effects and seeds needed are quoted
CONFIDENCE = 0.95
MIN_WILCOXON = 6  # below 6 pairs the signed-rank test cannot reach p < 0.05 (2 / 2^5)
NAN = math.nan


@dataclass(frozen=True)
class SeedSummary:
    mean: float  # arithmetic mean
    center: float  # the estimate the interval belongs to (geometric mean above the bound on log)
    low: float
    high: float
    n: int
    scale: str  # log: interval of log(value - bound), back-transformed | linear


def seed_summary(values, lower_bound: float | None = 0.0, confidence=CONFIDENCE) -> SeedSummary:
    """Mean over seeds with a t-interval that respects the metric's lower bound.

    Values all above the bound: the t-interval of log(value - bound), mapped back with
    bound + exp(.), so it cannot cross the bound. Otherwise (or without a bound) the plain
    t-interval, its low end raised to the bound (intersecting with the parameter space keeps
    coverage). Guards against cells such as 'FID 2.53 ± 5.3'."""
    v = np.asarray(values, dtype=float)
    v, n = v[np.isfinite(v)], int(np.isfinite(v).sum())
    if n == 0:
        return SeedSummary(NAN, NAN, NAN, NAN, 0, "linear")
    log = lower_bound is not None and bool(np.all(v > lower_bound))
    x = np.log(v - lower_bound) if log else v
    lo, hi = _t_interval(x, confidence)
    if log:  # back to the metric's units
        center, lo, hi = (lower_bound + math.exp(y) for y in (x.mean(), lo, hi))
    else:
        center, lo = float(v.mean()), lo if lower_bound is None else max(lo, lower_bound)
    return SeedSummary(float(v.mean()), center, lo, hi, n, "log" if log else "linear")


def _t_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) == 0:  # no spread: the t-interval degenerates to the value
        return (NAN, NAN) if len(x) < 2 else (float(x[0]), float(x[0]))
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def seeds_needed(sd: float, effect: float, power=POWER, alpha=ALPHA, alternative="two-sided"):
    """Pairs a paired t-test needs to detect `effect` (on the claim's scale) given the SD of the
    per-seed differences: exact noncentral-t power (report.power; at least 2, inf for a zero
    effect, NaN without an effect or an SD)."""
    if not (math.isfinite(sd) and math.isfinite(effect)) or sd <= 0:
        return NAN
    return pairs_needed(abs(effect) / sd, power, alpha, alternative)


def detectable_effect(sd: float, n: int, power=POWER, alpha=ALPHA, alternative="two-sided"):
    """Smallest |effect| (on the claim's scale) a paired t-test with n pairs detects with the
    given power: sd x the detectable standardized effect (noncentral t)."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return NAN
    return sd * detectable_d(n, power, alpha, alternative)


@dataclass(frozen=True)
class Verdict:
    claim: str
    metric: str
    kind: str  # difference | equivalence (metric 'diverged': time to divergence)
    scale: str  # log: effects are log(treated / baseline) | linear: treated - baseline
    primary: bool  # in the Holm family; False: secondary, p unadjusted, descriptive
    n: int  # seed pairs, both finished, metric finite ('diverged': finished seeds)
    effect: float  # mean paired contrast on `scale` ('diverged': rate difference)
    ci_low: float  # interval of `effect` at `confidence`, inside the metric's bounds
    ci_high: float
    rel_effect: float  # relative change: exp(effect) - 1 (log) | effect / baseline mean
    rel_low: float
    rel_high: float
    p: float  # the row's test (``test``): paired t | TOST | Wilcoxon | stratified log-rank
    p_holm: float  # Holm-adjusted in the family of primary claims; NaN for secondary
    p_wilcoxon: float  # signed-rank p (robustness), n >= 6 only
    p_beyond: float  # equivalence: p that the effect lies beyond the margin
    detectable: float  # relative effect detectable at 80% power, alpha_power, this n and SD
    seeds_needed: float  # seeds to detect the registered effect at 80% power (NaN: none)
    verdict: str = "inconclusive"  # reproduced | contradicted | inconclusive | invalid regime
    summary: str = ""
    diverged: tuple[int, int, int, int] | None = None  # treated k, n; baseline k, n
    median_diverged_step: tuple[float, float] | None = None  # treated, baseline
    test: str = "paired t"  # the test that decides the row, named in the report
    confidence: float = CONFIDENCE  # of the interval shown (equivalence: 1 - 2 alpha, TOST's)
    sd: float = NAN  # SD of the paired contrasts on `scale`
    registered: float = NAN  # the registered effect on `scale` (paper's, else sized_for)
    alpha_power: float = ALPHA  # level at which detectable and seeds_needed are computed
    agrees: bool = False  # the estimate lies on the claimed side (equivalence: TOST side)
    gate: str = ""  # why the regime is invalid (a failed validity gate), empty when valid
    detectable_abs: float = NAN  # detectable effect on `scale` (shown where no relative one)


def registered_effect(claim: Claim, scale: str, base: float) -> float:
    """The effect the claim was sized for, on its scale: the paper's, else ``sized_for``;
    NaN when neither is registered (seeds needed are then not quoted)."""
    r = claim.paper_effect if claim.paper_effect is not None else claim.sized_for
    if r is None:
        return NAN
    return math.log1p(r) if scale == "log" else r * abs(base)


def _clip(lo: float, hi: float, base: float, bounds) -> tuple[float, float]:
    """A linear interval of treated - baseline kept where treated can lie: [L - base, U - base]
    for a metric bounded by (L, U) (intersecting with the parameter space keeps coverage)."""
    low, high = bounds
    lo = lo if low is None or not math.isfinite(lo) else max(lo, low - base)
    hi = hi if high is None or not math.isfinite(hi) else min(hi, high - base)
    return lo, hi


def paired_test(df: pd.DataFrame, claim: Claim, alpha_power: float = ALPHA) -> Verdict:
    """Paired t-test (scipy) on the contrasts; TOST (statsmodels) for equivalence; Wilcoxon
    signed-rank where a log-scale metric has zeros (no log ratio exists, no scale is switched)."""
    pairs = paired_differences(df, claim)
    scale, d, n = pairs.attrs["scale"], pairs["diff"].to_numpy(), len(pairs)
    base, effect = (float(pairs["baseline"].mean()), float(d.mean())) if n else (NAN, NAN)
    rel = math.expm1 if scale == "log" else (lambda x: x / abs(base) if base else NAN)
    sd = float(np.std(d, ddof=1)) if n >= 2 else NAN
    rank = pairs.attrs.get("rank", False)
    equivalence = claim.kind == "equivalence"
    confidence = 1 - 2 * ALPHA if equivalence else CONFIDENCE
    lo, hi = _t_interval(d, confidence)
    if scale == "linear":
        lo, hi = _clip(lo, hi, base, pairs.attrs.get("bounds", (None, None)))
    p = p_w = p_beyond = NAN
    if sd > 0:
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
        if n >= MIN_WILCOXON or rank:
            p_w = float(stats.wilcoxon(d).pvalue)
    test = f"paired t ({'log ratios' if scale == 'log' else 'differences'})"
    if rank:
        p, test = p_w, "Wilcoxon signed-rank (zeros: no log ratio)"
    registered = registered_effect(claim, scale, base)
    agrees = claim.direction == "any" or (effect < 0) == (claim.direction == "lower")
    if equivalence:
        low, upp = ((math.log1p(-claim.margin), math.log1p(claim.margin)) if scale == "log"
                    else (-claim.margin * abs(base), claim.margin * abs(base)))  # fmt: skip
        if sd > 0:  # TOST on the paired differences (second sample: zeros)
            p = float(ttost_paired(d, np.zeros(n), low, upp)[0])
            above = stats.ttest_1samp(d - upp, 0.0, alternative="greater").pvalue
            below = stats.ttest_1samp(d - low, 0.0, alternative="less").pvalue
            p_beyond = min(1.0, 2 * float(min(above, below)))
        test = f"TOST (paired, {'log ratios' if scale == 'log' else 'differences'})"
        # TOST power at a true effect of 0: each one-sided test at power (1 + POWER) / 2
        tost = {"power": (1 + POWER) / 2, "alternative": "larger", "alpha": alpha_power}
        mde = detectable_effect(sd, n, **tost)
        need = seeds_needed(sd, min(-low, upp), **tost)
        registered, agrees = min(-low, upp), p <= p_beyond if sd > 0 else False
    else:
        sign = -1.0 if claim.direction == "lower" else 1.0
        mde = sign * detectable_effect(sd, n, alpha=alpha_power)
        need = seeds_needed(sd, registered, alpha=alpha_power)
    return Verdict(claim.name, claim.metric, claim.kind, scale, claim.primary, n, effect, lo,
                   hi, rel(effect), rel(lo), rel(hi), p, NAN, p_w, p_beyond, rel(mde), need,
                   test=test, confidence=confidence, sd=sd, registered=registered,
                   alpha_power=alpha_power, agrees=bool(agrees),
                   detectable_abs=mde)  # fmt: skip

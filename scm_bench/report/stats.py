"""Verdicts for claims: paired per-seed tests, Holm correction, power, bounded intervals.

Variants of one seed share teacher, training draws and sampling noise, so claims are tested on
per-seed differences (treated - baseline), where seed-to-seed spread cancels; positive metrics
as log ratios, so effects are relative and intervals never reach below zero. Every test is
scipy's or statsmodels'. Input: the results table, one row per trial (``trial_id, variant,
seed, status, <axis columns>, <metrics>``); claims name variants by axis values (spec.claims).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize
from statsmodels.stats.weightstats import ttost_paired

from scm_bench.report.pairs import claim_scale, paired_differences, variant_rows
from scm_bench.spec.claims import DIVERGED, Claim

__all__ = ["claim_scale", "paired_differences", "variant_rows"]  # (from report/pairs.py)

ALPHA = 0.05  # family-wise error rate of the primary claims (Holm)
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


def _min_n(analysis, effect_size: float, power: float, alpha: float, alternative: str):
    """Smallest n (per group) at which a statsmodels power analysis reaches `power`."""
    if effect_size == 0:
        return math.inf
    for n in (2, 3, 4):  # solve_power's root finder finds no n below 2
        reached = analysis.power(effect_size, n, alpha, alternative=alternative)
        if reached >= power or (effect_size > 1 and not math.isfinite(reached)):
            return n  # NaN: the noncentral t overflows for huge effects, whose power is 1
    n = float(np.squeeze(analysis.solve_power(effect_size, None, alpha, power,
                                              alternative=alternative)))  # fmt: skip
    return math.ceil(round(n, 6)) if math.isfinite(n) else NAN  # a hair above a whole n


def seeds_needed(sd: float, effect: float, power=POWER, alpha=ALPHA, alternative="two-sided"):
    """Pairs a paired t-test needs to detect `effect` (on the claim's scale) given the SD of the
    per-seed differences (statsmodels TTestPower; at least 2, inf for a zero effect)."""
    if not (math.isfinite(sd) and math.isfinite(effect)) or sd <= 0:
        return NAN
    return _min_n(TTestPower(), abs(effect) / sd, power, alpha, alternative)


def detectable_effect(sd: float, n: int, power=POWER, alpha=ALPHA, alternative="two-sided"):
    """Smallest |effect| (on the claim's scale) a paired t-test with n pairs detects with the
    given power: sd x the detectable standardized effect of statsmodels TTestPower."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return NAN
    d = TTestPower().solve_power(None, n, alpha, power, alternative=alternative)
    return sd * float(np.squeeze(d))


@dataclass(frozen=True)
class Verdict:
    claim: str
    metric: str
    kind: str  # difference | equivalence (metric 'diverged': a difference of rates)
    scale: str  # log: effects are log(treated / baseline) | linear: treated - baseline
    primary: bool  # in the Holm family; False: secondary, p unadjusted, descriptive
    n: int  # seed pairs, both finished, metric finite ('diverged': finished seeds)
    effect: float  # mean paired difference on `scale` ('diverged': rate difference)
    ci_low: float  # 95% t-interval of `effect` ('diverged': Newcombe interval)
    ci_high: float
    rel_effect: float  # relative change: exp(effect) - 1 (log) | effect / baseline mean
    rel_low: float
    rel_high: float
    p: float  # two-sided paired t (difference) | TOST (equivalence) | Fisher exact
    p_holm: float  # Holm-adjusted in the family of primary claims; NaN for secondary
    p_wilcoxon: float  # signed-rank p (robustness), n >= 6 only
    p_beyond: float  # equivalence: p that the effect lies beyond the margin (95% CI outside)
    detectable: float  # relative effect detectable at 80% power, alpha 0.05, this n and SD
    seeds_needed: float  # seeds to detect the paper's (else observed) effect at 80% power
    verdict: str = "inconclusive"  # reproduced | contradicted | inconclusive
    summary: str = ""
    diverged: tuple[int, int, int, int] | None = None  # treated k, n; baseline k, n
    median_diverged_step: tuple[float, float] | None = None  # treated, baseline


def _paired_test(df: pd.DataFrame, claim: Claim) -> Verdict:
    """Paired t-test (scipy) on the differences; TOST (statsmodels) for equivalence."""
    pairs = paired_differences(df, claim)
    scale, d, n = pairs.attrs["scale"], pairs["diff"].to_numpy(), len(pairs)
    base, effect = (float(pairs["baseline"].mean()), float(d.mean())) if n else (NAN, NAN)
    rel = math.expm1 if scale == "log" else (lambda x: x / abs(base) if base else NAN)
    sd = float(np.std(d, ddof=1)) if n >= 2 else NAN
    p = p_w = p_beyond = NAN
    lo, hi = _t_interval(d, CONFIDENCE)
    if sd > 0:
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
        if n >= MIN_WILCOXON:
            p_w = float(stats.wilcoxon(d).pvalue)
    sign = -1.0 if claim.direction == "lower" else 1.0
    if claim.kind == "equivalence":
        bound = math.log1p(claim.margin) if scale == "log" else claim.margin * abs(base)
        if sd > 0:  # TOST on the paired differences (second sample: zeros)
            p = float(ttost_paired(d, np.zeros(n), -bound, bound)[0])
            above = stats.ttest_1samp(d - bound, 0.0, alternative="greater").pvalue
            below = stats.ttest_1samp(d + bound, 0.0, alternative="less").pvalue
            p_beyond = min(1.0, 2 * float(min(above, below)))
        # TOST power at a true effect of 0: each one-sided test at power (1 + POWER) / 2
        tost = {"power": (1 + POWER) / 2, "alternative": "larger"}
        mde, need = detectable_effect(sd, n, **tost), seeds_needed(sd, bound, **tost)
    else:
        pe = claim.paper_effect  # relative: to the claim's scale
        target = effect if pe is None else math.log1p(pe) if scale == "log" else pe * abs(base)
        mde, need = sign * detectable_effect(sd, n), seeds_needed(sd, target)
    return Verdict(claim.name, claim.metric, claim.kind, scale, claim.primary, n, effect, lo,
                   hi, rel(effect), rel(lo), rel(hi), p, NAN, p_w, p_beyond, rel(mde),
                   need)  # fmt: skip


def _divergence_test(df: pd.DataFrame, claim: Claim) -> Verdict:
    """Divergence as an outcome: diverged / finished (ok + diverged) trials per variant, Fisher's
    exact test, Newcombe interval of the rate difference; power from Cohen's h (normal
    approximation, statsmodels NormalIndPower), so seeds-needed is a rough guide at small n."""
    counts, steps = [], []
    for role in ("variant", "baseline"):
        rows = variant_rows(df, claim, role)
        done = rows[rows["status"].isin(["ok", "diverged"])]
        div = done["status"] == "diverged"
        counts += [int(div.sum()), len(done)]
        step = done.get("diverged_step", pd.Series(NAN, index=done.index))[div]
        steps.append(float(pd.to_numeric(step, errors="coerce").median()))  # NaN: none
    kt, nt, kb, nb = counts
    n = min(nt, nb)
    effect = kt / nt - kb / nb if n else NAN
    p, lo, hi, mde, need = NAN, NAN, NAN, NAN, NAN
    if n:
        p = float(stats.fisher_exact([[kt, nt - kt], [kb, nb - kb]]).pvalue)
        lo, hi = (float(x) for x in confint_proportions_2indep(kt, nt, kb, nb, method="newcomb"))
        p0, sign = kb / nb, -1.0 if claim.direction == "lower" else 1.0
        h = NormalIndPower().solve_power(nobs1=nt, alpha=ALPHA, power=POWER, ratio=nb / nt)
        angle = math.asin(math.sqrt(p0)) + sign * float(np.squeeze(h)) / 2  # h inverted
        mde = math.sin(angle) ** 2 - p0 if 0 <= angle <= math.pi / 2 else NAN
        target = claim.paper_effect if claim.paper_effect is not None else effect
        h_target = proportion_effectsize(min(max(p0 + target, 0.0), 1.0), p0)
        need = _min_n(NormalIndPower(), abs(float(h_target)), POWER, ALPHA, "two-sided")
    return Verdict(claim.name, DIVERGED, "difference", "linear", claim.primary, n, effect, lo,
                   hi, NAN, NAN, NAN, p, NAN, NAN, NAN, mde, need, diverged=(kt, nt, kb, nb),
                   median_diverged_step=(steps[0], steps[1]))  # fmt: skip


def _family_p(v: Verdict) -> float:
    # One p per claim. Equivalence: the smaller of TOST and beyond-margin p (their nulls
    # exclude each other); the verdict follows the smaller one, as a sign follows a t-test.
    return min(v.p, v.p_beyond) if v.kind == "equivalence" else v.p


def _decide(v: Verdict, claim: Claim, p_decide: float) -> str:
    if not (math.isfinite(p_decide) and p_decide < ALPHA):
        return "inconclusive"
    if v.kind == "equivalence":
        return "reproduced" if v.p <= v.p_beyond else "contradicted"
    agrees = claim.direction == "any" or (v.effect < 0) == (claim.direction == "lower")
    return "reproduced" if agrees else "contradicted"


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:+.3g}%"


def _summary(v: Verdict, claim: Claim) -> str:
    """One line for a report: the effect, its interval, the decisive p and the verdict."""
    if v.diverged is not None:
        what = ("diverged {}/{} vs {}/{}".format(*v.diverged) + f" (rate {_pct(v.effect)}, 95% "
                f"CI {_pct(v.ci_low)} to {_pct(v.ci_high)}), Fisher")  # fmt: skip
    else:
        what = (f"{claim.metric} {_pct(v.rel_effect)} (95% CI {_pct(v.rel_low)} to "
                f"{_pct(v.rel_high)}), n={v.n} seed pairs, paired t")  # fmt: skip
    if v.kind == "equivalence":
        what += f"; TOST within ±{100 * claim.margin:g}%"
    p_text = f"p_holm={v.p_holm:.2g}" if v.primary else f"p={_family_p(v):.2g} (descriptive)"
    line = f"{what}, {p_text}: {v.verdict}"
    if v.verdict == "inconclusive":
        seeds = "unknown" if math.isnan(v.seeds_needed) else f"{v.seeds_needed:g}"
        size = "the paper's" if claim.paper_effect is not None else "the observed"
        size = "the margin" if v.kind == "equivalence" else f"{size} effect"
        line += f"; detectable {_pct(v.detectable)}, seeds needed for {size}: {seeds}"
    return line


def evaluate_claims(df: pd.DataFrame, claims: list[Claim]) -> list[Verdict]:
    """Verdicts for all claims of one report. Primary claims with a p-value form one Holm family
    (statsmodels multipletests, FWER ALPHA); secondary claims are judged on unadjusted p and
    marked descriptive. Reproduced: significant in the claimed direction (equivalence: TOST);
    contradicted: significant the other way (equivalence: effect beyond the margin)."""
    tested = [(_divergence_test if c.metric == DIVERGED else _paired_test)(df, c) for c in claims]
    fam = [i for i, c in enumerate(claims) if c.primary and math.isfinite(_family_p(tested[i]))]
    p_holm = multipletests([_family_p(tested[i]) for i in fam], ALPHA, "holm")[1] if fam else []
    adjusted = dict(zip(fam, map(float, p_holm), strict=True))
    out = []
    for i, (c, v) in enumerate(zip(claims, tested, strict=True)):
        v = replace(v, p_holm=adjusted.get(i, NAN))
        v = replace(v, verdict=_decide(v, c, v.p_holm if c.primary else _family_p(v)))
        out.append(replace(v, summary=_summary(v, c)))
    return out


def evaluate_claim(df: pd.DataFrame, claim: Claim) -> Verdict:
    """The verdict of one claim alone (a Holm family of one: p_holm equals p)."""
    return evaluate_claims(df, [claim])[0]

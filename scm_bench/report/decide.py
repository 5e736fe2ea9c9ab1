"""Verdicts from tests: Holm's correction over a report's primary claims, the decision rule
and the one-line summary (the tests are ``report.stats`` and ``report.survival``).

Reproduced: significant in the claimed direction (equivalence: TOST); contradicted:
significant the other way (equivalence: beyond the margin); otherwise inconclusive. A claim
whose regime fails a validity gate (``report.gates``) is "invalid regime" instead.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
from statsmodels.stats.multitest import multipletests

from scm_bench.report.stats import ALPHA, Verdict, paired_test
from scm_bench.report.survival import divergence_test
from scm_bench.spec.claims import DIVERGED, Claim

NAN = math.nan


def family_p(v: Verdict) -> float:
    """One p per claim. Equivalence: the smaller of TOST and beyond-margin p (their nulls
    exclude each other); the verdict follows the smaller one, as a sign follows a t-test."""
    return min(v.p, v.p_beyond) if v.kind == "equivalence" else v.p


def holm(p: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels multipletests; a family of one is its own p)."""
    return list(p) if len(p) <= 1 else list(multipletests(p, ALPHA, "holm")[1])


def decide(v: Verdict, p_decide: float) -> str:
    """reproduced | contradicted | inconclusive from the deciding p and the estimate's side."""
    if not (math.isfinite(p_decide) and p_decide < ALPHA):
        return "inconclusive"
    return "reproduced" if v.agrees else "contradicted"


def pct(x: float, sign: bool = True) -> str:
    """0.123 -> '+12.3%'; NaN -> '–'."""
    return "–" if not math.isfinite(x) else f"{100 * x:{'+' if sign else ''}.3g}%"


def summary(v: Verdict, claim: Claim) -> str:
    """One line for a report: the effect, its interval, the test, the decisive p, the verdict."""
    level = f"{v.confidence:.0%} CI"
    if v.diverged is not None:
        what = ("diverged {}/{} vs {}/{}".format(*v.diverged) + f" (rate {pct(v.effect)}, 95% "
                f"CI {pct(v.ci_low)} to {pct(v.ci_high)}), {v.test}")  # fmt: skip
    else:
        what = (f"{claim.metric} {pct(v.rel_effect)} ({level} {pct(v.rel_low)} to "
                f"{pct(v.rel_high)}), n={v.n} seed pairs, {v.test}")  # fmt: skip
    if v.kind == "equivalence":
        what += f"; margin -{100 * claim.margin:g}% to +{100 * claim.margin:g}%"
    p_text = f"p_holm={v.p_holm:.2g}" if v.primary else f"p={family_p(v):.2g} (descriptive)"
    line = f"{what}, {p_text}: {v.verdict}"
    if v.gate:
        line += f" ({v.gate})"
    if v.verdict == "inconclusive":
        seeds = "no registered effect" if math.isnan(v.seeds_needed) else f"{v.seeds_needed:g}"
        line += (f"; detectable {pct(v.detectable)} at alpha {v.alpha_power:.2g}, seeds "
                 f"needed for the registered effect: {seeds}")  # fmt: skip
    return line


def power_alpha(claims: list[Claim]) -> float:
    """The level detectable effects and seeds needed are computed at when no scoreboard-wide
    one is given: Holm's first threshold over the report's primary claims (ALPHA / m)."""
    return ALPHA / max(1, sum(c.primary for c in claims))


def evaluate_claims(
    df: pd.DataFrame, claims: list[Claim], alpha_power: float | None = None
) -> list[Verdict]:
    """Verdicts for all claims of one report. Primary claims with a p-value form one Holm family
    (statsmodels multipletests, FWER ALPHA); secondary claims are judged on unadjusted p and
    marked descriptive. ``alpha_power``: the level of the power numbers (see power_alpha)."""
    a = power_alpha(claims) if alpha_power is None else alpha_power
    tested = [divergence_test(df, c, a) if c.metric == DIVERGED else paired_test(df, c, a)
              for c in claims]  # fmt: skip
    fam = [i for i, c in enumerate(claims) if c.primary and math.isfinite(family_p(tested[i]))]
    p_holm = holm([family_p(tested[i]) for i in fam])
    adjusted = dict(zip(fam, map(float, p_holm), strict=True))
    out = []
    for i, (c, v) in enumerate(zip(claims, tested, strict=True)):
        v = replace(v, p_holm=adjusted.get(i, NAN))
        v = replace(v, verdict=decide(v, v.p_holm if c.primary else family_p(v)))
        out.append(replace(v, summary=summary(v, c)))
    return out


def evaluate_claim(df: pd.DataFrame, claim: Claim) -> Verdict:
    """The verdict of one claim alone (a Holm family of one: p_holm equals p)."""
    return evaluate_claims(df, [claim])[0]

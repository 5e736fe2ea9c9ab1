"""Divergence as time to event: a trial that diverged is an event at its divergence step, a
trial that finished without diverging is censored at its last step (never dropped). Variants
are compared by the log-rank test stratified by seed (statsmodels ``survdiff``: the pairs share
teacher and draws), its direction from the treated variant's observed - expected events.

Counts, the rate difference and its Newcombe interval are shown beside it (descriptive).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import chi2 as stats_chi2
from statsmodels.duration.survfunc import survdiff
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize

from scm_bench import rundir
from scm_bench.report.pairs import variant_rows
from scm_bench.report.stats import ALPHA, POWER, Verdict
from scm_bench.spec.claims import DIVERGED, Claim

NAN = math.nan
TEST = "log-rank, stratified by seed (censored at the last step)"


def events(df: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """One row per finished trial of the claim's two variants on the seeds both finished:
    seed, treated (1/0), time (the divergence step, else the last step done), event (1
    diverged, 0 censored)."""
    parts = []
    for treated, role in ((1, "variant"), (0, "baseline")):
        rows = variant_rows(df, claim, role)
        done = rows[rows["status"].isin(rundir.FINISHED)]
        event = (done["status"] == rundir.DIVERGED).astype(int).to_numpy()
        time = np.where(event == 1, _column(done, "diverged_step"), _column(done, "steps_done"))
        parts.append(pd.DataFrame({"seed": done["seed"].to_numpy(), "treated": treated,
                                   "time": time, "event": event}))  # fmt: skip
    out = pd.concat(parts, ignore_index=True)
    # A finished trial with no recorded last step ran the whole schedule: at risk at every
    # divergence step of the run (censored after the last one).
    last = np.nanmax(out["time"].to_numpy(dtype=float), initial=0.0) + 1
    censored = (out["event"] == 0) & ~np.isfinite(out["time"].to_numpy(dtype=float))
    out.loc[censored, "time"] = last
    out = out[np.isfinite(out["time"].to_numpy(dtype=float))]
    both = out.groupby("seed")["treated"].nunique() == 2  # paired: seeds where both finished
    return out[out["seed"].isin(both[both].index)]


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows:
        return np.full(len(rows), np.nan)
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)


def observed_minus_expected(ev: pd.DataFrame) -> float:
    """Treated events minus their log-rank expectation, summed over seeds (strata): > 0 means
    the treated variant diverges sooner or more often than the baseline."""
    total = 0.0
    for _, s in ev.groupby("seed"):
        for t in np.unique(s.loc[s["event"] == 1, "time"]):
            at_risk = s[s["time"] >= t]
            d = float(((s["time"] == t) & (s["event"] == 1)).sum())
            d_treated = float(((s["time"] == t) & (s["event"] == 1) & (s["treated"] == 1)).sum())
            total += d_treated - d * float(at_risk["treated"].sum()) / len(at_risk)
    return total


def _rate_power(kb: int, nb: int, nt: int, target: float, direction: str, alpha: float):
    """(detectable rate difference, seeds needed for ``target``): Cohen's h with the normal
    approximation (statsmodels NormalIndPower), a rough guide at small n."""
    p0, sign = kb / nb, -1.0 if direction == "lower" else 1.0
    h = NormalIndPower().solve_power(nobs1=nt, alpha=alpha, power=POWER, ratio=nb / nt)
    angle = math.asin(math.sqrt(p0)) + sign * float(np.squeeze(h)) / 2  # h inverted
    mde = math.sin(angle) ** 2 - p0 if 0 <= angle <= math.pi / 2 else NAN
    if not math.isfinite(target):
        return mde, NAN
    h_target = abs(float(proportion_effectsize(min(max(p0 + target, 0.0), 1.0), p0)))
    if h_target == 0:
        return mde, math.inf
    n = 2
    while NormalIndPower().power(h_target, n, alpha) < POWER and n < 100_000:
        n += 1
    return mde, float(n)


def divergence_test(df: pd.DataFrame, claim: Claim, alpha_power: float = ALPHA) -> Verdict:
    """The claim's variants compared on time to divergence (stratified log-rank)."""
    ev = events(df, claim)
    treated, base = ev[ev["treated"] == 1], ev[ev["treated"] == 0]
    kt, nt, kb, nb = int(treated["event"].sum()), len(treated), int(base["event"].sum()), len(base)
    steps = tuple(float(g.loc[g["event"] == 1, "time"].median()) for g in (treated, base))
    n = min(nt, nb)
    counts = {"diverged": (kt, nt, kb, nb), "median_diverged_step": steps, "test": TEST,
              "alpha_power": alpha_power}  # fmt: skip
    if not n:
        return Verdict(claim.name, DIVERGED, "difference", "linear", claim.primary, 0,
                       *[NAN] * 12, **counts)  # fmt: skip
    effect = kt / nt - kb / nb
    lo, hi = (float(x) for x in confint_proportions_2indep(kt, nt, kb, nb, method="newcomb"))
    p = 1.0  # no events: the survival curves are identical
    if kt + kb:
        p = float(survdiff(ev["time"], ev["event"], ev["treated"], strata=ev["seed"])[1])
    o_e = observed_minus_expected(ev)
    agrees = o_e != 0 and (claim.direction == "any" or (o_e < 0) == (claim.direction == "lower"))
    r = claim.paper_effect if claim.paper_effect is not None else claim.sized_for
    target = NAN if r is None else r
    mde, need = _rate_power(kb, nb, nt, target, claim.direction, alpha_power)
    return Verdict(claim.name, DIVERGED, "difference", "linear", claim.primary, n, effect, lo,
                   hi, NAN, NAN, NAN, p, NAN, NAN, NAN, mde, need, registered=target,
                   agrees=bool(agrees), **counts)  # fmt: skip


def best_p(strata: int) -> float:
    """The smallest p the stratified log-rank test can give over ``strata`` seeds: in every
    stratum one arm diverges first (O - E = 1/2, V = 1/4), so chi2 = strata (1 df)."""
    return float(stats_chi2.sf(strata, 1))


def floor_warning(claim: str, strata: int, family: int, alpha: float = ALPHA) -> str:
    """'' when the best p over ``strata`` seeds clears Holm's first step (alpha / family), else
    one line: how many other primaries must be reproduced first, and the seeds that clear it."""
    floor, step = best_p(strata), alpha / family
    if floor <= step:
        return ""
    first = next((k for k in range(1, family + 1) if alpha / (family - k + 1) >= floor), None)
    need = math.ceil(stats_chi2.isf(step, 1))  # the fewest strata with best_p <= step
    when = ("can never be reproduced" if first is None
            else f"can be reproduced only after {first - 1} other primaries are")  # fmt: skip
    return (f"claim '{claim}': with {strata} seeds the log-rank test's best p is {floor:.2g}, "
            f"above the scoreboard's first Holm step {alpha:g} / {family} = {step:.2g}; it "
            f"{when}; {need} seeds clear that step")  # fmt: skip

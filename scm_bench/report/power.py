"""Power of the paired t-test from the noncentral t distribution (scipy), exact at every n.

statsmodels' TTestPower returns NaN where its noncentral t overflows (huge standardized
effects at small n); nothing here reads NaN as 1. With n pairs, standardized effect d (mean
difference / SD of the differences) and level alpha, the statistic T = mean / (SD / sqrt(n))
follows a noncentral t with n - 1 degrees of freedom and noncentrality d sqrt(n):

    power = P(T > t_{1-alpha/2}) + P(T < -t_{1-alpha/2})      (two-sided)
    power = P(T > t_{1-alpha})                                 (one-sided, 'larger')
"""

from __future__ import annotations

import math

from scipy import integrate, optimize, stats

MAX_PAIRS = 100_000  # seeds needed beyond this read as 'more than' (effect ~ 0)


def _nct_sf(x: float, df: int, nc: float) -> float:
    """P(T > x) for T ~ noncentral t(df, nc): scipy's nct, or where it returns NaN (far
    tails) the same probability from its definition T = (Z + nc) / sqrt(V / df), V ~ chi2(df):
    the integral over V of P(Z > x sqrt(V / df) - nc) (scipy quad)."""
    p = float(stats.nct.sf(x, df, nc))
    if math.isfinite(p):
        return p
    f = lambda v: stats.chi2.pdf(v, df) * stats.norm.sf(x * math.sqrt(v / df) - nc)
    return float(min(1.0, integrate.quad(f, 0, math.inf, limit=200)[0]))


def t_power(d: float, n: int, alpha: float, alternative: str = "two-sided") -> float:
    """Power of a one-sample (paired) t-test with n pairs at standardized effect |d|."""
    if n < 2:
        return math.nan
    df, nc = n - 1, abs(d) * math.sqrt(n)
    if alternative == "two-sided":
        crit = float(stats.t.ppf(1 - alpha / 2, df))
        return _nct_sf(crit, df, nc) + (1 - _nct_sf(-crit, df, nc))
    return _nct_sf(float(stats.t.ppf(1 - alpha, df)), df, nc)


def pairs_needed(d: float, power: float, alpha: float, alternative: str = "two-sided") -> float:
    """Smallest n >= 2 whose power at |d| reaches ``power`` (inf for d = 0; NaN: no d)."""
    if not math.isfinite(d):
        return math.nan
    if d == 0:
        return math.inf
    lo, hi = 2, 2
    while t_power(d, hi, alpha, alternative) < power:  # doubling, then bisection
        lo, hi = hi, hi * 2
        if hi > MAX_PAIRS:
            return math.inf
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if t_power(d, mid, alpha, alternative) < power else (lo, mid)
    return float(hi)


def detectable_d(n: int, power: float, alpha: float, alternative: str = "two-sided") -> float:
    """Smallest standardized effect |d| that n pairs detect with ``power``."""
    if n < 2:
        return math.nan
    gap = lambda d: t_power(d, n, alpha, alternative) - power
    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10))

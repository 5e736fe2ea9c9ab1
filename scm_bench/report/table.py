"""The main table: per variant and metric, the value over seeds with a 95% t-interval, the
difference from the baseline variant with a Welch t-test, and the diverged rate.

Metric meaning (direction, aggregation, kind) comes from the metric registry only; a column
whose metric is not registered is still shown, with direction "?" and no best value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from scm_bench import metrics
from scm_bench.report.load import ID_COLUMNS, Run

CONFIDENCE = 0.95
ALPHA = 0.05  # significance level of the Welch t-test against the baseline
KIND_ORDER = ("sample", "stability", "cost", "other")
# Trials whose values enter a metric: stability metrics describe diverged trials too (their
# histories were measured, e.g. `diverged` averages to the divergence rate); every other kind
# counts ok trials only. Failed trials never count.
COUNTED = {"stability": ("ok", "diverged")}
STATS = ("value", "mean", "ci_low", "ci_high", "n", "diff", "p", "significant", "best")


@dataclass(frozen=True)
class MetricInfo:
    column: str  # results.csv column, e.g. swd_2step
    base: str  # registered metric name behind it, e.g. swd (the column itself if unknown)
    higher_is_better: bool | None  # None: not registered, direction unknown
    aggregate: str  # how seeds combine: mean (with a t-interval), median, max, ...
    kind: str  # sample | stability | cost | other
    sampler: str | None  # sample metrics: 1step, 2step, teacher, ...

    @property
    def counted(self) -> tuple[str, ...]:
        """Statuses of the trials whose values enter this metric."""
        return COUNTED.get(self.kind, ("ok",))

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: "?"}[self.higher_is_better]


def metric_info(column: str) -> MetricInfo:
    base = metrics.base_name(column)
    m = metrics.REGISTRY.get(base)
    sampler = column[len(base) + 1 :] if base != column else None
    if m is None:
        return MetricInfo(column, base, None, "mean", "other", sampler)
    return MetricInfo(column, base, m.higher_is_better, m.aggregate, m.kind, sampler)


def metric_columns(run: Run) -> list[MetricInfo]:
    """Numeric outcome columns of the results table, grouped by kind, in column order.

    A column is a metric when it is neither an axis nor a bookkeeping column of the results
    table; a bookkeeping column that is itself a registered metric (``diverged_step``) counts.
    """
    res = run.results
    numeric = [
        c
        for c in res.columns
        if c not in run.axes
        and pd.api.types.is_numeric_dtype(res[c])
        and not pd.api.types.is_bool_dtype(res[c])
    ]
    infos = [metric_info(c) for c in numeric]
    infos = [i for i in infos if i.column not in ID_COLUMNS or i.column in metrics.REGISTRY]
    return sorted(infos, key=lambda i: KIND_ORDER.index(i.kind) if i.kind in KIND_ORDER else 9)


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided t-interval of the mean: mean -+ t_{(1+c)/2, n-1} * s / sqrt(n) (NaN if n < 2)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(np.mean(values)), float(np.std(values, ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sem
    return mean - half, mean + half


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's unequal-variance t-test (NaN when undefined)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def aggregate(values: np.ndarray, how: str) -> float:
    if len(values) == 0:
        return math.nan
    series = pd.Series(values, dtype=float)
    return float(getattr(series, how)() if hasattr(series, how) else series.mean())


def seed_values(run: Run, variant: str, info: MetricInfo) -> np.ndarray:
    """Finite per-seed values of the variant's trials that count for this metric."""
    res = run.results
    rows = res[(res["variant"] == variant) & res["status"].isin(info.counted)]
    vals = pd.to_numeric(rows[info.column], errors="coerce").to_numpy(dtype=float)
    return vals[np.isfinite(vals)]


def status_counts(run: Run) -> pd.DataFrame:
    """Per variant: trials, ok, diverged, failed, pending, diverged_rate (of finished trials)."""
    res = run.results
    rows = []
    for v in run.variants:
        s = res.loc[res["variant"] == v, "status"]
        counts = {k: int((s == k).sum()) for k in ("ok", "diverged", "failed", "pending")}
        finished = counts["ok"] + counts["diverged"] + counts["failed"]
        rate = counts["diverged"] / finished if finished else math.nan
        rows.append({"variant": v, "trials": len(s), **counts, "diverged_rate": rate})
    columns = ["variant", "trials", "ok", "diverged", "failed", "pending", "diverged_rate"]
    return pd.DataFrame(rows, columns=columns).astype({"variant": object})


def metric_stats(run: Run, info: MetricInfo) -> pd.DataFrame:
    """One row per variant with STATS for one metric column."""
    base = seed_values(run, run.baseline, info) if run.baseline else np.array([])
    base_value = aggregate(base, info.aggregate)
    rows = []
    for v in run.variants:
        vals = seed_values(run, v, info)
        lo, hi = t_interval(vals)
        value = aggregate(vals, info.aggregate)
        is_base = v == run.baseline
        rows.append(
            {
                "variant": v,
                "value": value,
                "mean": float(np.mean(vals)) if len(vals) else math.nan,
                "ci_low": lo,
                "ci_high": hi,
                "n": len(vals),
                "diff": math.nan if is_base else value - base_value,
                "p": math.nan if is_base else welch_p(vals, base),
            }
        )
    df = pd.DataFrame(rows)
    df["significant"] = df["p"] < ALPHA
    df["best"] = False
    values = df["value"].dropna()
    if info.higher_is_better is not None and values.nunique() > 1:  # all equal: nothing is best
        best = values.max() if info.higher_is_better else values.min()
        df["best"] = df["value"] == best
    return df


def main_table(run: Run, infos: list[MetricInfo] | None = None) -> pd.DataFrame:
    """One row per variant: axis values, status counts, and ``<metric>.<stat>`` per metric."""
    infos = metric_columns(run) if infos is None else infos
    first = run.results.drop_duplicates("variant").set_index("variant")
    table = pd.DataFrame({"variant": pd.Series(run.variants, dtype=object)})
    table["baseline"] = table["variant"] == run.baseline
    for axis in run.axes:
        table[axis] = [first.loc[v, axis] for v in run.variants]
    table = table.merge(status_counts(run), on="variant")
    columns = {}
    for info in infos:
        st = metric_stats(run, info).set_index("variant")
        for stat in STATS:
            columns[f"{info.column}.{stat}"] = st.loc[table["variant"], stat].to_numpy()
    return pd.concat([table, pd.DataFrame(columns, index=table.index)], axis=1)

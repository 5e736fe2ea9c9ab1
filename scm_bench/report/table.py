"""The main table: per variant and metric, the value over seeds with a 95% interval that stays
inside the metric's bounds (``stats.seed_summary``), the difference from the baseline variant
(descriptive: claims are tested in ``report.verdicts``), the evaluation noise, the diverged rate.

Metric meaning (direction, aggregation, kind, bounds) comes from the metric registry only; a
column whose metric is not registered is still shown, with direction "?" and no best value.
Reference columns (``<metric>_floor``, ``<metric>_uniform``) and evaluation noise
(``<metric>_<sampler>_evalsd``) are not metrics of their own: they travel with their metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scm_bench import metrics, rundir
from scm_bench.report.load import ID_COLUMNS, Run
from scm_bench.report.stats import seed_summary

KIND_ORDER = ("sample", "ratio", "mechanism", "stability", "cost", "other")
REFERENCE_ROWS = (metrics.FLOOR, metrics.UNIFORM)  # pseudo-samplers shown as rows, not columns
EVALSD = "_" + metrics.EVALSD
# Trials whose values enter a metric: stability metrics describe diverged trials too (their
# histories were measured, e.g. `diverged` averages to the divergence rate); every other kind
# counts ok trials only. Failed trials never count.
COUNTED = {"stability": rundir.FINISHED}
STATS = ("value", "mean", "ci_low", "ci_high", "n", "sd", "evalsd", "diff", "best")


@dataclass(frozen=True)
class MetricInfo:
    column: str  # results.csv column, e.g. swd_2step
    base: str  # registered metric name behind it, e.g. swd (the column itself if unknown)
    higher_is_better: bool | None  # None: not registered, direction unknown
    aggregate: str  # how seeds combine: mean (with an interval), median, max, ...
    kind: str  # sample | stability | cost | other
    sampler: str | None  # sample metrics: 1step, 2step, teacher, ...
    bounds: tuple[float | None, float | None] = (None, None)  # values the metric can take

    @property
    def counted(self) -> tuple[str, ...]:
        """Statuses of the trials whose values enter this metric."""
        return COUNTED.get(self.kind, (rundir.OK,))

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: "?"}[self.higher_is_better]


def metric_info(column: str) -> MetricInfo:
    base = metrics.base_name(column)
    m = metrics.REGISTRY.get(base)
    sampler = column[len(base) + 1 :] if base != column else None
    if m is None:
        return MetricInfo(column, base, None, "mean", "other", sampler)
    return MetricInfo(column, base, m.higher_is_better, m.aggregate, m.kind, sampler, m.bounds)


def is_metric_column(column: str) -> bool:
    """A column of its own in the tables: not evaluation noise, not a reference row."""
    return not column.endswith(EVALSD) and metric_info(column).sampler not in REFERENCE_ROWS


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
        and is_metric_column(c)
    ]
    infos = [metric_info(c) for c in numeric]
    infos = [i for i in infos if i.column not in ID_COLUMNS or i.column in metrics.REGISTRY]
    return sorted(infos, key=lambda i: KIND_ORDER.index(i.kind) if i.kind in KIND_ORDER else 9)


def aggregate(values: np.ndarray, how: str) -> float:
    if len(values) == 0:
        return math.nan
    series = pd.Series(values, dtype=float)
    return float(getattr(series, how)() if hasattr(series, how) else series.mean())


def _finite(rows: pd.DataFrame, column: str) -> np.ndarray:
    if column not in rows:
        return np.array([])
    vals = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)
    return vals[np.isfinite(vals)]


def seed_values(run: Run, variant: str, info: MetricInfo, column: str | None = None):
    """Finite per-seed values of the variant's trials that count for this metric (or for
    another column of the same trials, e.g. its evaluation noise)."""
    res = run.results
    rows = res[(res["variant"] == variant) & res["status"].isin(info.counted)]
    return _finite(rows, column or info.column)


def reference_value(run: Run, base: str, row: str) -> float:
    """The floor / uniform value of a sample metric (the same for every trial of one data and
    n_samples; the mean if trials disagree), NaN when not recorded."""
    return float(np.mean(v)) if len(v := _finite(run.results, f"{base}_{row}")) else math.nan


def status_counts(run: Run) -> pd.DataFrame:
    """Per variant: trials, ok, diverged, failed, pending, diverged_rate (of finished trials)."""
    res = run.results
    rows = []
    for v in run.variants:
        s = res.loc[res["variant"] == v, "status"]
        counts = {k: int((s == k).sum()) for k in rundir.STATUSES}
        finished = counts[rundir.OK] + counts[rundir.DIVERGED] + counts[rundir.FAILED]
        rate = counts[rundir.DIVERGED] / finished if finished else math.nan
        rows.append({"variant": v, "trials": len(s), **counts, "diverged_rate": rate})
    columns = ["variant", "trials", *rundir.STATUSES, "diverged_rate"]
    return pd.DataFrame(rows, columns=columns).astype({"variant": object})


def metric_stats(run: Run, info: MetricInfo) -> pd.DataFrame:
    """One row per variant with STATS for one metric column: the registered aggregate, the mean
    with its bounded 95% interval (means only), the SD over seeds, the mean evaluation noise
    (bootstrap SD of one value), the difference from the baseline's value, and the best."""
    base = seed_values(run, run.baseline, info) if run.baseline else np.array([])
    base_value = aggregate(base, info.aggregate)
    low, high = info.bounds
    rows = []
    for v in run.variants:
        vals = seed_values(run, v, info)
        s = seed_summary(vals, lower_bound=low)
        lo, hi = (s.low, s.high) if info.aggregate == "mean" else (math.nan, math.nan)
        hi = hi if high is None else min(hi, high)
        value = aggregate(vals, info.aggregate)
        evalsd = seed_values(run, v, info, info.column + EVALSD)
        rows.append(
            {
                "variant": v,
                "value": value,
                "mean": s.mean,
                "ci_low": lo,
                "ci_high": hi,
                "n": len(vals),
                "sd": float(np.std(vals, ddof=1)) if len(vals) >= 2 else math.nan,
                "evalsd": float(np.mean(evalsd)) if len(evalsd) else math.nan,
                "diff": math.nan if v == run.baseline else value - base_value,
            }
        )
    df = pd.DataFrame(rows)
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


def long_table(run: Run, table: pd.DataFrame, infos: list[MetricInfo]) -> pd.DataFrame:
    """The main table in long format, one row per (variant, column): variant, baseline, column,
    metric, sampler, kind, the STATS; status counts as rows of kind 'status' (n_trials, n_ok,
    n_diverged, n_failed, n_pending, diverged_rate; value only), and
    the reference rows (floor, uniform) as variants of their own (value only)."""
    rows = []
    for _, r in table.iterrows():
        key = {"variant": r["variant"], "baseline": bool(r["baseline"])}
        for name in ("trials", *rundir.STATUSES, "diverged_rate"):
            column = name if name == "diverged_rate" else f"n_{name}"  # `diverged` is a metric
            rows.append(key | {"column": column, "metric": column, "kind": "status",
                               "value": r[name]})  # fmt: skip
        for i in infos:
            stats = {s: r[f"{i.column}.{s}"] for s in STATS}
            rows.append(key | {"column": i.column, "metric": i.base, "sampler": i.sampler,
                               "kind": i.kind} | stats)  # fmt: skip
    for ref in REFERENCE_ROWS:
        for base in dict.fromkeys(i.base for i in infos if i.kind == "sample"):
            value = reference_value(run, base, ref)
            if math.isfinite(value):
                rows.append({"variant": ref, "baseline": False, "column": f"{base}_{ref}",
                             "metric": base, "kind": "sample", "value": value})  # fmt: skip
    columns = ["variant", "baseline", "column", "metric", "sampler", "kind", *STATS]
    return pd.DataFrame(rows, columns=columns)


def _metric_and_sampler(column: str) -> tuple[str, str | None]:
    """'swd_2step' -> ('swd', '2step'); 'swd_2step_evalsd' -> ('swd_evalsd', '2step');
    'g_norm_tbin_3' -> ('g_norm_tbin_3', None): only sample and cost columns name a sampler."""
    name = column.removesuffix(EVALSD)
    info = metric_info(name)
    metric, sampler = (info.base, info.sampler) if info.kind in ("sample", "cost") else (name, None)
    return metric + (EVALSD if column.endswith(EVALSD) else ""), sampler


def long_results(results: pd.DataFrame, axes: list[str] = ()) -> pd.DataFrame:
    """results.csv in long (tidy) format: one row per trial and finite numeric outcome, columns
    trial_id, variant, seed, status, metric, sampler, value (reference rows as samplers 'floor'
    and 'uniform', evaluation noise as metric '<metric>_evalsd'); axes and bookkeeping left out."""
    keys = ["trial_id", "variant", "seed", "status"]
    skip = (set(ID_COLUMNS) - set(metrics.REGISTRY)) | set(axes) | set(keys)
    columns = [c for c in results.columns if c not in skip
               and pd.api.types.is_numeric_dtype(results[c])
               and not pd.api.types.is_bool_dtype(results[c])]  # fmt: skip
    present = [k for k in keys if k in results]
    long = results[[*present, *columns]].melt(present, var_name="column", value_name="value")
    long = long[np.isfinite(pd.to_numeric(long["value"], errors="coerce").astype(float))]
    parsed = {c: _metric_and_sampler(c) for c in columns}
    long = long.assign(metric=long["column"].map(lambda c: parsed[c][0]),
                       sampler=long["column"].map(lambda c: parsed[c][1]))  # fmt: skip
    long = long.sort_values("trial_id", kind="stable").reset_index(drop=True)
    return long.reindex(columns=[*keys, "metric", "sampler", "value"])

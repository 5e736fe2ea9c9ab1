"""Which trials a claim compares, seed by seed, and on which scale (``report.stats`` tests them).

A claim names its variant and baseline by axis values; ``paired_differences`` lines the two up
by seed (they share teacher, training draws and sampling noise) and takes treated - baseline,
as log ratios for positive metrics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scm_bench import metrics
from scm_bench.rundir import FINISHED  # outcomes whose history and probes exist
from scm_bench.spec.claims import DIVERGED, Claim

LOG_KINDS = ("sample", "ratio", "cost")  # registered kinds whose metrics are positive quantities


def claim_scale(claim: Claim) -> str:
    """The claim's scale. Default: log for registered sample and cost metrics (distances, times,
    memory: positive ratios), linear otherwise (counts and rates can be 0; unknown columns)."""
    if claim.scale is not None:
        return claim.scale
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    return "log" if claim.metric != DIVERGED and m and m.kind in LOG_KINDS else "linear"


def variant_rows(df: pd.DataFrame, claim: Claim, role: str) -> pd.DataFrame:
    """Trials of the one variant whose axis columns match claim.<role> (variant | baseline).
    A value matches when equal or equal as text (CSV round trips turn True into 'True')."""
    axes = getattr(claim, role)
    mask = pd.Series(True, index=df.index)
    for path, value in axes.items():
        if path not in df.columns:
            raise ValueError(f"claim {claim.name!r}: {role}.{path} is not a results column")
        mask &= df[path].map(lambda x, v=value: bool(x == v) or str(x) == str(v))
    labels = sorted(df.loc[mask, "variant"].astype(str).unique())
    if len(labels) != 1:
        raise ValueError(f"claim {claim.name!r}: {role} {axes} selects {len(labels)} variants "
                         f"{labels}, not one")  # fmt: skip
    return df[df["variant"].astype(str) == labels[0]]


def _by_seed(rows: pd.DataFrame, claim: Claim, role: str) -> pd.Series:
    """The claim's metric per seed over the trials that have it: ok ones for sample metrics
    (and unregistered columns), finished ones (ok or diverged) for stability, probe and cost
    metrics, which a diverged trial has too."""
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    statuses = FINISHED if m is not None and m.kind not in ("sample", "ratio") else ("ok",)
    ok = rows[rows["status"].isin(statuses)]
    if ok["seed"].duplicated().any():
        raise ValueError(f"claim {claim.name!r}: {role} has several finished trials per seed")
    return pd.to_numeric(ok.set_index("seed")[claim.metric], errors="coerce")


def paired_differences(df: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """Per seed with both trials finished and the metric finite: columns seed, treated,
    baseline, diff (treated minus baseline on the claim's scale). attrs['scale'] is the scale
    used: a default log scale falls back to linear when a value is <= 0 (e.g. an unbiased KID);
    an explicit one raises."""
    if claim.metric not in df.columns:
        raise ValueError(f"claim {claim.name!r}: metric {claim.metric!r} is not a results column")
    t = _by_seed(variant_rows(df, claim, "variant"), claim, "variant")
    b = _by_seed(variant_rows(df, claim, "baseline"), claim, "baseline")
    pairs = pd.concat({"treated": t, "baseline": b}, axis=1, join="inner").rename_axis("seed")
    pairs = pairs[np.isfinite(pairs.to_numpy()).all(axis=1)].sort_index().reset_index()
    scale = claim_scale(claim)
    if scale == "log" and (pairs[["treated", "baseline"]] <= 0).any(axis=None):
        if claim.scale == "log":
            raise ValueError(f"claim {claim.name!r}: {claim.metric} has values <= 0; log scale")
        scale = "linear"
    x = np.log if scale == "log" else (lambda v: v)
    pairs["diff"] = x(pairs["treated"]) - x(pairs["baseline"])
    pairs.attrs["scale"] = scale
    return pairs

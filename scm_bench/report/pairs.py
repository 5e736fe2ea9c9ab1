"""Which trials a claim compares, seed by seed, and on which scale (``report.stats`` tests them).

A claim names its variant and baseline by axis values; ``paired_differences`` lines the two up
by seed (they share teacher, training draws and sampling noise) and takes treated - baseline,
as log ratios for positive metrics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scm_bench import metrics
from scm_bench.rundir import FINISHED, OK  # FINISHED: outcomes whose history and probes exist
from scm_bench.spec.claims import DIVERGED, Claim

LOG_KINDS = ("sample", "ratio", "cost")  # registered kinds whose metrics are positive quantities


def claim_scale(claim: Claim) -> str:
    """The claim's scale. Default: log for registered sample and cost metrics (distances, times,
    memory: positive ratios), linear otherwise (counts and rates can be 0; unknown columns)."""
    if claim.scale is not None:
        return claim.scale
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    return "log" if claim.metric != DIVERGED and m and m.kind in LOG_KINDS else "linear"


def matching_variants(df: pd.DataFrame, claim: Claim, axes: dict) -> list[str]:
    """Labels of the variants whose axis columns match ``axes``. A value matches when equal or
    equal as text (CSV round trips turn True into 'True')."""
    mask = pd.Series(True, index=df.index)
    for path, value in axes.items():
        if path not in df.columns:
            raise ValueError(f"claim {claim.name!r}: {path} is not a results column")
        mask &= df[path].map(lambda x, v=value: bool(x == v) or str(x) == str(v))
    return sorted(df.loc[mask, "variant"].astype(str).unique())


def _one(df: pd.DataFrame, claim: Claim, axes: dict, role: str) -> pd.DataFrame:
    labels = matching_variants(df, claim, axes)
    if len(labels) != 1:
        raise ValueError(f"claim {claim.name!r}: {role} {axes} selects {len(labels)} variants "
                         f"{labels}, not one")  # fmt: skip
    return df[df["variant"].astype(str) == labels[0]]


def variant_rows(df: pd.DataFrame, claim: Claim, role: str) -> pd.DataFrame:
    """Trials of the one variant whose axis columns match claim.<role> (variant | baseline)."""
    return _one(df, claim, getattr(claim, role), role)


def contrast_cells(df: pd.DataFrame, claim: Claim) -> list[tuple[float, str, pd.DataFrame]]:
    """(weight, side, trials) per variant the claim's contrast combines; side 'treated' or
    'baseline' (the interaction's mixed corners: 'other'). Simple: +1 variant, -1 baseline.
    Main: every variant at the variant's factor levels +1/k, at the baseline's -1/k (k each,
    the other axes averaged out within the seed). Interaction on the two factors A, B whose
    values differ, variant (a1, b1), baseline (a0, b0): +(a1 b1) - (a0 b1) - (a1 b0) + (a0 b0);
    keys equal in both fix the context."""
    if claim.contrast == "simple":
        return [(1.0, "treated", variant_rows(df, claim, "variant")),
                (-1.0, "baseline", variant_rows(df, claim, "baseline"))]  # fmt: skip
    if claim.contrast == "main":
        sides = {r: matching_variants(df, claim, getattr(claim, r))
                 for r in ("variant", "baseline")}  # fmt: skip
        k = len(sides["variant"])
        if k == 0 or k != len(sides["baseline"]):
            raise ValueError(f"claim {claim.name!r}: a main effect needs as many variants at "
                             f"each level, found {k} and {len(sides['baseline'])}")  # fmt: skip
        label = df["variant"].astype(str)
        return [(w / k, side, df[label == v]) for w, side, role in
                ((1.0, "treated", "variant"), (-1.0, "baseline", "baseline"))
                for v in sides[role]]  # fmt: skip
    fixed = {k: v for k, v in claim.variant.items() if claim.baseline[k] == v}
    (fa, a1), (fb, b1) = ((k, v) for k, v in claim.variant.items() if k not in fixed)
    a0, b0 = claim.baseline[fa], claim.baseline[fb]
    corners = [
        (1.0, "treated", {fa: a1, fb: b1}),
        (-1.0, "other", {fa: a0, fb: b1}),
        (-1.0, "other", {fa: a1, fb: b0}),
        (1.0, "baseline", {fa: a0, fb: b0}),
    ]
    return [(w, side, _one(df, claim, fixed | axes, "corner")) for w, side, axes in corners]


def _by_seed(rows: pd.DataFrame, claim: Claim, role: str) -> pd.Series:
    """The claim's metric per seed over the trials that have it: ok ones for sample metrics
    (and unregistered columns), finished ones (ok or diverged) for stability, probe and cost
    metrics, which a diverged trial has too."""
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    statuses = FINISHED if m is not None and m.kind not in ("sample", "ratio") else (OK,)
    ok = rows[rows["status"].isin(statuses)]
    if ok["seed"].duplicated().any():
        raise ValueError(f"claim {claim.name!r}: {role} has several finished trials per seed")
    return pd.to_numeric(ok.set_index("seed")[claim.metric], errors="coerce")


def paired_differences(df: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """Per seed with every trial of the contrast finished and the metric finite: columns seed,
    treated, baseline (mean raw value of each side), diff (the contrast on the claim's scale).
    attrs: 'scale' used; 'rank' True when a default log scale meets a value <= 0 (no log
    ratio exists: the test becomes a signed-rank test on differences, never a silent switch);
    'bounds' the metric's registered bounds. An explicit log scale with such values raises."""
    if claim.metric not in df.columns:
        raise ValueError(f"claim {claim.name!r}: metric {claim.metric!r} is not a results column")
    cells = contrast_cells(df, claim)
    values = pd.concat({i: _by_seed(rows, claim, side) for i, (_, side, rows) in
                        enumerate(cells)}, axis=1, join="inner")  # fmt: skip
    values = values[np.isfinite(values.to_numpy()).all(axis=1)].sort_index()
    scale, rank = claim_scale(claim), False
    if scale == "log" and (values <= 0).any(axis=None):
        if claim.scale == "log":
            raise ValueError(f"claim {claim.name!r}: {claim.metric} has values <= 0; log scale")
        scale, rank = "linear", True
    x = np.log(values) if scale == "log" else values
    side = lambda s: [i for i, c in enumerate(cells) if c[1] == s]
    pairs = pd.DataFrame({"treated": values[side("treated")].mean(axis=1),
                          "baseline": values[side("baseline")].mean(axis=1),
                          "diff": sum(w * x[i] for i, (w, _, _) in enumerate(cells))})  # fmt: skip
    pairs = pairs.rename_axis("seed").reset_index()
    m = metrics.REGISTRY.get(metrics.base_name(claim.metric))
    pairs.attrs.update(scale=scale, rank=rank, bounds=m.bounds if m else (None, None))
    return pairs

"""Report figures (seaborn on the headless Agg backend), saved as byte-stable PNGs.

Each function takes tidy data, writes one PNG and returns its path (None when there is
nothing to plot). Colors follow the variant order, so a variant has one color everywhere.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import ticker  # noqa: E402

from scm_bench.rundir import T_BINS  # noqa: E402

# Fixed style and no embedded dates or versions: the same data gives the same PNG bytes.
RC = {"svg.hashsalt": "scm-bench", "figure.dpi": 100, "savefig.dpi": 100, "font.size": 9}
CURVES = {"loss": "loss", "grad_norm": "gradient norm", "g_norm": "||g|| (before normalization)"}


def palette(variants: list[str]) -> dict[str, tuple]:
    n = max(len(variants), 1)
    return dict(zip(variants, sns.color_palette("tab10" if n <= 10 else "husl", n), strict=True))


def short_label(variant: str) -> str:
    """'tangent.mode=clip,net.width=64' -> 'clip, 64' (the axis names label the plot)."""
    parts = [p.partition("=") for p in variant.split(",")]
    return ", ".join(v for _, sep, v in parts if sep) or variant


class _PlainLog(ticker.LogFormatter):
    """LogFormatter's choice of labelled ticks, written as plain numbers (0.03, 2, 10)."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def _log_y(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLog())
    ax.yaxis.set_minor_formatter(_PlainLog(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def _save(fig, path: Path) -> Path:
    fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return path


@contextmanager
def _styled():
    """seaborn's whitegrid style plus RC, restored afterwards (no global state changes)."""
    with sns.axes_style("whitegrid"), plt.rc_context(RC):
        yield


def curves_figure(curves: pd.DataFrame, variants, diverged: pd.DataFrame, path: Path):
    """Training curves per variant, mean over seeds with a +-1 sd band; diverged steps dotted."""
    fields = [f for f in CURVES if f in curves and curves[f].notna().any()]
    if not fields:
        return None
    colors = palette(variants)
    hue_order = [v for v in variants if v in set(curves["variant"])]
    with _styled():
        fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 3.2), squeeze=False)
        for ax, field in zip(axes[0], fields, strict=True):
            data = curves[["step", "variant", field]].dropna()
            sns.lineplot(
                data=data,
                x="step",
                y=field,
                hue="variant",
                hue_order=hue_order,
                palette=colors,
                errorbar="sd",
                ax=ax,
                legend=ax is axes[0][0],
            )
            if field != "loss" and (data[field] > 0).all() and len(data):
                _log_y(ax)
            for _, row in diverged.iterrows():
                ax.axvline(row["diverged_step"], color=colors.get(row["variant"]), ls=":", lw=1)
            ax.set(title=CURVES[field], ylabel="")
        if axes[0][0].get_legend() is not None:
            sns.move_legend(
                axes[0][0],
                "upper left",
                bbox_to_anchor=(0, -0.2),
                ncol=2,
                title=None,
                frameon=False,
            )
        return _save(fig, path)


EVAL_PREFIX = "eval_"  # history fields of eval.curve_every: a sample metric against step
MAX_EVAL_PANELS = 4


def _line_panels(panels, variants, path: Path, xlabel: str | None = None):
    """One lineplot panel per (title, data, x, log_y) with hue = variant (mean +- sd over
    seeds, markers), the legend under the first panel; the figure's path."""
    hue_order = [v for v in variants if any(v in set(d["variant"]) for _, d, _, _ in panels)]
    with _styled():
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
        for ax, (title, data, x, log_y) in zip(axes[0], panels, strict=True):
            sns.lineplot(data=data, x=x, y="value", hue="variant", hue_order=hue_order,
                         palette=palette(variants), errorbar="sd", marker="o", ax=ax,
                         legend=ax is axes[0][0])  # fmt: skip
            if log_y and (data["value"] > 0).all():
                _log_y(ax)
            ax.set(title=title, xlabel=xlabel or x, ylabel="")
        if axes[0][0].get_legend() is not None:
            sns.move_legend(axes[0][0], "upper left", bbox_to_anchor=(0, -0.2), ncol=2,
                            title=None, frameon=False)  # fmt: skip
        return _save(fig, path)


def eval_curve_figure(curves: pd.DataFrame, variants, path: Path):
    """Sample metrics against step (eval.curve_every), mean +- sd over seeds, one panel each."""
    fields = [c for c in curves.columns if c.startswith(EVAL_PREFIX) and curves[c].notna().any()]
    if not fields:
        return None
    panels = [
        (f.removeprefix(EVAL_PREFIX), curves[["step", "variant", f]].dropna().rename(
            columns={f: "value"}), "step", False)
        for f in sorted(fields)[:MAX_EVAL_PANELS]
    ]  # fmt: skip
    return _line_panels(panels, variants, path)


PROBES = {"dfdt": "sin(t) RMS dF/dt", "g_p99": "||g||, 99th percentile",
          "fp16_nonfinite": "float16 JVP: non-finite share"}  # fmt: skip


def probe_figure(results: pd.DataFrame, variants, path: Path):
    """The end-of-training probes per t-bin (columns <name>_tbin_<i>), mean +- sd over seeds."""
    long = []
    for name in PROBES:
        for b in range(T_BINS):
            col = f"{name}_tbin_{b}"
            if col in results:
                t = (b + 0.5) * (math.pi / 2) / T_BINS
                part = results[["variant", col]].rename(columns={col: "value"})
                long.append(part.assign(probe=name, t=t))
    data = pd.concat(long, ignore_index=True).dropna() if long else pd.DataFrame()
    names = [n for n in PROBES if not data.empty and (data["probe"] == n).any()]
    if not names:
        return None
    panels = [(PROBES[n], data[data["probe"] == n], "t", n != "fp16_nonfinite") for n in names]
    return _line_panels(panels, variants, path, xlabel="t (bin centre)")


def tbin_figure(tbins: pd.DataFrame, variants, path: Path):
    """||g|| per t-bin at the last logged step where every bin is finite, mean +- sd over seeds."""
    if tbins.empty or tbins["g_norm"].notna().sum() == 0:
        return None
    complete = tbins.groupby(["trial_id", "step"])["g_norm"].transform(lambda s: s.notna().all())
    tb = tbins[complete & tbins["g_norm"].notna()]
    last = tb.groupby("trial_id")["step"].transform("max")
    tb = tb[tb["step"] == last].assign(t=lambda d: (d["bin"] + 0.5) * (math.pi / 2) / T_BINS)
    hue_order = [v for v in variants if v in set(tb["variant"])]
    with _styled():
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        sns.lineplot(
            data=tb,
            x="t",
            y="g_norm",
            hue="variant",
            hue_order=hue_order,
            palette=palette(variants),
            errorbar="sd",
            marker="o",
            ax=ax,
        )
        if (tb["g_norm"] > 0).all():
            _log_y(ax)
        ax.set(
            xlabel="t (bin centre, TrigFlow time in [0, pi/2])",
            ylabel="||g||",
            title="||g|| by t-bin at the end of training",
        )
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), title=None, frameon=False)
        return _save(fig, path)


def _seed_lines(ax, points: pd.DataFrame, centers: dict) -> None:
    """Each seed's values as dots, joined across variants (one line per sampler and seed)."""
    keys = zip(points["variant"], points["sampler"], strict=True)
    pts = points.assign(x=[centers.get(k) for k in keys]).dropna(subset=["x", "value"])
    if pts.empty:
        return
    pts = pts.assign(unit=pts["sampler"].astype(str) + "/" + pts["seed"].astype(str))
    sns.lineplot(
        data=pts,
        x="x",
        y="value",
        units="unit",
        estimator=None,
        color="0.2",
        lw=0.7,
        alpha=0.6,
        marker="o",
        markersize=3.5,
        legend=False,
        sort=False,
        ax=ax,
    )


def bars_figure(
    data: pd.DataFrame,
    variants,
    title: str,
    ylabel: str,
    xlabel: str,
    path: Path,
    points: pd.DataFrame | None = None,
    floor: float = math.nan,
):
    """Grouped bars: x = variant, hue = sampler; error bars are the table's 95% intervals; dots
    joined by lines are the seeds (``points``: variant, sampler, seed, value); a dashed line is
    the metric's floor (real against real data).

    ``data`` columns: variant, sampler, value, ci_low, ci_high (one row per bar).
    """
    if data.empty or "variant" not in data:  # no bars at all
        return None
    data = data[data["variant"].isin(variants)]
    if data.empty or data["value"].notna().sum() == 0:
        return None
    order = [v for v in variants if v in set(data["variant"])]
    hue_order = list(dict.fromkeys(data["sampler"]))
    data = data.assign(label=data["variant"].map(short_label))
    with _styled():
        fig, ax = plt.subplots(
            figsize=(max(3.5, 1.1 * len(order) * max(1, len(hue_order)) / 1.5), 3.4)
        )
        sns.barplot(
            data=data,
            x="label",
            y="value",
            hue="sampler",
            order=[short_label(v) for v in order],
            hue_order=hue_order,
            errorbar=None,
            palette="muted",
            alpha=0.8,
            ax=ax,
        )
        centers = {}
        for container, sampler in zip(ax.containers, hue_order, strict=False):
            rows = data[data["sampler"] == sampler].set_index("variant")
            for bar, variant in zip(container, order, strict=False):
                if variant not in rows.index:
                    continue
                r, x = rows.loc[variant], bar.get_x() + bar.get_width() / 2
                centers[(variant, sampler)] = x
                if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
                    half = (r["ci_high"] - r["ci_low"]) / 2  # the interval, not centred on the mean
                    ax.errorbar(x, r["ci_low"] + half, yerr=half, fmt="none", ecolor="black",
                                capsize=3, lw=1)  # fmt: skip
        if points is not None and len(points):
            _seed_lines(ax, points[points["variant"].isin(order)], centers)
        if np.isfinite(floor):
            ax.axhline(floor, color="0.4", ls="--", lw=1, label="floor: real vs real")
        ax.set(title=title, ylabel=ylabel, xlabel=xlabel)
        ax.tick_params(axis="x", labelrotation=20 if len(order) > 3 else 0)
        ax.legend(*ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.02, 1),
                  frameon=False)  # fmt: skip
        return _save(fig, path)

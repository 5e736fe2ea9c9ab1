"""The spec's claims judged on a run: verdict rows for the report, noise and power for `plan`.

Every number comes from ``report.stats`` (paired per-seed tests, Holm over the primary claims,
power from statsmodels); this module only picks the claims, catches the ones a partial run
cannot evaluate yet, and words the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import ValidationError

from scm_bench.report.load import Run
from scm_bench.report.stats import (
    ALPHA,
    POWER,
    Verdict,
    evaluate_claims,
    paired_differences,
    variant_rows,
)
from scm_bench.spec.claims import DIVERGED, Claim

NAN = math.nan
EVALSD = "_evalsd"


@dataclass(frozen=True)
class Judged:
    claim: Claim
    verdict: Verdict | None  # None: not evaluable on this run (``problem`` says why)
    problem: str = ""
    noise: float = NAN  # SD of the paired differences on the claim's scale
    eval_noise: float = NAN  # mean bootstrap SD of one value, relative to the metric's mean
    variant: str | None = None  # the label of the claim's treated variant in the results


def claims_of(run: Run) -> tuple[list[Claim], list[str]]:
    """The claims of the run's spec.yaml, and a note for each one that does not validate."""
    claims, notes = [], []
    for i, raw in enumerate(run.spec.get("claims") or []):
        try:
            claims.append(Claim.model_validate(raw))
        except ValidationError as err:
            notes.append(f"claims[{i}] is not a valid claim and was skipped: "
                         f"{err.errors()[0]['msg']}")  # fmt: skip
    return claims, notes


def _noise(df: pd.DataFrame, claim: Claim) -> tuple[float, float]:
    """(SD of the paired differences, mean relative evaluation noise of both variants)."""
    if claim.metric == DIVERGED:
        for role in ("variant", "baseline"):
            variant_rows(df, claim, role)  # raises when the variant is not in the results
        return NAN, NAN
    d = paired_differences(df, claim)["diff"]
    sd = float(d.std(ddof=1)) if len(d) >= 2 else NAN
    rel = []
    for role in ("variant", "baseline"):
        rows = variant_rows(df, claim, role)
        rows = rows[rows["status"] == "ok"]
        if claim.metric + EVALSD in rows:
            sd_eval = pd.to_numeric(rows[claim.metric + EVALSD], errors="coerce")
            rel += list(sd_eval / pd.to_numeric(rows[claim.metric], errors="coerce").abs())
    rel = [r for r in rel if math.isfinite(r)]
    return sd, float(np.mean(rel)) if rel else NAN


def judge(run: Run) -> tuple[list[Judged], list[str]]:
    """Every claim of the run's spec with its verdict (claims a partial run cannot evaluate
    yet get none), and notes on the skipped ones. One Holm family: the primary claims judged."""
    claims, notes = claims_of(run)
    found, problems = {}, {}
    for i, c in enumerate(claims):
        try:
            label = str(variant_rows(run.results, c, "variant")["variant"].iloc[0])
            found[i] = (*_noise(run.results, c), label)
        except ValueError as err:
            problems[i] = str(err)
    ok = [i for i in range(len(claims)) if i not in problems]
    verdicts = dict(zip(ok, evaluate_claims(run.results, [claims[i] for i in ok]), strict=True))
    judged = [Judged(c, verdicts.get(i), problems.get(i, ""), *found.get(i, (NAN, NAN, None)))
              for i, c in enumerate(claims)]  # fmt: skip
    return judged, notes


def pct(x: float, sign: bool = True) -> str:
    """0.123 -> '+12.3%'; NaN -> '–'."""
    return "–" if not math.isfinite(x) else f"{100 * x:{'+' if sign else ''}.3g}%"


def effect_text(v: Verdict) -> str:
    """'-12% [-20%, -3%]' (relative change); a difference where the baseline is 0; divergence
    counts and the rate difference."""
    if v.diverged is not None:
        k_t, n_t, k_b, n_b = v.diverged
        rates = f"{pct(v.effect)} [{pct(v.ci_low)}, {pct(v.ci_high)}]"
        return f"{k_t}/{n_t} vs {k_b}/{n_b} diverged: {rates}"
    if v.scale == "linear" and not math.isfinite(v.rel_effect):  # e.g. a count from 0
        return f"{v.effect:+.3g} [{v.ci_low:+.3g}, {v.ci_high:+.3g}] (difference)"
    return f"{pct(v.rel_effect)} [{pct(v.rel_low)}, {pct(v.rel_high)}]"


def paper_text(c: Claim) -> str:
    if c.kind == "equivalence":
        return f"equal within ±{100 * c.margin:g}%"
    if c.paper_effect is not None:  # the paper's effect; its sign says the direction
        return pct(c.paper_effect)
    return {"lower": "lower", "higher": "higher", "any": "different"}[c.direction]


def _seeds(x: float) -> str:
    return "∞" if x == math.inf else "–" if not math.isfinite(x) else f"{x:g}"


VERDICT_COLUMNS = ["claim", "metric", "verdict", "effect [95% CI]", "paper", "pairs",
                   "p (Holm)", "detectable (80%)", "seeds for 80%"]  # fmt: skip


def verdict_rows(judged: list[Judged]) -> list[dict]:
    """One display row per claim (VERDICT_COLUMNS keys, plain text) plus the verdict word."""
    rows = []
    for j in judged:
        c, v = j.claim, j.verdict
        name = c.name + ("" if c.primary else " (secondary)")
        if v is None:
            rows.append(dict.fromkeys(VERDICT_COLUMNS, "–") | {"claim": name, "metric": c.metric,
                        "verdict": "not evaluated", "effect [95% CI]": j.problem,
                        "paper": paper_text(c)})  # fmt: skip
            continue
        p = v.p_holm if c.primary else (min(v.p, v.p_beyond) if c.kind == "equivalence" else v.p)
        p_text = "–" if not math.isfinite(p) else f"{p:.2g}" + ("" if c.primary else " (raw)")
        rows.append({"claim": name, "metric": c.metric, "verdict": v.verdict,
                     "effect [95% CI]": effect_text(v), "paper": paper_text(c), "pairs": str(v.n),
                     "p (Holm)": p_text, "detectable (80%)": pct(v.detectable),
                     "seeds for 80%": _seeds(v.seeds_needed)})  # fmt: skip
    return rows


VERDICT_LEGEND = (
    "Effects are relative changes of the variant against its baseline, paired by seed (same "
    "teacher, training draws and sampling noise): the mean of per-seed log ratios, back-"
    "transformed, with its 95% t-interval; divergence is compared as rates (Fisher's exact test). "
    f"Reproduced: significant in the claimed direction after Holm's correction over the primary "
    f"claims (family-wise α = {ALPHA:g}); equivalence claims by two one-sided tests against the "
    "margin. Contradicted: significant the other way (or beyond the margin). Otherwise "
    f"inconclusive. Detectable: the smallest effect these pairs detect with {POWER:.0%} power; "
    "seeds for 80%: the pairs needed for the paper's effect (else the observed one, or the "
    "margin). Secondary claims are descriptive (raw p, no verdict weight in the family)."
)


def plan_lines(run: Run) -> list[str]:
    """Per claim: the noise observed so far, the effect these seeds can detect and the seeds
    needed; for `scm-bench plan`."""
    judged, notes = judge(run)
    if not judged:
        return [f"{run.name}: the spec states no claims; nothing to plan"] + notes
    lines = []
    for j in judged:
        c, v = j.claim, j.verdict
        lines.append(f"{c.name} [{c.metric}, {'primary' if c.primary else 'secondary'}]")
        if v is None:
            lines.append(f"  not evaluable yet: {j.problem}")
            continue
        if v.diverged is not None:
            lines.append(f"  diverged: {v.diverged[0]}/{v.diverged[1]} (variant) vs "
                         f"{v.diverged[2]}/{v.diverged[3]} (baseline)")  # fmt: skip
        else:
            unit = "log ratios" if v.scale == "log" else "differences"
            lines.append(f"  noise: SD of the {v.n} paired {unit} {j.noise:.3g}; evaluation "
                         f"noise of one value {pct(j.eval_noise, sign=False)}")  # fmt: skip
        target = (
            "the margin"
            if c.kind == "equivalence"
            else (
                "the paper's effect " + pct(c.paper_effect)
                if c.paper_effect is not None
                else "the observed effect " + pct(v.rel_effect if v.diverged is None else v.effect)
            )
        )
        lines.append(f"  detectable with {v.n} pairs at {POWER:.0%} power: {pct(v.detectable)}")
        lines.append(f"  seeds needed for {target}: {_seeds(v.seeds_needed)}; now: {v.verdict}")
    return lines + notes

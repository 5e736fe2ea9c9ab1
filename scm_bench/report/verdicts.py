"""The spec's claims judged on a run: verdict rows for the report, noise and power for `plan`.

Every number comes from ``report.stats`` (paired per-seed tests, Holm over the primary claims,
power from statsmodels); this module only picks the claims, catches the ones a partial run
cannot evaluate yet, and words the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from pydantic import ValidationError

from scm_bench import rundir
from scm_bench.report import confirm
from scm_bench.report.decide import evaluate_claims, family_p, pct
from scm_bench.report.gates import Outcome, failures, gate_checks
from scm_bench.report.load import Run
from scm_bench.report.pairs import contrast_cells, paired_differences
from scm_bench.report.stats import ALPHA, POWER, Verdict
from scm_bench.spec.claims import DIVERGED, Claim
from scm_bench.spec.gates import Gate

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
    design: str = "exploratory"  # confirmatory | exploratory (report.confirm)
    design_why: str = ""
    gates: tuple[Outcome, ...] = ()  # its validity gates, checked (``report.gates``)


def _entries(run: Run, key: str, model, what: str) -> tuple[list, list[str]]:
    """The valid entries of the run's spec.yaml list ``key`` as ``model``s, and a note for each
    one that does not validate (it is skipped, the report goes on)."""
    valid, notes = [], []
    for i, raw in enumerate(run.spec.get(key) or []):
        try:
            valid.append(model.model_validate(raw))
        except ValidationError as err:
            notes.append(f"{key}[{i}] is not a valid {what} and was skipped: "
                         f"{err.errors()[0]['msg']}")  # fmt: skip
    return valid, notes


def claims_of(run: Run) -> tuple[list[Claim], list[str]]:
    """The claims of the run's spec.yaml, and a note for each one that does not validate."""
    return _entries(run, "claims", Claim, "claim")


def gates_of(run: Run) -> tuple[list[Gate], list[str]]:
    """The gates of the run's spec.yaml, and a note for each one that does not validate."""
    return _entries(run, "gates", Gate, "gate")


def _noise(df: pd.DataFrame, claim: Claim) -> tuple[float, float]:
    """(SD of the paired differences, mean relative evaluation noise of both variants)."""
    cells = contrast_cells(df, claim)  # raises when a variant is not in the results
    if claim.metric == DIVERGED:
        return NAN, NAN
    d = paired_differences(df, claim)["diff"]
    sd = float(d.std(ddof=1)) if len(d) >= 2 else NAN
    rel = []
    for _, _, rows in cells:
        rows = rows[rows["status"] == rundir.OK]
        if claim.metric + EVALSD in rows:
            sd_eval = pd.to_numeric(rows[claim.metric + EVALSD], errors="coerce")
            rel += list(sd_eval / pd.to_numeric(rows[claim.metric], errors="coerce").abs())
    rel = [r for r in rel if math.isfinite(r)]
    return sd, float(np.mean(rel)) if rel else NAN


def judge(run: Run, alpha_power: float | None = None) -> tuple[list[Judged], list[str]]:
    """Every claim of the run's spec with its verdict (claims a partial run cannot evaluate
    yet get none), and notes on the skipped ones. One Holm family: the primary claims judged.
    A claim whose gate fails reads 'invalid regime'; every claim says confirmatory or
    exploratory (``report.confirm``). ``alpha_power``: the level of the power numbers (the
    scoreboard's adjusted alpha when published; default the report's own)."""
    claims, notes = claims_of(run)
    gates, gate_notes = gates_of(run)
    design, why = confirm.status(run) if claims else ("exploratory", "")
    found, problems = {}, {}
    for i, c in enumerate(claims):
        try:
            label = str(contrast_cells(run.results, c)[0][2]["variant"].iloc[0])
            found[i] = (*_noise(run.results, c), label)
        except (ValueError, IndexError) as err:
            problems[i] = str(err) or "no trials"
    ok = [i for i in range(len(claims)) if i not in problems]
    tested = evaluate_claims(run.results, [claims[i] for i in ok], alpha_power)
    verdicts, checks = {}, {}
    for i, v in zip(ok, tested, strict=True):
        checks[i] = tuple(gate_checks(run.results, claims[i], gates))
        failed = failures(checks[i])
        verdicts[i] = replace(v, verdict="invalid regime", gate="; ".join(failed)) if failed else v
    judged = [Judged(c, verdicts.get(i), problems.get(i, ""), *found.get(i, (NAN, NAN, None)),
                     design=design, design_why=why, gates=checks.get(i, ()))
              for i, c in enumerate(claims)]  # fmt: skip
    return judged, notes + gate_notes


def effect_text(v: Verdict) -> str:
    """'-12% [-20%, -3%]' (relative change, its interval; '(90%)' when not the 95% one); a
    difference where the baseline is 0; divergence counts (with each arm's median divergence
    step where both diverged) and the rate difference."""
    if v.diverged is not None:
        k_t, n_t, k_b, n_b = v.diverged
        rates = f"{pct(v.effect)} [{pct(v.ci_low)}, {pct(v.ci_high)}]"
        when = ""
        if v.median_diverged_step and k_t and k_b:  # the log-rank test weighs when, too
            when = ", median step {:g} vs {:g}".format(*v.median_diverged_step)
        return f"{k_t}/{n_t} vs {k_b}/{n_b} diverged{when}: {rates}"
    level = "" if round(v.confidence, 3) == 0.95 else f" ({v.confidence:.0%})"
    if v.scale == "linear" and not math.isfinite(v.rel_effect):  # e.g. a count from 0
        return f"{v.effect:+.3g} [{v.ci_low:+.3g}, {v.ci_high:+.3g}] (difference){level}"
    return f"{pct(v.rel_effect)} [{pct(v.rel_low)}, {pct(v.rel_high)}]{level}"


def paper_text(c: Claim) -> str:
    if c.kind == "equivalence":
        return f"equal within -{100 * c.margin:g}%..+{100 * c.margin:g}%"
    said = {"lower": "lower", "higher": "higher", "any": "different"}[c.direction]
    if c.contrast != "simple":
        said = f"{c.contrast} effect: {said}"
    if c.paper_effect is not None:  # the paper's effect; its sign says the direction
        return pct(c.paper_effect) if c.contrast == "simple" else f"{said}, {pct(c.paper_effect)}"
    return said


def _seeds(v: Verdict) -> str:
    x = v.seeds_needed
    if not math.isfinite(v.registered):
        return "no registered effect"
    return "∞" if x == math.inf else "–" if not math.isfinite(x) else f"{x:g}"


def detectable_text(v: Verdict) -> str:
    """The detectable effect: relative, or as a difference where the baseline is 0."""
    if not math.isfinite(v.detectable) and math.isfinite(v.detectable_abs):
        return f"{v.detectable_abs:+.3g} (difference)"
    return pct(v.detectable)


def verdict_word(verdict: str, design: str) -> str:
    """The verdict as shown: an exploratory row never reads a bare reproduced/contradicted."""
    decided = verdict in ("reproduced", "contradicted")
    return f"{verdict} (exploratory)" if decided and design != "confirmatory" else verdict


VERDICT_COLUMNS = ["claim", "metric", "design", "verdict", "effect [CI]", "test", "paper",
                   "pairs", "p (Holm, report)", "detectable (80%)", "seeds for 80%"]  # fmt: skip


def _number(x: float) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def verdict_rows(judged: list[Judged]) -> list[dict]:
    """One display row per claim (VERDICT_COLUMNS keys, plain text) plus, for the scoreboard,
    'family_p' (the row's decisive p, unadjusted), 'agrees' (estimate on the claimed side),
    'alpha_power' and 'gate' (why the regime is invalid, '' when valid)."""
    rows = []
    for j in judged:
        c, v = j.claim, j.verdict
        name = c.name + ("" if c.primary else " (secondary)")
        if v is None:
            rows.append(dict.fromkeys(VERDICT_COLUMNS, "–") | {"claim": name, "metric": c.metric,
                        "verdict": "not evaluated", "effect [CI]": j.problem, "design": j.design,
                        "paper": paper_text(c), "family_p": None, "agrees": False,
                        "gate": ""})  # fmt: skip
            continue
        p = v.p_holm if c.primary else family_p(v)
        p_text = "–" if not math.isfinite(p) else f"{p:.2g}" + ("" if c.primary else " (raw)")
        rows.append({"claim": name, "metric": c.metric, "design": j.design,
                     "verdict": verdict_word(v.verdict, j.design), "effect [CI]": effect_text(v),
                     "test": v.test, "paper": paper_text(c), "pairs": str(v.n),
                     "p (Holm, report)": p_text, "detectable (80%)": detectable_text(v),
                     "seeds for 80%": _seeds(v), "family_p": _number(family_p(v)),
                     "agrees": v.agrees, "alpha_power": v.alpha_power,
                     "gate": v.gate})  # fmt: skip
    return rows


VERDICT_LEGEND = (
    "Effects are relative changes of the variant against its baseline, paired by seed (same "
    "teacher, training draws and sampling noise): the mean of per-seed log ratios, back-"
    "transformed, with its 95% t-interval; equivalence rows show the 90% interval TOST uses, "
    "against a margin exact on the relative scale (-m..+m); where a positive metric has zeros "
    "(no log ratio) the test is Wilcoxon's signed-rank on differences and the interval is kept "
    "inside the metric's bounds; the test column names each row's test. Divergence is time to "
    "event (log-rank stratified by seed, never-diverged runs censored at their last step). "
    f"Reproduced: significant in the claimed direction after Holm's correction over the primary "
    f"claims (family-wise α = {ALPHA:g}); contradicted: significant the other way (or beyond "
    "the margin); otherwise inconclusive. Invalid regime: a validity gate failed (the "
    "baseline does not beat the uniform sampler, or a gate of the spec). Design: confirmatory "
    "only when the spec's design was registered and committed before the trials ran "
    "(docs/verdicts.md); exploratory verdicts carry the word. Detectable: the smallest effect "
    f"these pairs detect with {POWER:.0%} power at the adjusted α (noncentral t); seeds for "
    "80%: the pairs needed for the registered effect (the paper's, else the spec's sized_for; "
    "the margin for equivalence), never the observed one. Secondary claims are descriptive."
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
            "the margin" if c.kind == "equivalence"
            else f"the paper's effect {pct(c.paper_effect)}" if c.paper_effect is not None
            else f"the registered effect {pct(c.sized_for)}" if c.sized_for is not None
            else None
        )  # fmt: skip
        lines.append(f"  detectable with {v.n} pairs at {POWER:.0%} power (alpha "
                     f"{v.alpha_power:.2g}): {detectable_text(v)}")  # fmt: skip
        need = f"seeds needed for {target}: {_seeds(v)}" if target else "no registered effect"
        lines.append(f"  {need}; now: {v.verdict}")
    return lines + notes

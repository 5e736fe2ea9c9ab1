"""Verdict machinery on synthetic runs with a known answer: gates, contrasts, rank tests at
zeros, TOST's interval and margin, exact power, and calibration (A/A data through the real
verdict code never reads reproduced or contradicted above the nominal rate)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from scm_bench.report.decide import evaluate_claim
from scm_bench.report.gates import frame, gate_checks, gate_failures
from scm_bench.report.power import pairs_needed, t_power
from scm_bench.report.section import gate_lines
from scm_bench.report.verdicts import Judged
from scm_bench.spec.claims import Claim
from scm_bench.spec.gates import Gate

A, B = "net.time_transform", "net.time_embedding"


def grid(values: dict[tuple[str, str], np.ndarray], metric="mode_precision_2step", extra=None):
    """Results table of a 2-axis grid: values[(a, b)] holds one value per seed."""
    rows = []
    for (a, b), v in values.items():
        for seed, x in enumerate(v):
            rows.append({"trial_id": f"{a}-{b}-s{seed}", "variant": f"{A}={a}, {B}={b}",
                         "seed": seed, "status": "ok", A: a, B: b, metric: float(x)}
                        | (extra or {}))  # fmt: skip
    return pd.DataFrame(rows)


def claim(**kw) -> Claim:
    base = {"name": "c", "metric": "mode_precision_2step", "variant": {A: "edm", B: "fourier"},
            "baseline": {A: "identity", B: "positional"}}  # fmt: skip
    return Claim(**(base | kw))


def seeds(n=8, seed=0, sd=0.3):
    return 0.6 * np.exp(np.random.default_rng(seed).normal(0, sd, n))


def test_main_effects_and_interaction_separate_the_factors():
    """A 2x2 grid where only the embedding matters (Fourier: x0.5, in both transforms): the
    embedding's main effect is -50% (the log ratio averaged within each seed over the
    transforms), the transform's main effect and the interaction are exactly zero."""
    s = seeds()
    df = grid({("identity", "positional"): s, ("edm", "positional"): s,
               ("identity", "fourier"): 0.5 * s, ("edm", "fourier"): 0.5 * s})  # fmt: skip
    emb = evaluate_claim(df, claim(contrast="main", variant={B: "fourier"},
                                   baseline={B: "positional"}))  # fmt: skip
    assert emb.rel_effect == pytest.approx(-0.5) and emb.verdict == "reproduced"
    tr = evaluate_claim(df, claim(contrast="main", variant={A: "edm"}, baseline={A: "identity"}))
    assert tr.effect == pytest.approx(0.0, abs=1e-12) and tr.verdict == "inconclusive"
    inter = evaluate_claim(df, claim(contrast="interaction"))
    assert inter.effect == pytest.approx(0.0, abs=1e-12)
    # The corner-against-corner comparison would blame both factors together.
    corner = evaluate_claim(df, claim())
    assert corner.rel_effect == pytest.approx(-0.5)


def test_interaction_is_the_difference_of_differences():
    """Fourier hurts only under EDM (x0.25 there, x1 under identity): the interaction's log
    effect is log(0.25) per seed; each main effect is half of it."""
    s = seeds()
    df = grid({("identity", "positional"): s, ("edm", "positional"): s,
               ("identity", "fourier"): s, ("edm", "fourier"): 0.25 * s})  # fmt: skip
    inter = evaluate_claim(df, claim(contrast="interaction", direction="lower"))
    assert inter.effect == pytest.approx(math.log(0.25)) and inter.verdict == "reproduced"
    emb = evaluate_claim(df, claim(contrast="main", variant={B: "fourier"},
                                   baseline={B: "positional"}))  # fmt: skip
    assert emb.effect == pytest.approx(math.log(0.25) / 2)


def test_default_gate_baseline_must_beat_uniform():
    """A higher-is-better metric whose baseline (0.086) is below the uniform sampler's
    (0.1075): the claim is 'invalid regime' whatever its p; above it, no gate fails."""
    s = 0.086 * np.ones(8)
    bad = grid({("edm", "fourier"): s * 0.1, ("identity", "positional"): s},
               extra={"mode_precision_uniform": 0.1075})  # fmt: skip
    failed = gate_failures(bad, claim(), [])
    assert len(failed) == 1 and "does not beat uniform 0.1075" in failed[0]
    good = bad.assign(mode_precision_uniform=0.05)
    assert gate_failures(good, claim(), []) == []


def test_spec_gates_near_teacher_and_finite():
    s = seeds()
    df = grid({("edm", "fourier"): s, ("identity", "positional"): s},
              extra={"mode_precision_teacher": 0.6})  # fmt: skip
    near = Gate(check="near_teacher", variant={A: "identity"}, metric="mode_precision_2step",
                tolerance=0.5)  # fmt: skip
    assert gate_failures(df, claim(), [near]) == []
    far = near.model_copy(update={"tolerance": 0.01})
    assert "from its teacher's" in gate_failures(df, claim(), [far])[0]
    df.loc[df[A] == "identity", "status"] = ["diverged"] + ["ok"] * 7
    finite = Gate(check="finite", variant={A: "identity"})
    assert "diverged in 1 of 8" in gate_failures(df, claim(), [finite])[0]
    other = Gate(check="finite", variant={A: "identity"}, claims=["another claim"])
    assert gate_failures(df, claim(), [other]) == []


def test_a_passed_gate_says_what_it_measured_and_the_report_lists_each_once():
    """A gate that holds is shown too, with its numbers, so a reader can check the regime of a
    reproduced claim: each distinct outcome once, failed first, with the claims it guards."""
    s = seeds()
    df = grid({("edm", "fourier"): s, ("identity", "positional"): s},
              extra={"mode_precision_teacher": 0.6, "mode_precision_uniform": 0.1})  # fmt: skip
    near = Gate(check="near_teacher", variant={A: "identity"}, metric="mode_precision_2step",
                tolerance=0.5)  # fmt: skip
    base_mean = float(s.mean())
    checks = gate_checks(df, claim(), [near])
    assert [c.passed for c in checks] == [True, True]
    assert checks[0].text.endswith(f" mode_precision_2step {base_mean:.4g} beats uniform 0.1")
    assert checks[1].text.endswith(f"is {abs(base_mean / 0.6 - 1):.0%} from its teacher's 0.6 "
                                   "(allowed 50%)")  # fmt: skip
    far = near.model_copy(update={"tolerance": 0.01})
    verdict = evaluate_claim(df, claim())
    judged = [
        Judged(claim(), verdict, gates=tuple(gate_checks(df, claim(), [near]))),
        Judged(claim(name="other"), verdict, gates=tuple(gate_checks(df, claim(), [far]))),
    ]
    lines = gate_lines(judged)
    assert [(g["passed"], g["claims"]) for g in lines] == [
        (False, "other"), (True, "every claim"), (True, claim().name)]  # fmt: skip
    # A spec gate repeating the default one guards its claim once, not "every claim".
    twice = Judged(claim(), verdict, gates=tuple(gate_checks(df, claim(), [near])) * 2)
    alone = Judged(claim(name="other"), verdict)
    assert [g["claims"] for g in gate_lines([twice, alone])] == [claim().name] * 2


def test_the_frame_puts_the_baseline_beside_teacher_floor_and_uniform():
    """The scoreboard's frame: the baseline side's mean over ok seeds (a main effect's baseline
    averages both of its variants), then the teacher, floor and uniform references; a
    non-sample metric has none."""
    refs = {"mode_precision_teacher": 0.8, "mode_precision_floor": 0.99,
            "mode_precision_uniform": 0.11}  # fmt: skip
    df = grid({("identity", "positional"): np.full(4, 0.5), ("edm", "positional"): np.full(4, 0.7),
               ("identity", "fourier"): np.full(4, 0.2), ("edm", "fourier"): np.full(4, 0.1)},
              extra=refs)  # fmt: skip
    df.loc[0, "status"] = "failed"  # not counted, whatever its value
    df.loc[0, "mode_precision_2step"] = 100.0
    assert frame(df, claim()) == "baseline 0.5 · teacher 0.8 · floor 0.99 · uniform 0.11"
    main = claim(contrast="main", variant={B: "fourier"}, baseline={B: "positional"})
    assert frame(df, main).startswith(f"baseline {(0.5 * 3 + 0.7 * 4) / 7:.3g} · ")
    assert frame(df, claim(metric="grad_norm_p99")) == "–"


def test_zeros_in_a_log_metric_use_the_signed_rank_test_within_bounds():
    """Some treated values are 0 (no log ratio): the row says Wilcoxon signed-rank, its p is
    scipy's on the differences, and the interval never claims below -100% (the metric >= 0)."""
    base = np.array([0.03, 0.02, 0.04, 0.03, 0.05, 0.02, 0.03, 0.04])
    treated = np.array([0.0, 0.0, 0.001, 0.0, 0.0, 0.0, 0.002, 0.0])
    df = grid({("edm", "fourier"): treated, ("identity", "positional"): base})
    v = evaluate_claim(df, claim(direction="lower"))
    assert v.test.startswith("Wilcoxon signed-rank") and v.scale == "linear"
    assert v.p == pytest.approx(stats.wilcoxon(treated - base).pvalue)
    assert v.rel_low >= -1 and v.verdict == "reproduced"


def test_tost_shows_its_90_interval_and_an_exact_relative_margin():
    """Equivalence within 10%: the bounds are log(0.9) and log(1.1) (-10%..+10% exactly, not
    ±log 1.1 = -9.1%..+10%); the interval shown is TOST's 90% one."""
    rng = np.random.default_rng(3)
    base = seeds()
    treated = base * np.exp(rng.normal(-0.02, 0.02, 8))
    df = grid({("edm", "fourier"): treated, ("identity", "positional"): base})
    v = evaluate_claim(df, claim(kind="equivalence", margin=0.1))
    d = np.log(treated) - np.log(base)
    assert v.p == pytest.approx(ttost_paired(d, np.zeros(8), math.log(0.9), math.log(1.1))[0])
    ci = stats.ttest_1samp(d, 0).confidence_interval(0.90)
    assert v.confidence == pytest.approx(0.90)
    assert (v.rel_low, v.rel_high) == pytest.approx((math.expm1(ci.low), math.expm1(ci.high)))


def test_power_is_the_noncentral_t_even_where_statsmodels_gives_nan():
    """At n = 2 a huge effect has power below 1 (two-sided, alpha 0.05: the critical t with
    1 df is 12.7); scipy's noncentral t, checked against a direct simulation of the t-test."""
    rng = np.random.default_rng(0)
    for d in (5.0, 8.0):
        x = rng.normal(d, 1.0, (200_000, 2))
        simulated = np.mean(stats.ttest_1samp(x, 0, axis=1).pvalue < 0.05)
        assert t_power(d, 2, 0.05) == pytest.approx(simulated, abs=0.005)
        assert t_power(d, 2, 0.05) < 0.8 and pairs_needed(d, 0.8, 0.05) == 3


CALIBRATION_RUNS = 250  # ~15 s per test on one core


def simulated_verdicts(seed: int, ratio: float, sd: float, c) -> list[str]:
    """Verdicts of claim ``c`` over CALIBRATION_RUNS simulated runs of 8 seed pairs: the
    variant is the baseline times ``ratio`` with log-normal pair noise of SD ``sd``."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(CALIBRATION_RUNS):
        b = seeds(seed=int(rng.integers(1 << 30)))
        a = b * ratio * np.exp(rng.normal(0, sd, 8))
        df = grid({("edm", "fourier"): a, ("identity", "positional"): b})
        out.append(evaluate_claim(df, c).verdict)
    return out


def test_a_a_data_reads_reproduced_or_contradicted_at_most_at_the_nominal_rate():
    """A/A: two variants with identical distributions (seed spread 30%, evaluation noise 5%)
    through the real verdict code, 8 pairs, a directional claim: each of reproduced and
    contradicted at most 2.5% of runs (one tail of a two-sided 5% test), allowing binomial
    noise (99.9% upper quantile)."""
    rng = np.random.default_rng(7)
    counts = {"reproduced": 0, "contradicted": 0, "inconclusive": 0}
    for _ in range(CALIBRATION_RUNS):
        s = seeds(seed=int(rng.integers(1 << 30)))
        a, b = (s * np.exp(rng.normal(0, 0.05, 8)) for _ in range(2))
        df = grid({("edm", "fourier"): a, ("identity", "positional"): b})
        counts[evaluate_claim(df, claim(direction="lower")).verdict] += 1
    limit = stats.binom.ppf(0.999, CALIBRATION_RUNS, 0.025)
    assert counts["reproduced"] <= limit and counts["contradicted"] <= limit


def test_equivalence_at_its_margin_is_reproduced_at_most_5_percent():
    """The true effect exactly at the margin (+10%): TOST calls it equivalent in at most 5%
    of runs (binomial 99.9% upper quantile)."""
    verdicts = simulated_verdicts(11, 1.1, 0.05, claim(kind="equivalence", margin=0.1))
    assert verdicts.count("reproduced") <= stats.binom.ppf(0.999, CALIBRATION_RUNS, 0.05)


def test_power_for_a_25_percent_effect_matches_its_documented_value():
    """docs/verdicts.md: at an SD of the paired log ratios of 0.25, 8 pairs detect a 25% drop
    (log 0.75) with power t_power(log(0.75) / 0.25, 8, 0.05) = 0.80; the real verdict code
    reaches it in simulation (within 3 binomial SDs)."""
    hits = simulated_verdicts(5, 0.75, 0.25, claim(direction="lower")).count("reproduced")
    expected = t_power(math.log(0.75) / 0.25, 8, 0.05)
    assert 0.75 < expected < 0.85  # the documented ~0.8
    se = math.sqrt(expected * (1 - expected) / CALIBRATION_RUNS)
    assert abs(hits / CALIBRATION_RUNS - expected) < 3 * se

"""Reports: the table's numbers equal a recomputation from results.csv, failures are listed,
partial runs still report, and the output is byte-identical for the same inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy import stats

from scm_bench import metrics
from scm_bench.report import write_index, write_report

META = {"commit": "0123abc", "versions": {"torch": "x", "ray": "y"}, "hardware": {"cpu": "z"}}
MODES = ["normalize", "clip", "raw"]
DIVERGED = "synth-tangent.mode=raw-s1-aaaa"
FAILED = "synth-tangent.mode=clip-s2-bbbb"
METRIC_COLUMNS = [
    "swd_1step",
    "swd_2step",
    "mmd_1step",
    "swd_teacher",
    "sec_per_step",
    "mystery_score",
]


def tiny_png(path, shade: int) -> None:
    img = Image.new("RGB", (16, 16), (shade, 255 - shade, 128))
    img.putpixel((3, 3), (0, 0, 0))
    img.save(path)


def history(seed: int, mode: str, diverged: bool) -> list[dict]:
    rng = np.random.default_rng(seed + 10 * MODES.index(mode))
    rows = []
    for step in (10, 20, 30, 40):
        g = list(rng.uniform(0.5, 2.0, 8) * (1 + MODES.index(mode)))
        rows.append(
            {
                "step": step,
                "loss": float(1 / step + rng.normal(0, 0.01)),
                "grad_norm": float(rng.uniform(1, 2)),
                "g_norm": float(np.mean(g)),
                "g_norm_tbin": g,
            }
        )
        if diverged and step == 20:
            rows.append(
                {
                    "step": 30,
                    "loss": float("nan"),
                    "grad_norm": float("inf"),
                    "g_norm": float("inf"),
                    "g_norm_tbin": [float("inf")] * 8,
                }
            )
            break
    return rows


def make_run(root, pending: bool = False):
    """A synthetic sCD run: 3 variants x 3 seeds, one failed and one diverged trial."""
    run = root / "synth"
    (run / "trials").mkdir(parents=True)
    spec = {
        "name": "synth",
        "description": "Normalized tangents are stabler (sCM Fig. 5a)",
        "trial": {"method": "scd", "train": {"steps": 40}},
        "axes": {"tangent.mode": MODES},
        "seeds": [0, 1, 2],
        "baseline": {"tangent.mode": "normalize"},
    }
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    rng = np.random.default_rng(0)
    trials, rows = [], []
    for m, mode in enumerate(MODES):
        for seed in (0, 1, 2):
            tid = {("raw", 1): DIVERGED, ("clip", 2): FAILED}.get(
                (mode, seed), f"synth-tangent.mode={mode}-s{seed}-{m}{seed}00"
            )
            variant = f"tangent.mode={mode}"
            trials.append(
                {
                    "trial_id": tid,
                    "variant": variant,
                    "axes": {"tangent.mode": mode},
                    "seed": seed,
                    "spec": {"method": "scd"},
                }
            )
            status = {DIVERGED: "diverged", FAILED: "failed"}.get(tid, "ok")
            row = {
                "trial_id": tid,
                "spec": "synth",
                "variant": variant,
                "seed": seed,
                "method": "scd",
                "status": status,
                "steps_done": 40,
                "diverged_step": None,
                "diverged_what": None,
                "error": None,
                "teacher_id": "teacher-abc",
                "tangent.mode": mode,
                "nfe_1step": 1,
                "n_samples": 256,
            }
            for c, col in enumerate(METRIC_COLUMNS):
                row[col] = 0.1 * (c + 1) * (1 + m) + rng.normal(0, 0.02)
            if status == "diverged":
                row.update(diverged_step=23, diverged_what="grad:net.0.weight (non-finite tangent)")
            if status == "failed":
                row["error"] = (
                    "Traceback (most recent call last):\nRuntimeError: injected crash at step 5"
                )
            if status != "ok":
                row.update({col: float("nan") for col in METRIC_COLUMNS})
            if status != "failed":  # stability columns, from the history of every trained trial
                row["diverged"] = float(status == "diverged")
                row["grad_norm_max"] = 1e6 if status == "diverged" else 1.0 + seed
            rows.append(row)
            tdir = run / "trials" / tid
            tdir.mkdir()
            if status != "failed":
                lines = [json.dumps(r) for r in history(seed, mode, status == "diverged")]
                (tdir / "history.jsonl").write_text("\n".join(lines) + "\n")
            if status == "ok":
                tiny_png(tdir / "samples_1step.png", 40 * m)
                tiny_png(tdir / "samples_2step.png", 40 * m + 20)
    teacher = root / "_teachers" / "teacher-abc"
    teacher.mkdir(parents=True)
    tiny_png(teacher / "samples_teacher.png", 200)
    if pending:
        trials.append(
            {
                "trial_id": "synth-tangent.mode=raw-s3-cccc",
                "variant": "tangent.mode=raw",
                "axes": {"tangent.mode": "raw"},
                "seed": 3,
                "spec": {"method": "scd"},
            }
        )
    (run / "trials.json").write_text(json.dumps(trials))
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    return run


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path)


def read_table(run_dir) -> pd.DataFrame:
    """report/table.csv (long: one row per variant and column) as {(variant, column): stats}."""
    return pd.read_csv(run_dir / "report" / "table.csv").set_index(["variant", "column"])


def test_table_numbers_equal_a_recomputation(run_dir):
    """Every cell of the long table.csv recomputed from results.csv: the interval of a positive
    metric is the t-interval of log values mapped back (never below 0), of an unregistered one
    the plain t-interval; no cell carries a p-value (claims are tested, cells are not)."""
    write_report(run_dir, META)
    table = read_table(run_dir)
    assert not {"p", "significant"} & set(table.columns)
    results = pd.read_csv(run_dir / "results.csv")
    ok = results[results["status"] == "ok"]
    base = ok[ok["variant"] == "tangent.mode=normalize"]
    for variant, rows in results.groupby("variant"):
        finished = rows["status"].isin(["ok", "diverged", "failed"]).sum()
        rate = (rows["status"] == "diverged").sum() / finished
        assert table.loc[(variant, "diverged_rate"), "value"] == pytest.approx(rate)
        for col in METRIC_COLUMNS:
            vals = ok.loc[ok["variant"] == variant, col].to_numpy()
            n, mean = len(vals), vals.mean()
            m = metrics.REGISTRY.get(metrics.base_name(col))
            positive = m is not None and m.bounds[0] == 0
            x = np.log(vals) if positive else vals
            lo, hi = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
            lo, hi = (np.exp(lo), np.exp(hi)) if positive else (lo, hi)
            cell = table.loc[(variant, col)]
            assert cell["n"] == n and cell["sd"] == pytest.approx(vals.std(ddof=1))
            assert cell["mean"] == pytest.approx(mean, rel=1e-12)
            assert cell["ci_low"] == pytest.approx(lo, rel=1e-9) and (lo > 0 or not positive)
            assert cell["ci_high"] == pytest.approx(hi, rel=1e-9)
            if m is not None and m.aggregate != "mean":
                continue  # value/diff follow the registry's aggregate; checked for means only
            if variant == "tangent.mode=normalize":
                assert math.isnan(cell["diff"])
                continue
            assert cell["diff"] == pytest.approx(mean - base[col].mean())


def test_stability_metrics_count_diverged_but_not_failed_trials(run_dir):
    for name in ("diverged", "grad_norm_max"):  # a registry regression fails here, never skips
        assert metrics.REGISTRY[name].kind == "stability", name
    write_report(run_dir, META)
    table = read_table(run_dir)
    raw, clip = "tangent.mode=raw", "tangent.mode=clip"
    assert table.loc[(raw, "grad_norm_max"), "n"] == 3
    assert table.loc[(raw, "grad_norm_max"), "mean"] == pytest.approx((1.0 + 3.0 + 1e6) / 3)
    assert table.loc[(clip, "grad_norm_max"), "n"] == 2  # the failed trial never counts
    rate = table.loc[(raw, "diverged_rate"), "value"]
    assert table.loc[(raw, "diverged"), "mean"] == pytest.approx(1 / 3) == rate
    assert table.loc[(raw, "diverged"), "ci_high"] <= 1.0  # a rate's interval stays in [0, 1]
    assert table.loc[(raw, "swd_1step"), "n"] == 2  # sample metrics: ok trials only


def test_best_follows_registry_direction_and_unknown_metrics_show(run_dir):
    md, _ = write_report(run_dir, META)
    swd = read_table(run_dir).xs("swd_1step", level="column")
    lower = not metrics.REGISTRY["swd"].higher_is_better
    best = swd["value"].idxmin() if lower else swd["value"].idxmax()
    assert swd["best"].tolist() == [v == best for v in swd.index]
    text = md.read_text()
    assert "swd_1step ↓" in text
    mystery = read_table(run_dir).xs("mystery_score", level="column")
    assert "mystery_score ?" in text and not mystery["best"].any()


def test_failed_and_diverged_trials_are_listed(run_dir):
    md, html = write_report(run_dir, META)
    failures = md.read_text().split("## Failures")[1].split("## Missing")[0]
    assert DIVERGED in failures and FAILED in failures
    assert "grad:net.0.weight (non-finite tangent)" in failures and "| 23 " in failures
    assert "RuntimeError: injected crash at step 5" in failures
    page = html.read_text()
    assert DIVERGED in page and "injected crash at step 5" in page
    assert "1 diverged, 1 failed" in md.read_text()


def test_figures_grids_and_self_contained_html(run_dir):
    md, html = write_report(run_dir, META)
    out = run_dir / "report"
    for name in ("curves.png", "g_norm_tbin.png", "bars_swd.png", "scd_teacher_swd.png"):
        assert (out / name).stat().st_size > 0, name
    grids = sorted(p.name for p in (out / "samples").iterdir())
    assert len(grids) == 9  # 3 variants x (1step, 2step, teacher)
    text = md.read_text()
    assert (
        "(report/curves.png)" in text
        and "(report/samples/00_tangent.mode_normalize_1step.png)" in text
    )
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == len(list(out.rglob("*.png")))
    assert 'src="report/' not in page and "<script" not in page


def test_partial_run_reports_what_is_missing(tmp_path):
    run = make_run(tmp_path, pending=True)
    results = pd.read_csv(run / "results.csv").drop(columns=["diverged_what", "mmd_1step"])
    results.to_csv(run / "results.csv", index=False)
    (run / "trials" / "synth-tangent.mode=clip-s0-1000" / "history.jsonl").unlink()
    md, _ = write_report(run, META)
    text = md.read_text()
    missing = text.split("## Missing")[1]
    assert "synth-tangent.mode=raw-s3-cccc" in missing and "pending" in missing
    assert "`diverged_what`" in missing
    assert "synth-tangent.mode=clip-s0-1000" in missing  # no history
    assert "1 pending" in text and "mmd_1step" not in text


def test_results_rebuilt_from_result_json_when_csv_is_missing(tmp_path):
    run = make_run(tmp_path)
    (run / "results.csv").unlink()
    tid = "synth-tangent.mode=normalize-s0-0000"
    result = {"status": "ok", "steps_done": 40, "metrics": {"swd_1step": 0.5}, "wall_time": 3.0}
    (run / "trials" / tid / "result.json").write_text(json.dumps(result))
    md, _ = write_report(run, META)
    table = read_table(run)
    assert table.loc[("tangent.mode=normalize", "swd_1step"), "value"] == 0.5
    assert table.loc[("tangent.mode=normalize", "n_pending"), "value"] == 2
    assert "`results.csv` is missing" in md.read_text()


def test_output_is_byte_identical(tmp_path):
    run = make_run(tmp_path)
    write_report(run, META)
    first = {
        p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("report*")) if p.is_file()
    }
    first |= {
        p.relative_to(run): p.read_bytes() for p in (run / "report").rglob("*") if p.is_file()
    }
    write_report(run, META)
    for rel, data in first.items():
        assert (run / rel).read_bytes() == data, rel
    assert b"Software" not in (run / "report" / "curves.png").read_bytes()


def test_a_rewrite_removes_its_stale_figures_and_keeps_a_users_files(tmp_path):
    """report/ is rewritten file by file: a figure the new report no longer draws (its metric
    column is gone) is removed, a user's file beside the figures survives, and a marker that
    lists a path outside the folder removes nothing there."""
    run = make_run(tmp_path)
    write_report(run, META)
    out = run / "report"
    assert (out / "bars_mmd.png").is_file()
    (out / "notes.txt").write_text("my notes")
    (out / "samples" / "mine.png").write_bytes(b"a user's picture")
    outside = tmp_path / "precious.txt"
    outside.write_text("not the report's")
    marker = json.loads((out / ".scm-bench-report").read_text())
    assert "bars_mmd.png" in marker["written"] and "notes.txt" not in marker["written"]
    marker["written"] += ["../../precious.txt", str(outside)]
    (out / ".scm-bench-report").write_text(json.dumps(marker))
    results = pd.read_csv(run / "results.csv").drop(columns=["mmd_1step"])
    results.to_csv(run / "results.csv", index=False)

    write_report(run, META)
    assert not (out / "bars_mmd.png").exists()  # stale: removed
    assert (out / "bars_swd.png").is_file() and (out / "table.csv").is_file()
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "samples" / "mine.png").read_bytes() == b"a user's picture"
    assert outside.read_text() == "not the report's"
    written = json.loads((out / ".scm-bench-report").read_text())["written"]
    assert "notes.txt" not in written and "samples/mine.png" not in written
    assert set(written) == {p.relative_to(out).as_posix() for p in out.rglob("*")
                            if p.is_file() and p.name not in ("notes.txt", "mine.png",
                                                              ".scm-bench-report")}  # fmt: skip


def test_a_report_folder_of_an_earlier_version_loses_its_figures_not_a_users_file(tmp_path):
    """Its marker listed nothing: the rewrite removes the names the report writes, only those."""
    run = make_run(tmp_path)
    write_report(run, META)
    out = run / "report"
    (out / ".scm-bench-report").write_text("written by scm-bench report; replaced on rewrite\n")
    (out / "notes.txt").write_text("my notes")
    results = pd.read_csv(run / "results.csv").drop(columns=["mmd_1step"])
    results.to_csv(run / "results.csv", index=False)
    write_report(run, META)
    assert not (out / "bars_mmd.png").exists() and (out / "notes.txt").read_text() == "my notes"


def test_index_links_every_report(tmp_path):
    reports = tmp_path / "reports"
    for name in ("b_run", "a_run"):
        write_report(make_run(reports / name), META)
    md, html = write_index(reports)
    text = md.read_text()
    assert "[md](a_run/synth/report.md)" in text and "b_run/synth/report.html" in text
    assert text.index("a_run") < text.index("b_run") and "no claims" in text
    assert 'href="a_run/synth/report.html"' in html.read_text()


# Verdicts: synthetic runs whose answer is known by construction (seeds paired across variants).

SEEDS = 8


def paired(seed_sd=0.5, effect=1.0, noise=0.0, rng=0) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, treated) per seed: log-normal seed effects shared by both variants, the
    treated ones scaled by ``effect`` with independent log-normal noise of sd ``noise``."""
    g = np.random.default_rng(rng)
    base = 10 * np.exp(g.normal(0, seed_sd, SEEDS))
    return base, base * effect * np.exp(g.normal(0, noise, SEEDS))


def claim_run(root, columns: dict[str, dict[str, np.ndarray]], claims: list[dict],
              status: dict | None = None, extra: dict | None = None):  # fmt: skip
    """A run folder whose results.csv holds columns[mode][column] per seed; spec.yaml states
    ``claims``; status[(mode, seed)] overrides 'ok' (non-ok trials lose their metrics)."""
    run = root / "claims"
    (run / "trials").mkdir(parents=True)
    modes = list(columns)
    spec = {"name": "claims", "axes": {"tangent.mode": modes}, "seeds": list(range(SEEDS)),
            "baseline": {"tangent.mode": modes[0]}, "claims": claims}  # fmt: skip
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    rows, trials = [], []
    for mode, cols in columns.items():
        for seed in range(SEEDS):
            tid, st = f"claims-{mode}-s{seed}", (status or {}).get((mode, seed), "ok")
            trials.append({"trial_id": tid, "variant": f"tangent.mode={mode}", "seed": seed,
                           "axes": {"tangent.mode": mode}})  # fmt: skip
            row = {"trial_id": tid, "variant": f"tangent.mode={mode}", "seed": seed,
                   "status": st, "tangent.mode": mode, "diverged": float(st == "diverged"),
                   "diverged_step": 50.0 if st == "diverged" else None}  # fmt: skip
            row |= {c: (v[seed] if st == "ok" else None) for c, v in cols.items()}
            rows.append(row | (extra or {}))
            (run / "trials" / tid).mkdir()
    (run / "trials.json").write_text(json.dumps(trials))
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    return run


def verdict_table(md_text: str) -> dict[str, dict[str, str]]:
    """The rendered Markdown verdict table as {claim: {column: cell}}."""
    section = md_text.split("## Verdicts")[1].split("\n## ")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return {r[0]: dict(zip(header, r, strict=True)) for r in rows}


def claim(name, metric, variant="raw", **kw) -> dict:
    return {"name": name, "metric": metric, "variant": {"tangent.mode": variant},
            "baseline": {"tangent.mode": "normalize"}} | kw  # fmt: skip


KNOWN = [
    claim("A raw lowers 2-step FID by 10%", "fid_2step", direction="lower", paper_effect=-0.1),
    claim("B raw lowers 1-step FID", "fid_1step", direction="lower"),
    claim("C raw equals normalize on swd", "swd_2step", kind="equivalence", margin=0.01),
    claim("D clip diverges more often", "diverged", variant="clip", direction="higher"),
    claim("E raw raises 2-step FID", "fid_2step", direction="higher"),
    claim("F raw step time", "sec_per_step", direction="lower", primary=False),
]


@pytest.fixture
def known_run(tmp_path):
    """normalize vs raw: a 10% paired drop of fid_2step hidden under a 50% seed spread, pure
    noise on fid_1step, swd_2step equal to 1e-5, and clip diverging in every seed."""
    fid2, fid2_raw = paired(effect=0.9, noise=0.01, rng=1)
    fid1, fid1_raw = paired(noise=0.2, rng=2)
    swd, swd_raw = paired(noise=1e-5, rng=3)
    sec, sec_raw = paired(seed_sd=0.05, noise=0.05, rng=4)
    cols = {"normalize": {"fid_2step": fid2, "fid_1step": fid1, "swd_2step": swd,
                          "sec_per_step": sec},
            "raw": {"fid_2step": fid2_raw, "fid_1step": fid1_raw, "swd_2step": swd_raw,
                    "sec_per_step": sec_raw},
            "clip": {"fid_2step": fid2, "fid_1step": fid1, "swd_2step": swd,
                     "sec_per_step": sec}}  # fmt: skip
    status = {("clip", s): "diverged" for s in range(SEEDS)}
    return claim_run(tmp_path, cols, KNOWN, status)


def test_each_known_effect_gets_its_verdict_in_the_report(known_run):
    md, html = write_report(known_run, META)
    text = md.read_text()
    assert text.index("## Verdicts") < text.index("## Run") < text.index("## Results")
    rows = verdict_table(text)
    verdict = {name[0]: r["verdict"].strip("*") for name, r in rows.items()}
    # Not registered: every decided row carries the word exploratory.
    assert verdict == {"A": "reproduced (exploratory)", "B": "inconclusive",
                       "C": "reproduced (exploratory)", "D": "reproduced (exploratory)",
                       "E": "contradicted (exploratory)", "F": "inconclusive"}  # fmt: skip
    assert {r["design"] for r in rows.values()} == {"exploratory"}
    a = rows[KNOWN[0]["name"]]
    low, high = (float(x.strip("%")) for x in a["effect [CI]"].split("[")[1][:-1].split(","))
    assert low < -10 < high < 0 and a["pairs"] == "8" and a["paper"] == "-10%"
    assert rows[KNOWN[3]["name"]]["effect [CI]"].startswith("8/8 vs 0/8 diverged")
    assert rows[KNOWN[2]["name"]]["effect [CI]"].endswith("(90%)")  # TOST's interval
    assert rows[KNOWN[3]["name"]]["test"].startswith("log-rank")
    assert "inconclusive" in html.read_text() and 'class="reproduced"' in html.read_text()
    index, _ = write_index(known_run.parent)
    tally = "3 reproduced (exploratory), 2 inconclusive, 1 contradicted (exploratory)"
    assert tally in index.read_text()


def test_holm_adjusted_p_values_match_statsmodels(known_run):
    """The report's p (Holm) of the five primary claims equals statsmodels' Holm adjustment of
    p-values recomputed here from results.csv (paired t on log ratios, TOST with bounds
    log(0.99) and log(1.01), and the stratified log-rank test of clip's divergence at step 50
    against normalize's censored trials: per seed O - E = 1/2, V = 1/4, so chi2 = 4^2 / 2)."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_paired

    from scm_bench.report.load import load_run
    from scm_bench.report.verdicts import judge

    res = pd.read_csv(known_run / "results.csv")
    by = {m: res[res["tangent.mode"] == m].set_index("seed") for m in ("normalize", "raw", "clip")}
    log_ratio = lambda col: np.log(by["raw"][col] / by["normalize"][col])  # noqa: E731
    p_a = stats.ttest_1samp(log_ratio("fid_2step"), 0).pvalue
    p_b = stats.ttest_1samp(log_ratio("fid_1step"), 0).pvalue
    d = log_ratio("swd_2step").to_numpy()
    p_c = ttost_paired(d, np.zeros_like(d), np.log(0.99), np.log(1.01))[0]
    p_d = stats.chi2.sf((SEEDS / 2) ** 2 / (SEEDS / 4), 1)
    expected = multipletests([p_a, p_b, p_c, p_d, p_a], 0.05, "holm")[1]
    judged, _ = judge(load_run(known_run))
    np.testing.assert_allclose([j.verdict.p_holm for j in judged[:5]], expected, rtol=1e-9)
    assert math.isnan(judged[5].verdict.p_holm)  # secondary: outside the family
    rows = verdict_table(write_report(known_run, META)[0].read_text())
    for c, p in zip(KNOWN, expected, strict=False):
        assert rows[c["name"]]["p (Holm, report)"] == f"{p:.2g}"
    assert rows[KNOWN[5]["name"] + " (secondary)"]["p (Holm, report)"].endswith("(raw)")


def test_pure_noise_with_many_metrics_reproduces_nothing(tmp_path):
    """30 metrics of pure noise, one claim each: unadjusted p < 0.05 occurs (rng 7: p = 0.0027),
    yet after Holm no claim is reproduced or contradicted."""
    g = np.random.default_rng(7)
    base = {f"fid_s{i}": 10 * np.exp(g.normal(0, 0.5, SEEDS)) for i in range(30)}
    treated = {c: v * np.exp(g.normal(0, 0.1, SEEDS)) for c, v in base.items()}
    claims = [claim(c, c, direction="lower") for c in base]
    run = claim_run(tmp_path, {"normalize": base, "raw": treated}, claims)
    raw_p = [stats.ttest_1samp(np.log(treated[c] / base[c]), 0).pvalue for c in base]
    assert min(raw_p) < 0.05
    rows = verdict_table(write_report(run, META)[0].read_text())
    assert len(rows) == 30 and {r["verdict"] for r in rows.values()} == {"inconclusive"}


def test_a_spec_without_claims_gets_a_note_and_no_stars(run_dir):
    text = write_report(run_dir, META)[0].read_text()
    verdicts = text.split("## Verdicts")[1].split("## Run")[0]
    assert "states no claims" in verdicts and "|" not in verdicts
    results = text.split("## Results")[1].split("## Figures")[0]
    assert "\\*" not in results and "†" not in results.split("### Sample quality")[1]


def test_only_the_cells_primary_claims_test_are_marked(known_run):
    text = write_report(known_run, META)[0].read_text()
    sample = text.split("### Sample quality")[1].split("###")[0]
    marked = [ln for ln in sample.splitlines() if "†" in ln]
    assert len(marked) == 1 and marked[0].startswith("| tangent.mode=raw")
    assert marked[0].count("†") == 3  # fid_2step (claims A, E), fid_1step (B), swd_2step (C)
    stability = text.split("### Stability")[1].split("###")[0]
    assert [ln.count("†") for ln in stability.splitlines() if "†" in ln] == [1]  # D: clip
    cost = text.split("### Cost")[1].split("###")[0]
    assert "†" not in cost and "\\*" not in cost  # F is secondary: timings are not tested


def test_floor_uniform_and_evaluation_noise_are_shown(tmp_path):
    """Reference rows in the sample table, evaluation SD beside the seed SD in the Noise table,
    and a positive metric's interval stays above 0 even from two far-apart seeds."""
    swd = np.array([0.5, 4.56] + [2.0] * (SEEDS - 2))
    cols = {"normalize": {"swd_2step": swd, "swd_2step_evalsd": swd * 0.02},
            "raw": {"swd_2step": swd * 1.1, "swd_2step_evalsd": swd * 0.02}}  # fmt: skip
    run = claim_run(tmp_path, cols, [], extra={"swd_floor": 0.125, "swd_uniform": 7.5})
    text = write_report(run, META)[0].read_text()
    sample = text.split("### Sample quality")[1].split("###")[0]
    assert "*floor: real vs real data*" in sample and "0.125" in sample
    assert "*uniform over the data's box*" in sample and "7.5" in sample
    assert "swd_floor" not in sample and "evalsd" not in sample  # not columns of their own
    noise = text.split("### Noise")[1].split("## Figures")[0]
    # The Noise row recomputed from results.csv: the median over variants of the SD over seeds
    # and the mean bootstrap SD of one value, each also as a share of the median variant mean.
    by = pd.read_csv(run / "results.csv").groupby("variant")
    mean = np.median(np.abs(by["swd_2step"].mean().to_numpy()))
    seed_sd = np.median(by["swd_2step"].std(ddof=1).to_numpy())
    eval_sd = np.mean(by["swd_2step_evalsd"].mean().to_numpy())
    row = ["swd_2step ↓", *(f"{x:.2g} ({100 * x / mean:.2g}%)" for x in (seed_sd, eval_sd)),
           f"{seed_sd / eval_sd:.2g}"]  # fmt: skip
    (line,) = [ln for ln in noise.splitlines() if ln.startswith("| swd_2step ↓")]
    assert [c.strip() for c in line.strip("|").split("|")] == row
    table = read_table(run)
    assert table.loc[("floor", "swd_floor"), "value"] == 0.125
    assert table.loc[("tangent.mode=raw", "swd_2step"), "evalsd"] == pytest.approx(
        np.mean(swd * 0.02)
    )
    assert (table.xs("swd_2step", level="column")["ci_low"] > 0).all()


def test_provenance_and_compute_survive_a_resume(run_dir):
    """The header names the commits the trials ran at (from their result.json), sums their
    wall times, and lists every invocation from run.json, not only the last (no-op) one."""
    res = pd.read_csv(run_dir / "results.csv")
    res["wall_time"] = 10.0
    res.to_csv(run_dir / "results.csv", index=False)
    for i, (tid, status) in enumerate(zip(res["trial_id"], res["status"], strict=True)):
        result = {"status": status, "commit": "aaa111" if i < 5 else "bbb222+dirty",
                  "hardware": {"cpu": "epyc x 2"}, "versions": {"torch": "2.x"}}  # fmt: skip
        (run_dir / "trials" / tid / "result.json").write_text(json.dumps(result))
    invocations = [{"wall_time": 68.0, "trained": 9}, {"wall_time": 0.9, "trained": 0}]
    (run_dir / "run.json").write_text(json.dumps({"invocations": invocations}))
    facts = write_report(run_dir, META)[0].read_text().split("## Results")[0]
    assert "**trials ran at commit**: aaa111 (5 trials), bbb222+dirty (3 trials)" in facts
    assert "**compute**: 90.0 s over 9 trials" in facts
    assert "2: 68.0 s (9 trained), 0.9 s (0 trained)" in facts
    assert "**report written at commit**: 0123abc" in facts


def test_plan_prints_noise_detectable_effect_and_seeds(known_run, capsys):
    from scm_bench.cli import main

    assert main(["plan", str(known_run)]) == 0
    out = capsys.readouterr().out
    first = out.split("\n\n")[0] if "\n\n" in out else out
    assert KNOWN[0]["name"] in first and "SD of the 8 paired log ratios" in out
    assert "detectable with 8 pairs at 80% power (alpha 0.01)" in out  # Holm's 0.05 / 5
    assert "seeds needed for the paper's effect -10%" in out


def test_results_in_long_format():
    from scm_bench.report.table import long_results

    wide = pd.DataFrame({"trial_id": ["t0", "t1"], "variant": ["a", "b"], "seed": [0, 0],
                         "status": ["ok", "diverged"], "tangent.warmup_steps": [0, 100],
                         "swd_2step": [0.5, None], "swd_2step_evalsd": [0.01, None],
                         "swd_floor": [0.1, 0.1], "g_norm_tbin_3": [2.0, 3.0],
                         "steps_done": [40, 20]})  # fmt: skip
    long = long_results(wide, ["tangent.warmup_steps"])
    assert list(long.columns) == ["trial_id", "variant", "seed", "status", "metric", "sampler",
                                  "value"]  # fmt: skip
    rows = long[long["trial_id"] == "t0"].fillna({"sampler": "-"}).itertuples()
    t0 = {(r.metric, r.sampler): r.value for r in rows}
    assert t0 == {("swd", "2step"): 0.5, ("swd_evalsd", "2step"): 0.01, ("swd", "floor"): 0.1,
                  ("g_norm_tbin_3", "-"): 2.0}  # fmt: skip
    assert len(long[long["trial_id"] == "t1"]) == 2  # NaN cells are absent, not rows


def test_a_claim_a_partial_run_cannot_evaluate_yet_is_listed_not_judged(tmp_path):
    base, treated = paired(effect=0.9, noise=0.01)
    claims = [claim("on a column no trial wrote yet", "kid_2step", direction="lower"),
              claim("A raw lowers 2-step FID", "fid_2step", direction="lower")]  # fmt: skip
    run = claim_run(tmp_path, {"normalize": {"fid_2step": base}, "raw": {"fid_2step": treated}},
                    claims)  # fmt: skip
    rows = verdict_table(write_report(run, META)[0].read_text())
    waiting = rows["on a column no trial wrote yet"]
    assert waiting["verdict"] == "not evaluated"
    assert "not a results column" in waiting["effect [CI]"]
    assert rows["A raw lowers 2-step FID"]["verdict"] == "**reproduced (exploratory)**"

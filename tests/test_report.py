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


def test_table_numbers_equal_a_recomputation(run_dir):
    write_report(run_dir, META)
    table = pd.read_csv(run_dir / "report" / "table.csv").set_index("variant")
    results = pd.read_csv(run_dir / "results.csv")
    ok = results[results["status"] == "ok"]
    base = ok[ok["variant"] == "tangent.mode=normalize"]
    for variant, rows in results.groupby("variant"):
        finished = rows["status"].isin(["ok", "diverged", "failed"]).sum()
        rate = (rows["status"] == "diverged").sum() / finished
        assert table.loc[variant, "diverged_rate"] == pytest.approx(rate)
        for col in METRIC_COLUMNS:
            vals = ok.loc[ok["variant"] == variant, col].to_numpy()
            n, mean = len(vals), vals.mean()
            lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=stats.sem(vals))
            assert table.loc[variant, f"{col}.n"] == n
            assert table.loc[variant, f"{col}.mean"] == pytest.approx(mean, rel=1e-12)
            assert table.loc[variant, f"{col}.ci_low"] == pytest.approx(lo, rel=1e-9)
            assert table.loc[variant, f"{col}.ci_high"] == pytest.approx(hi, rel=1e-9)
            m = metrics.REGISTRY.get(metrics.base_name(col))
            if m is not None and m.aggregate != "mean":
                continue  # value/diff follow the registry's aggregate; checked for means only
            if variant == "tangent.mode=normalize":
                assert math.isnan(table.loc[variant, f"{col}.diff"])
                continue
            p = stats.ttest_ind(vals, base[col].to_numpy(), equal_var=False).pvalue
            assert table.loc[variant, f"{col}.diff"] == pytest.approx(mean - base[col].mean())
            assert table.loc[variant, f"{col}.p"] == pytest.approx(p, rel=1e-9)
            assert table.loc[variant, f"{col}.significant"] == (p < 0.05)


def test_stability_metrics_count_diverged_but_not_failed_trials(run_dir):
    for name in ("diverged", "grad_norm_max"):
        if name not in metrics.REGISTRY or metrics.REGISTRY[name].kind != "stability":
            pytest.skip(f"{name} is not a registered stability metric")
    write_report(run_dir, META)
    table = pd.read_csv(run_dir / "report" / "table.csv").set_index("variant")
    raw, clip = table.loc["tangent.mode=raw"], table.loc["tangent.mode=clip"]
    assert raw["grad_norm_max.n"] == 3 and raw["grad_norm_max.mean"] == pytest.approx(
        (1.0 + 3.0 + 1e6) / 3
    )
    assert clip["grad_norm_max.n"] == 2  # the failed trial never counts
    assert raw["diverged.mean"] == pytest.approx(1 / 3) == raw["diverged_rate"]
    assert raw["swd_1step.n"] == 2  # sample metrics: ok trials only


def test_best_follows_registry_direction_and_unknown_metrics_show(run_dir):
    md, _ = write_report(run_dir, META)
    table = pd.read_csv(run_dir / "report" / "table.csv").set_index("variant")
    lower = not metrics.REGISTRY["swd"].higher_is_better
    best = table["swd_1step.value"].idxmin() if lower else table["swd_1step.value"].idxmax()
    assert table["swd_1step.best"].tolist() == [v == best for v in table.index]
    text = md.read_text()
    assert "swd_1step ↓" in text
    assert "mystery_score ?" in text and not table["mystery_score.best"].any()


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
    table = pd.read_csv(run / "report" / "table.csv").set_index("variant")
    assert table.loc["tangent.mode=normalize", "swd_1step.value"] == 0.5
    assert table.loc["tangent.mode=normalize", "pending"] == 2
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


def test_index_links_every_report(tmp_path):
    reports = tmp_path / "reports"
    for name in ("b_run", "a_run"):
        write_report(make_run(reports / name), META)
    md, html = write_index(reports)
    text = md.read_text()
    assert "[md](a_run/synth/report.md)" in text and "b_run/synth/report.html" in text
    assert text.index("a_run") < text.index("b_run")
    assert 'href="a_run/synth/report.html"' in html.read_text()

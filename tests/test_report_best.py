"""A search's report has a "Best parameters" section: the best proposal's parameters, its
metric value and Optuna's parameter importances, from the run's best.json."""

from __future__ import annotations

import json

from test_report_teacher import teacher_run

from scm_bench.report import write_report


def test_a_search_report_shows_the_best_parameters_and_importances(tmp_path):
    run = teacher_run(tmp_path)  # any run folder; best.json makes it a search's
    params = {"tangent.c": 0.05, "tangent.warmup_steps": 12, "train.lr": 0.001}
    importances = {"train.lr": 0.7, "tangent.c": 0.2, "tangent.warmup_steps": 0.1}
    best = {"metric": "swd_2step", "mode": "min", "value": 0.01234, "finished": 6,
            "params": params, "importances": importances}  # fmt: skip
    (run / "best.json").write_text(json.dumps(best))
    md, html = write_report(run)
    text = md.read_text()
    section = text.split("## Best parameters")[1].split("## Results")[0]
    assert "**0.01234**" in section and "`swd_2step`" in section and "6 finished" in section
    assert "tangent.c=0.05,tangent.warmup_steps=12,train.lr=0.001" in section
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert cells == [
        ["`train.lr`", "0.001", "0.700"],
        ["`tangent.c`", "0.05", "0.200"],
        ["`tangent.warmup_steps`", "12", "0.100"],
    ]  # most important first
    assert "<h2>Best parameters</h2>" in html.read_text()


def test_a_run_that_is_not_a_search_has_no_best_parameters_section(tmp_path):
    md, html = write_report(teacher_run(tmp_path))
    assert "Best parameters" not in md.read_text() and "Best parameters" not in html.read_text()

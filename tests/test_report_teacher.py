"""A spec with no axes whose trials are teachers (method: teacher) gets a report with bars of
the teacher's own samples (once a KeyError 'variant' in bars_figure, at run and report)."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from scm_bench.report import write_report


def teacher_run(root):
    run = root / "teach"
    (run / "trials").mkdir(parents=True)
    spec = {"name": "teach", "trial": {"method": "teacher"}, "seeds": [0, 1]}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    rows, trials = [], []
    for seed in (0, 1):
        tid = f"teach-s{seed}-abcd000{seed}"
        trials.append({"trial_id": tid, "variant": "base", "axes": {}, "seed": seed,
                       "spec": {"method": "teacher"}})  # fmt: skip
        rows.append({"trial_id": tid, "variant": "base", "seed": seed, "method": "teacher",
                     "status": "ok", "steps_done": 20, "swd_teacher": 0.1 + 0.01 * seed,
                     "swd_teacher_evalsd": 0.01, "swd_floor": 0.05, "nfe_teacher": 35})  # fmt: skip
        history = [{"step": s, "loss": 1.0 / s, "grad_norm": 1.0} for s in (5, 10)]
        (run / "trials" / tid).mkdir()
        (run / "trials" / tid / "history.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in history)
        )
    (run / "trials.json").write_text(json.dumps(trials))
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    return run


def test_a_teacher_spec_without_axes_reports_the_teachers_bars(tmp_path):
    run = teacher_run(tmp_path)
    md, _ = write_report(run)
    assert (run / "report" / "bars_swd.png").is_file()
    assert "swd_teacher" in md.read_text()

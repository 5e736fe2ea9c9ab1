"""Reports read as a reader expects: values spelt as in YAML, the package's commit from any
folder, no complaint about columns a clean run does not write."""

from __future__ import annotations

import pandas as pd

from scm_bench.report.format import settings
from scm_bench.report.load import load_run
from scm_bench.report.meta import collect_meta
from scm_bench.spec.expand import variant_label, yaml_text
from scm_bench.train.provenance import package_commit


def test_values_are_spelt_as_in_yaml():
    assert [yaml_text(v) for v in (True, False, None, 0.5, "raw")] == [
        "true", "false", "null", "0.5", "raw"
    ]  # fmt: skip
    assert yaml_text(["swd", True]) == "[swd, true]"
    label = variant_label({"weighting.adaptive": False, "tangent.mode": "raw"})
    assert label == "weighting.adaptive=false,tangent.mode=raw"
    spec = {"trial": {"weighting": {"adaptive": True}, "eval": {"metrics": ["swd", "fid"]}}}
    assert settings(spec) == "eval.metrics=[swd, fid], weighting.adaptive=true"


def test_the_report_names_the_package_commit_from_a_folder_outside_the_checkout(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # not a git checkout
    commit = collect_meta()["commit"]
    assert commit == (package_commit() or "unknown")
    if package_commit() is not None:  # tests run from a checkout (CI, development)
        assert len(commit.removesuffix("+dirty")) == 40


def test_a_clean_results_table_without_an_error_column_is_not_reported_missing(tmp_path):
    run = tmp_path / "clean"
    (run / "trials").mkdir(parents=True)
    (run / "spec.yaml").write_text("name: clean\n")
    row = {"variant": "base", "status": "ok", "diverged_step": None, "diverged_what": None}
    rows = [row | {"trial_id": f"clean-s{s}-0000", "seed": s, "swd_2step": 0.1} for s in (0, 1)]
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    loaded = load_run(run)
    assert not [m for m in loaded.missing if "has no column" in m], loaded.missing
    assert loaded.results["error"].isna().all()
    pd.DataFrame(rows).drop(columns=["diverged_what"]).to_csv(run / "results.csv", index=False)
    assert any("`diverged_what`" in m for m in load_run(run).missing)  # still said when it is

"""Every published run of a spec stays visible: publish appends to reports/history.jsonl, a
report lists the earlier runs of its spec with what changed and the verdicts then, and the
scoreboard counts the earlier designs."""

from __future__ import annotations

import json

import yaml
from test_report import META, claim, claim_run, paired

from scm_bench.report import write_report
from scm_bench.report.history import LOG, read_log
from scm_bench.report.publish import publish_all


def test_a_republished_spec_lists_its_earlier_design(tmp_path):
    base, treated = paired(effect=0.9, noise=0.01)
    columns = {"normalize": {"fid_2step": base}, "raw": {"fid_2step": treated}}
    first = claim_run(tmp_path / "a", columns, [claim("raw lowers FID", "fid_2step",
                                                      direction="lower")])  # fmt: skip
    write_report(first, META)
    reports = tmp_path / "reports"
    reports.mkdir()
    publish_all([first], reports, echo=lambda *_: None)
    (entry,) = read_log(reports)
    assert entry["verdicts"]["raw lowers FID"].startswith("reproduced (exploratory), -10")
    # The claim changes after the data (now "raises"): a new design, published over the old.
    second = claim_run(tmp_path / "b", columns, [claim("raw raises FID", "fid_2step",
                                                       direction="higher")])  # fmt: skip
    write_report(second, META)
    publish_all([second], reports, echo=lambda *_: None)
    log = [json.loads(line) for line in (reports / LOG).read_text().splitlines()]
    assert len(log) == 2 and log[0]["fingerprint"] != log[1]["fingerprint"]
    text = (reports / "claims" / "report.md").read_text()
    history = text.split("### Earlier published runs of this spec")[1].split("## Run")[0]
    assert "claims" in history and "raw lowers FID: reproduced (exploratory)" in history
    summary = json.loads((reports / "claims" / "report" / "summary.json").read_text())
    assert summary["earlier_designs"] == 1
    index = (reports / "index.md").read_text()
    row = next(line for line in index.splitlines() if "raw raises FID" in line)
    assert "contradicted (exploratory)" in row and row.split("|")[-3].strip() == "1"
    # Publishing the same run again adds nothing to the log.
    publish_all([second], reports, echo=lambda *_: None)
    assert len((reports / LOG).read_text().splitlines()) == 2
    assert (
        yaml.safe_load((reports / "claims" / "spec.yaml").read_text())["claims"][0]["direction"]
        == "higher"
    )

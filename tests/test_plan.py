"""One experiment per run folder: a re-run with other trials is refused naming what differs,
spec.yaml records the settings the trials ran with (--set included), and run.json lists every
invocation, interrupted ones too."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import FAST, ROOT

from scm_bench.errors import RunError
from scm_bench.runner.plan import (
    check_same_experiment,
    end_invocation,
    start_invocation,
    write_plan,
)
from scm_bench.spec import load_trials

QUICKSTART = ROOT / "ablations" / "quickstart.yaml"


def planned(tmp_path, sets):
    loaded = load_trials(QUICKSTART, [*FAST, *sets])
    return loaded.spec, loaded.trials


def test_a_re_run_with_a_changed_setting_is_refused_naming_it(tmp_path):
    spec, trials = planned(tmp_path, [])
    write_plan(spec, trials, tmp_path)
    check_same_experiment(spec, trials, tmp_path)  # the same: resumes
    spec2, trials2 = planned(tmp_path, ["eval.bootstrap=0", "net.width=48"])
    with pytest.raises(RunError) as info:
        check_same_experiment(spec2, trials2, tmp_path)
    (line,) = info.value.lines
    assert "eval.bootstrap: 10 -> 0; net.width: 32 -> 48" in line and "one experiment" in line


def test_a_re_run_with_other_seeds_is_refused(tmp_path):
    spec, trials = planned(tmp_path, ["seeds=[0]"])
    write_plan(spec, trials, tmp_path)
    spec2, trials2 = planned(tmp_path, ["seeds=[0, 1]"])
    with pytest.raises(RunError, match="axes or seeds: 2 trials there, 4 now"):
        check_same_experiment(spec2, trials2, tmp_path)


TUNE = ROOT / "ablations" / "tune_tangent.yaml"


def test_a_search_re_run_continues_with_more_proposals_but_not_with_other_settings(tmp_path):
    """A search folder is one study: more proposals (search.num_samples) continue it; another
    base setting or search space is refused like a grid's changed setting."""
    loaded = load_trials(TUNE, [*FAST, "search.num_samples=2"])
    write_plan(loaded.spec, loaded.trials, tmp_path)
    more = load_trials(TUNE, [*FAST, "search.num_samples=3"])
    check_same_experiment(more.spec, more.trials, tmp_path)  # continues the study
    other = load_trials(TUNE, [*FAST, "search.num_samples=2", "train.steps=21"])
    with pytest.raises(RunError) as info:
        check_same_experiment(other.spec, other.trials, tmp_path)
    (line,) = info.value.lines
    assert "trial.train.steps: 20 -> 21" in line and "one experiment" in line


def test_spec_yaml_records_the_set_overrides_the_trials_ran_with(tmp_path):
    spec, trials = planned(tmp_path, ["train.steps=7", "net.width=24"])
    write_plan(spec, trials, tmp_path)
    written = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert written["trial"]["train"]["steps"] == 7 and written["trial"]["net"]["width"] == 24
    assert trials[0].spec.train.steps == 7
    assert "tangent" not in written["trial"] or "mode" not in written["trial"]["tangent"]  # axis


def test_every_invocation_is_in_run_json_interrupted_ones_too(tmp_path):
    first = start_invocation(tmp_path)
    running = json.loads((tmp_path / "run.json").read_text())["invocations"]
    assert [e["status"] for e in running] == ["running"]  # a SIGKILL leaves it saying so
    end_invocation(tmp_path, first, 12.5, None, "interrupted")
    start_invocation(tmp_path)  # then killed with SIGKILL: nothing ends it
    third = start_invocation(tmp_path)
    end_invocation(tmp_path, third, 3.0, 4, "finished")
    entries = json.loads((tmp_path / "run.json").read_text())["invocations"]
    assert [(e["status"], e["wall_time"], e["trained"]) for e in entries] == [
        ("interrupted", 12.5, None),
        ("killed", 0.0, None),
        ("finished", 3.0, 4),
    ]

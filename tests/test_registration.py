"""Registration: a run is confirmatory only when its design was registered and committed
before its trials ran (git ancestry), never as a pilot, never after a design change."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from scm_bench.cli import main
from scm_bench.report.confirm import status
from scm_bench.report.load import Run
from scm_bench.report.survival import floor_warning
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.registration import design, fingerprint, register, replayed

CLAIM = {"name": "raw is worse", "metric": "fid_2step", "variant": {"tangent.mode": "raw"},
         "baseline": {"tangent.mode": "normalize"}, "direction": "higher",
         "paper": "Fig. 5a"}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def spec(**over) -> dict:
    raw = {"name": "x", "axes": {"tangent.mode": ["normalize", "raw"]}, "seeds": [0, 1],
           "claims": [CLAIM]} | over  # fmt: skip
    return AblationSpec.model_validate(raw).model_dump(mode="json")


IDS = ["x-normalize-s0-aa", "x-normalize-s1-bb", "x-raw-s0-cc", "x-raw-s1-dd"]


def fake_run(spec_: dict, commit: str) -> Run:
    results = pd.DataFrame({"trial_id": IDS, "variant": ["n", "n", "r", "r"], "seed": [0, 1] * 2,
                            "status": "ok", "commit": commit})  # fmt: skip
    return Run(Path("."), spec_, [], results, ["tangent.mode"], ["n", "r"], "n")


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "ablations").mkdir()
    (tmp_path / "ablations" / "x.yaml").write_text("name: x\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "spec")
    return tmp_path


def test_registered_before_the_trials_is_confirmatory(repo):
    before = git(repo, "rev-parse", "HEAD")
    path, fp = register(repo / "ablations" / "x.yaml", spec(), IDS)
    assert path.parent == repo / "ablations" / "registered" and fp in path.read_text()
    uncommitted = status(fake_run(spec(), before), repo)
    assert uncommitted[0] == "exploratory"
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "register")
    after = git(repo, "rev-parse", "HEAD")
    assert status(fake_run(spec(), after), repo)[0] == "confirmatory"
    # Trials that ran before the registration commit: not confirmatory.
    label, why = status(fake_run(spec(), before), repo)
    assert label == "exploratory" and "after" in why
    assert status(fake_run(spec(pilot=True), after), repo) == (
        "exploratory", "a pilot run (scm-bench run --pilot)")  # fmt: skip
    assert status(fake_run(spec(), after + "+dirty"), repo)[0] == "exploratory"
    label, why = status(fake_run(spec(seeds=[0, 1, 2]), after), repo)
    assert label == "exploratory" and "not registered" in why


def test_a_design_that_replays_a_published_runs_trials_is_not_confirmatory(repo):
    """Registered and committed before its trials, but two of its four trials have the same
    settings and seed (the id's hash) as a pilot published earlier under another name: on the
    same machine those are the same numbers, so the run is exploratory and says why; its own
    published entry does not count against it."""
    path, fp = register(repo / "ablations" / "x.yaml", spec(), IDS)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "register")
    after = git(repo, "rev-parse", "HEAD")
    (repo / "reports").mkdir()
    log = repo / "reports" / "history.jsonl"
    own = {"fingerprint": fp, "commits": [after[:7]], "design": {"trials": IDS}}
    log.write_text(json.dumps(own) + "\n")
    assert status(fake_run(spec(), after), repo)[0] == "confirmatory"
    pilot_ids = ["pilot-a-s0-" + IDS[0].rsplit("-", 1)[1], "pilot-b-s1-" + IDS[3].rsplit("-", 1)[1]]
    pilot = {"fingerprint": "f" * 64, "commits": ["1234567"], "design": {"trials": pilot_ids}}
    log.write_text(json.dumps(own) + "\n" + json.dumps(pilot) + "\n")
    label, why = status(fake_run(spec(), after), repo)
    assert label == "exploratory" and why.startswith("2 of its 4 trials repeat trials")
    assert replayed(IDS, log) == 4 and replayed(IDS, repo / "none.jsonl") == 0


def test_trials_shared_with_a_run_made_after_the_registration_are_new_data(repo):
    """Two registered designs may share a baseline's trials (the same settings and seed): the
    other design's run, from a checkout that already held this registration, made that data
    after this design was fixed, so it could not have informed it. The same trials published
    from a checkout before the registration (a pilot) still make the run exploratory."""
    git(repo, "commit", "-q", "--allow-empty", "-m", "pilot ran here")
    pilot_commit = git(repo, "rev-parse", "HEAD")
    path, fp = register(repo / "ablations" / "x.yaml", spec(), IDS)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "register")
    after = git(repo, "rev-parse", "HEAD")
    (repo / "reports").mkdir()
    log = repo / "reports" / "history.jsonl"
    shared = ["y-base-s0-" + IDS[0].rsplit("-", 1)[1], "y-base-s1-" + IDS[1].rsplit("-", 1)[1]]
    other = {"fingerprint": "e" * 64, "commits": [after[:7]], "design": {"trials": shared}}
    log.write_text(json.dumps(other) + "\n")
    assert status(fake_run(spec(), after), repo)[0] == "confirmatory"
    # The same design run again after its registration (same seeds: the same numbers) is not
    # exempt: re-running a design until it reproduces is not a confirmation.
    git(repo, "commit", "-q", "--allow-empty", "-m", "another change")
    later = git(repo, "rev-parse", "HEAD")
    again = {"fingerprint": fp, "commits": [after[:7]], "design": {"trials": IDS}}
    log.write_text(json.dumps(again) + "\n")
    label, why = status(fake_run(spec(), later), repo)
    assert label == "exploratory" and why.startswith("4 of its 4 trials repeat trials")
    other["commits"] = [after[:7], pilot_commit[:7]]  # one of its trials ran before
    log.write_text(json.dumps(other) + "\n")
    label, why = status(fake_run(spec(), after), repo)
    assert label == "exploratory" and why.startswith("2 of its 4 trials repeat trials")


def test_same_spec_variant_and_seed_with_the_same_training_is_a_replay(tmp_path):
    """An evaluation setting added since (eval.probe_steps) moves every hash but not the
    training: the same spec, variant and seed with the same training settings is still the
    same numbers. A changed training setting (train.lr) makes them new trials."""
    log = tmp_path / "history.jsonl"
    old_ids = [t.rsplit("-", 1)[0] + "-99" for t in IDS[:2]]  # other hashes, same stems
    settings = {"train.lr": 0.001, "eval.n_samples": 2000}
    entry = {"fingerprint": "old", "commits": ["abcdef1"], "design": {"trials": old_ids},
             "trial": settings | {"eval.n_samples": 1000}}  # fmt: skip
    log.write_text(json.dumps(entry) + "\n")
    assert replayed(IDS, log) == 0  # by hash alone: nothing
    assert replayed(IDS, log, settings=settings) == 2
    assert replayed(IDS, log, settings=settings | {"train.lr": 0.002}) == 0


def test_prose_is_not_part_of_the_design_but_claims_and_trials_are():
    """Rewording the description or a claim's paper reference keeps the fingerprint; a claim's
    direction, a gate or one trial setting (its id) changes it."""
    fp = fingerprint(design(spec(), IDS))
    reworded = spec(description="new words", claims=[CLAIM | {"paper": "Sec. 4"}])
    assert fingerprint(design(reworded, IDS)) == fp
    assert fingerprint(design(spec(claims=[CLAIM | {"direction": "lower"}]), IDS)) != fp
    gate = {"check": "finite", "variant": {"tangent.mode": "normalize"}}
    assert fingerprint(design(spec(gates=[gate]), IDS)) != fp
    assert fingerprint(design(spec(), [*IDS[:3], "x-raw-s1-ee"])) != fp


def test_register_refuses_a_foreign_file_in_its_place(tmp_path):
    from scm_bench.errors import RunError

    path, fp = register(tmp_path / "x.yaml", spec(), IDS)
    assert register(tmp_path / "x.yaml", spec(), IDS) == (path, fp)  # the same design again
    path.write_text("{}")
    with pytest.raises(RunError, match="not this design's registration"):
        register(tmp_path / "x.yaml", spec(), IDS)


def test_register_command_writes_beside_the_spec(tmp_path, capsys):
    (tmp_path / "x.yaml").write_text("name: x\naxes: {tangent.mode: [normalize, raw]}\n"
                                     "trial: {train: {steps: 5}}\n")  # fmt: skip
    args = ["register", str(tmp_path / "x.yaml")]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "registered in" in out.out, out.err
    (found,) = (tmp_path / "registered").glob("x.*.json")
    assert found.name.split(".")[1] in out.out
    # A published run (a pilot, say) already ran one of these trials: refused, one line.
    trials = json.loads(found.read_text())["design"]["trials"]
    (tmp_path / "reports").mkdir()
    pilot = {"fingerprint": "p", "commits": [], "design": {"trials": ["pilot-" + trials[0]]}}
    (tmp_path / "reports" / "history.jsonl").write_text(json.dumps(pilot) + "\n")
    found.unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of its 2 trials repeat trials of a run published" in err
    assert not list((tmp_path / "registered").glob("x.*.json"))


def test_register_warns_when_a_divergence_claim_cannot_clear_the_scoreboard(tmp_path, capsys):
    """With 8 seed strata the stratified log-rank test's best p is chi2.sf(8, 1) = 0.0047; among
    24 primaries (23 published elsewhere, 1 here) Holm's first step is 0.05 / 24 = 0.0021, and
    0.0047 clears step k only when 0.05 / (25 - k) >= 0.0047, i.e. after 14 others. 10 seeds
    (chi2.sf(10, 1) = 0.0016) clear the first step: no warning."""
    from scipy import stats

    other = tmp_path / "reports" / "other"
    other.mkdir(parents=True)
    claims = [{"name": f"c{i}", "metric": "fid_2step", "variant": {"a": 1}, "baseline": {"a": 0}}
              for i in range(23)]  # fmt: skip
    (other / "spec.yaml").write_text(json.dumps({"name": "other", "claims": claims}))
    (other / "results.csv").write_text("trial_id\n")
    (other / "report.md").write_text("# other\n")
    (tmp_path / "reports" / "history.jsonl").write_text("")
    assert stats.chi2.sf(8, 1) > 0.05 / 24 > stats.chi2.sf(10, 1)
    errs = {}
    for seeds in (list(range(8)), list(range(10))):
        spec = {
            "name": f"d{len(seeds)}",
            "seeds": seeds,
            "zip": [{"jvp.ordering": ["rearranged", "naive"]}],
            "claims": [
                {
                    "name": "naive diverges sooner",
                    "metric": "diverged",
                    "variant": {"jvp.ordering": "naive"},
                    "baseline": {"jvp.ordering": "rearranged"},
                    "direction": "higher",
                }
            ],
        }
        (tmp_path / f"d{len(seeds)}.yaml").write_text(json.dumps(spec))  # fmt: skip
        assert main(["register", str(tmp_path / f"d{len(seeds)}.yaml")]) == 0
        errs[len(seeds)] = capsys.readouterr().err
    assert errs[10] == ""
    assert errs[8].count("\n") == 1 and errs[8].startswith("warning: ")
    assert f"best p is {stats.chi2.sf(8, 1):.2g}" in errs[8]
    assert "0.05 / 24 = 0.0021" in errs[8] and "only after 14 other primaries" in errs[8]
    assert errs[8].rstrip().endswith("10 seeds clear that step")
    # 2 seeds: best p 0.16 is above alpha itself, no Holm step is ever reached.
    assert "it can never be reproduced; 10 seeds" in floor_warning("c", 2, 24)


def test_every_registered_bundled_spec_still_has_its_design():
    """A change of code or base that moves a trial id (a new default, a renamed setting)
    silently turns a registered spec's next run exploratory; here it fails instead. Each
    bundled spec with a registration must match one of its registrations as loaded now."""
    from scm_bench.spec import load_trials
    from scm_bench.spec.bundled import bundled

    root = Path(__file__).resolve().parent.parent / "ablations"
    registered = {}
    for f in (root / "registered").glob("*.json"):
        registered.setdefault(f.name.split(".")[0], set()).add(f.name.split(".")[1])
    assert registered, "no registrations under ablations/registered"
    for name in sorted(set(bundled()) & set(registered)):
        loaded = load_trials(name)
        d = design(loaded.spec.model_dump(mode="json"), [t.trial_id for t in loaded.trials])
        assert fingerprint(d)[:12] in registered[name], f"{name}: design moved since registered"

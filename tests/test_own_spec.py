"""A user's own spec outside the checkout: bases by name, every problem in one pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from scm_bench.cli import main
from scm_bench.spec import load_trials

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "ablations" / "base" / "grid.yaml"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("base", ["grid", "base/grid", "base/grid.yaml", "grid.yaml"])
def test_a_bundled_base_by_name_from_any_folder(tmp_path, monkeypatch, base):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "mine.yaml"
    spec.write_text(f"name: mine\nbase: {base}\naxes: {{tangent.mode: [normalize, raw]}}\n")
    by_name = load_trials(spec).trials
    spec.write_text(f"name: mine\nbase: {GRID}\naxes: {{tangent.mode: [normalize, raw]}}\n")
    assert [t.spec for t in by_name] == [t.spec for t in load_trials(spec).trials]


def test_a_base_beside_the_spec_wins_over_a_bundled_one(tmp_path):
    (tmp_path / "grid.yaml").write_text("name: local\ntrial: {train: {steps: 7}}\n")
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\nbase: grid\n")
    assert load_trials(spec).base.train.steps == 7


def test_an_unknown_base_lists_the_candidates(tmp_path, capsys):
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\nbase: gird\n")
    rc, _, err = run_cli(capsys, "validate", str(spec))
    assert rc == 2 and len(err.splitlines()) == 1
    assert "base: 'gird'" in err and str(tmp_path) in err and "(did you mean 'grid'?)" in err
    bases = sorted(f.stem for f in (ROOT / "ablations" / "base").glob("*.yaml"))
    assert f"bundled bases: {', '.join(bases)}" in err


EIGHT_MISTAKES = """\
name: mine
base: grid
colour: red
seeds: [0, 0]
trial:
  tangent: {mode: normalise}
  train: {steps: -3}
  data: {name: cifar10, root: /nowhere/cifar}
axes:
  tangent.mod: [clip, raw]
  net.time_embedding: [positional, fourir]
claims:
  - name: embedding
    metric: swd_2stpe
    variant: {net.time_embedding: positional}
    baseline: {net.time_embedding: fourier}
"""


def test_validate_reports_every_problem_in_one_pass(tmp_path, capsys):
    spec = tmp_path / "mine.yaml"
    spec.write_text(EIGHT_MISTAKES)
    rc, out, err = run_cli(capsys, "validate", str(spec))
    lines = err.splitlines()
    assert rc == 2 and out == "" and all(ln.startswith(f"error: {spec}: ") for ln in lines)
    expected = [  # schema, trial settings, axis paths, axis values, claims, data: one line each
        "colour: unknown key",
        "seeds: seeds must be distinct",
        "trial.tangent.mode: 'normalise' is not allowed",
        "trial.train.steps: Input should be greater than or equal to 1",
        "axes.tangent.mod: unknown trial setting (did you mean 'tangent.mode'?)",
        "'fourir' is not allowed; allowed: 'positional' or 'fourier' (did you mean 'fourier'?)",
        "claims[0].metric: 'swd_2stpe' is not a result column (did you mean 'swd_2step'?)",
        "claims[0].baseline: {'net.time_embedding': 'fourier'} is not a variant",  # axis: fourir
        "trial.data: data.root: folder /nowhere/cifar does not exist",
    ]
    for text in expected:
        assert sum(text in ln for ln in lines) == 1, (text, lines)
    assert len(lines) == len(expected), lines


def test_claim_lines_keep_their_index_when_an_earlier_claim_is_broken(tmp_path, capsys):
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        "name: mine\nbase: grid\naxes: {tangent.mode: [normalize, raw]}\nclaims:\n"
        "  - {name: a, metric: swd_2step, variant: {tangent.mode: raw},"
        " baseline: {tangent.mode: normalize}, direction: lowr}\n"
        "  - {name: b, metric: swd_2step, variant: {tangent.mode: clip},"
        " baseline: {tangent.mode: normalize}}\n"
    )
    rc, _, err = run_cli(capsys, "validate", str(spec))
    assert rc == 2 and "claims[0].direction: 'lowr'" in err
    assert "claims[1].variant: {'tangent.mode': 'clip'} is not a variant" in err
    assert len(err.splitlines()) == 2


def test_validate_checks_every_spec_given(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("name: a\ntrial: {train: {steps: 0}}\n")
    (tmp_path / "b.yaml").write_text("name: b\ntrial: {train: {lr: -1.0}}\n")
    rc, _, err = run_cli(capsys, "validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert rc == 2 and "train.steps" in err and "train.lr" in err


def test_init_writes_a_commented_starter_that_validates_as_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run_cli(capsys, "init", "first")
    path = tmp_path / "first.yaml"
    assert rc == 0 and out.startswith(f"wrote {path}")
    text = path.read_text()
    assert sum(line.startswith("#") for line in text.splitlines()) >= 10  # it explains itself
    loaded = load_trials(path, data=True)
    spec = loaded.spec
    assert spec.name == "first" and spec.base == "grid" and len(spec.seeds) >= 2
    assert list(spec.axes) == ["tangent.mode"] and len(spec.claims) == 1
    assert {t.variant for t in loaded.trials} == {"tangent.mode=normalize", "tangent.mode=raw"}


def test_init_never_overwrites_and_names_must_be_folder_names(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("my own work\n")
    rc, _, err = run_cli(capsys, "init", "mine")
    assert rc == 2 and "mine.yaml: already exists" in err
    assert (tmp_path / "mine.yaml").read_text() == "my own work\n"
    rc, _, err = run_cli(capsys, "init", "../up")
    assert rc == 2 and "NAME: '../up' contains a path separator" in err
    assert not (tmp_path.parent / "up.yaml").exists()


@pytest.mark.slow
def test_the_starter_spec_trains_as_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "init", "first")[0] == 0
    small = ["train.steps=5", "teacher.steps=5", "eval.n_samples=64", "eval.grid=0"]
    args = ["train", "first.yaml", "--out", "t", *(a for s in small for a in ("--set", s))]
    rc, out, _ = run_cli(capsys, *args)
    assert rc == 0 and '"status": "ok"' in out and '"mode_precision_2step"' in out


def test_teacher_cache_help_states_the_real_default(capsys, monkeypatch, tmp_path):
    from scm_bench.rundir import default_teacher_cache

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "$SCM_BENCH_CACHE/teachers, or ~/.cache/scm-bench/teachers" in help_text
    monkeypatch.setenv("SCM_BENCH_CACHE", str(tmp_path))
    assert default_teacher_cache() == tmp_path / "teachers"
    monkeypatch.delenv("SCM_BENCH_CACHE")
    assert default_teacher_cache() == Path("~/.cache/scm-bench/teachers").expanduser()

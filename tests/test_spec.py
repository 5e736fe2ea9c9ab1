"""Specs: loading, inheritance, overrides, expansion, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scm_bench.cli import main
from scm_bench.errors import SpecError
from scm_bench.spec import load_trials
from scm_bench.spec.paths import field_docs
from scm_bench.spec.schema import TrialSpec

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def run_cli(args, capsys) -> tuple[int, str]:
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_every_bundled_spec_validates():
    specs = sorted((ROOT / "ablations").glob("*.yaml"))
    assert len(specs) >= 1
    for path in specs:
        assert load_trials(path).trials, path


def test_base_inheritance_and_set_overrides(tmp_path):
    write(tmp_path, "name: b\ntrial: {train: {steps: 7, lr: 0.5}, net: {width: 16}}\n", "b.yaml")
    child = write(tmp_path, "name: c\nbase: b.yaml\ntrial: {train: {steps: 9}}\nseeds: [3]\n")
    (trial,) = load_trials(child, ["net.depth=2", "trial.train.batch_size=8"]).trials
    assert (trial.spec.train.steps, trial.spec.train.lr) == (9, 0.5)  # child wins, base kept
    assert (trial.spec.net.width, trial.spec.net.depth, trial.spec.train.batch_size) == (16, 2, 8)
    assert trial.seed == 3 and trial.spec.seed == 3


def test_grid_and_zip_expansion_ids_are_stable(tmp_path):
    p = write(
        tmp_path,
        """
name: g
axes: {tangent.mode: [normalize, clip, raw]}
zip: [{net.time_transform: [identity, edm], net.time_embedding: [positional, fourier]}]
seeds: [0, 1]
""",
    )
    trials = load_trials(p).trials
    assert len(trials) == 3 * 2 * 2
    pairs = {(t.spec.net.time_transform, t.spec.net.time_embedding) for t in trials}
    assert pairs == {("identity", "positional"), ("edm", "fourier")}
    assert [t.trial_id for t in trials] == [t.trial_id for t in load_trials(p).trials]
    assert len({t.trial_id for t in trials}) == len(trials)
    assert trials[0].trial_id.startswith("g-mode=normalize_time_transform=identity")


def test_resolved_trial_lists_every_switch_with_paper_defaults():
    spec = TrialSpec()
    assert spec.tangent.mode == "normalize" and spec.tangent.c == 0.1
    assert spec.jvp.ordering == "rearranged" and spec.weighting.adaptive
    assert spec.net.time_transform == "identity" and spec.net.time_embedding == "positional"
    assert spec.net.adagn == "double" and spec.student.target == "stopgrad"
    paths = {row[0] for row in field_docs(TrialSpec)}
    assert {"tangent.mode", "tangent.warmup_steps", "jvp.precision", "attention.kernel"} <= paths
    assert all(row[2] for row in field_docs(TrialSpec)), "every setting has a description"


BAD = {
    "unknown key": ("name: x\ntrial: {tangnet: {mode: clip}}\n", "trial.tangnet", "tangent"),
    "wrong type": ("name: x\ntrial: {train: {steps: many}}\n", "trial.train.steps", "many"),
    "bad value": ("name: x\naxes: {tangent.mode: [normalise]}\n", "tangent.mode", "normalize"),
    "unknown axis": ("name: x\naxes: {tangent.mdoe: [raw]}\n", "axes.tangent.mdoe", "tangent.mode"),
    "missing base": ("name: x\nbase: nowhere.yaml\n", "base", "nowhere.yaml"),
    "yaml syntax": ("name: x\ntrial: {train: [\n", "line 3, column 1", "expected"),
    "empty file": ("", "empty", "name"),
    "missing name": ("trial: {}\n", "name", "missing"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_naming_the_field(tmp_path, capsys, case):
    text, field, hint = BAD[case]
    rc, out = run_cli(["validate", str(write(tmp_path, text))], capsys)
    assert rc == 2
    assert field in out and hint in out
    assert "Traceback" not in out
    assert all(line.startswith("error: ") for line in out.strip().splitlines())


def test_cyclic_base_is_an_error(tmp_path, capsys):
    write(tmp_path, "name: a\nbase: b.yaml\n", "a.yaml")
    write(tmp_path, "name: b\nbase: a.yaml\n", "b.yaml")
    rc, out = run_cli(["validate", str(tmp_path / "a.yaml")], capsys)
    assert rc == 2 and "cyclic base" in out


def test_several_problems_are_one_line_each(tmp_path, capsys):
    p = write(tmp_path, "name: x\ntrial: {trian: {}, tangent: {mode: normalise}}\n")
    rc, out = run_cli(["validate", str(p)], capsys)
    lines = out.strip().splitlines()
    assert rc == 2 and len(lines) == 2
    assert "did you mean 'train'" in out and "did you mean 'normalize'" in out


@pytest.mark.slow
def test_cli_subprocess_has_no_traceback(tmp_path):
    p = write(tmp_path, "name: x\ntrial: {jvp: {precision: float8}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "scm_bench.cli", "expand", str(p)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "jvp.precision" in proc.stderr and "float16" in proc.stderr
    assert "Traceback" not in proc.stderr


KEYS = st.sampled_from(
    [
        "name",
        "trial",
        "axes",
        "seeds",
        "base",
        "zip",
        "baseline",
        "tangent",
        "mode",
        "train",
        "steps",
        "net",
        "search",
        "resources",
        "jvp",
        "x",
    ]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["normalize", "clip", "tangent.mode"]),
)
TREES = st.recursive(
    LEAVES,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(KEYS, c, max_size=4)),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=st.dictionaries(KEYS, TREES, max_size=6))
def test_generated_broken_specs_never_traceback(tmp_path, capsys, doc):
    p = tmp_path / "h.yaml"
    p.write_text(yaml.safe_dump(doc))
    try:
        rc = main(["expand", str(p)])
    except SystemExit as exc:  # argparse never sees these files; nothing else may exit
        pytest.fail(f"unexpected exit {exc}")
    out = capsys.readouterr()
    assert rc in (0, 2)
    if rc == 2:
        assert out.err.startswith("error: ")


def test_spec_error_lists_lines():
    err = SpecError(["a: b", "c: d"])
    assert err.lines == ["a: b", "c: d"] and str(err) == "a: b\nc: d"


def test_spec_reference_doc_is_generated_from_the_schema():
    from scm_bench.spec.docs import reference

    assert (ROOT / "docs" / "spec-reference.md").read_text() == reference()


@pytest.mark.parametrize(
    ("metric", "hint"),
    [
        ("swd_2stp", "did you mean 'swd_2step'"),
        ("nfe_1step", "no better direction"),
        ("fidd_1step", "unknown metric"),
    ],
)
def test_search_metric_must_be_a_directed_result_column(capsys, metric, hint):
    spec = str(ROOT / "ablations" / "tune_tangent.yaml")
    rc, out = run_cli(["validate", spec, "--set", f"search.metric={metric}"], capsys)
    assert rc == 2 and "search.metric" in out and hint in out


def test_students_differing_only_in_student_settings_share_one_teacher():
    a = TrialSpec.model_validate({"method": "scd", "tangent": {"mode": "raw"}})
    b = TrialSpec.model_validate({"method": "scd", "attention": {"kernel": "math"},
                                  "jvp": {"ordering": "naive"}})  # fmt: skip
    c = TrialSpec.model_validate({"method": "scd", "net": {"adagn": "single"}})
    assert a.teacher_trial().digest() == b.teacher_trial().digest()
    assert a.teacher_trial().digest() != c.teacher_trial().digest()
    assert a.teacher_trial().method == "teacher" and a.teacher_trial().seed == a.seed


CLAIM_SPEC = """
name: c
base: {base}
axes: {{tangent.mode: [normalize, raw]}}
claims:
  - {{name: x, metric: {metric}, variant: {variant}, baseline: {{tangent.mode: normalize}}}}
"""
TOY_BASE = ROOT / "ablations" / "base" / "toy2d.yaml"


@pytest.mark.parametrize(
    ("metric", "variant", "field", "hint"),
    [
        ("swd_2step", "{tangent.mode: clip}", "claims[0].variant", "tangent.mode=raw"),
        ("swd_2step", "{tangent.mdoe: raw}", "claims[0].variant.tangent.mdoe", "not an axis"),
        ("swd_3step", "{tangent.mode: raw}", "claims[0].metric", "did you mean 'swd_2step'"),
        ("swdd_2step", "{tangent.mode: raw}", "claims[0].metric", "unknown metric"),
        ("fid_2step", "{tangent.mode: raw}", "claims[0].metric", "not evaluated on toy2d"),
    ],
)
def test_claims_are_validated_against_variants_and_columns(
    tmp_path, capsys, metric, variant, field, hint
):
    """A claim naming a variant the spec does not have, or a metric its trials will not
    report, fails `validate` with one line naming claims[i].<field> (exit 2)."""
    p = write(tmp_path, CLAIM_SPEC.format(base=TOY_BASE, metric=metric, variant=variant))
    rc, out = run_cli(["validate", str(p)], capsys)
    assert rc == 2 and "claims[0]" in out and field in out and hint in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_valid_claims_load_typed_and_diverged_is_a_metric(tmp_path):
    p = write(tmp_path, CLAIM_SPEC.format(base=TOY_BASE, metric="diverged",
                                          variant="{tangent.mode: raw}"))  # fmt: skip
    (claim,) = load_trials(p).spec.claims
    assert claim.metric == "diverged" and claim.variant == {"tangent.mode": "raw"}


def test_every_bundled_spec_with_axes_states_claims():
    for path in sorted((ROOT / "ablations").glob("*.yaml")):
        spec = load_trials(path).spec
        assert bool(spec.claims) == bool(spec.axes or spec.zip), path


def test_a_teacher_trial_validates_again():
    """A student's teacher trial (eval sampler 'teacher') survives model_dump -> validate, as
    every override, trial.json and model.pt round trip needs."""
    teacher = TrialSpec.model_validate({"method": "scd"}).teacher_trial()
    assert teacher.eval.samplers == ("teacher",)
    assert teacher.override({}) == teacher

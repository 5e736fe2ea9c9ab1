"""An A/A spec run end to end as a pilot: two variants that differ only in how often a
checkpoint is written (nothing that changes training) read inconclusive or equivalent, never
reproduced or contradicted, and a pilot run is exploratory."""

from __future__ import annotations

import pytest
import yaml

AA = {
    "name": "aa",
    "trial": {
        "data": {"name": "toy2d", "variant": "moons"},
        "net": {"arch": "mlp", "width": 32, "depth": 2, "emb_dim": 32},
        "tangent": {"warmup_steps": 10},
        "train": {"steps": 60, "batch_size": 128, "log_every": 10},
        "teacher": {"steps": 200, "batch_size": 128},
        "eval": {"n_samples": 256, "grid": 0},
        "device": "cpu",
    },
    "axes": {"train.checkpoint_every": [20, 30]},
    "seeds": [0, 1],
    "baseline": {"train.checkpoint_every": 20},
    "resources": {"cpu": 1},
    "claims": [
        {
            "name": "equal swd",
            "metric": "swd_2step",
            "kind": "equivalence",
            "margin": 0.1,
            "variant": {"train.checkpoint_every": 30},
            "baseline": {"train.checkpoint_every": 20},
        },
        {
            "name": "different swd",
            "metric": "swd_2step",
            "variant": {"train.checkpoint_every": 30},
            "baseline": {"train.checkpoint_every": 20},
        },
    ],  # fmt: skip
}


def test_run_accepts_pilot():
    from scm_bench.cli import parser

    args = parser().parse_args(["run", "x.yaml", "--set", "seeds=[1]", "--pilot"])
    assert args.set == ["seeds=[1]", "pilot=true"]
    assert load_spec_with(args.set).pilot and not load_spec_with([]).pilot


def load_spec_with(sets):
    """The warmup spec as `scm-bench run` loads it with these --set values."""
    from scm_bench.spec import load_trials

    return load_trials("warmup", sets).spec


@pytest.mark.slow
def test_an_a_a_pilot_reads_inconclusive_or_equivalent(ray_cluster, tmp_path):
    from scm_bench.report.load import load_run
    from scm_bench.report.verdicts import judge
    from scm_bench.runner.run import run
    from scm_bench.spec import load_trials

    (tmp_path / "aa.yaml").write_text(yaml.safe_dump(AA))
    loaded = load_trials(tmp_path / "aa.yaml")
    spec = loaded.spec.model_copy(update={"pilot": True})  # what `run --pilot` leads to
    run(spec, loaded.trials, tmp_path / "run", teacher_cache=tmp_path / "teachers",
        echo=lambda *_: None)  # fmt: skip
    judged, _ = judge(load_run(tmp_path / "run"))
    words = {j.claim.name: j.verdict.verdict for j in judged}
    assert words["equal swd"] in ("inconclusive", "reproduced")
    assert words["different swd"] == "inconclusive"
    assert {(j.design, j.design_why) for j in judged} == {
        ("exploratory", "a pilot run (scm-bench run --pilot)")
    }
    assert "pilot: true" in (tmp_path / "run" / "spec.yaml").read_text()

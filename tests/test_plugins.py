"""A user's own techniques without forking: a module beside the spec registers values of the
technique switches, a network, a dataset and a metric; they validate, list and train like the
built-in ones, and a run on Ray from a folder outside the checkout uses them."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import yaml_trial_count

from scm_bench import metrics
from scm_bench.cli import main
from scm_bench.core import choices
from scm_bench.core.choices import PLUGINS_ENV, Choices
from scm_bench.spec import TrialSpec  # noqa: F401  (every registry exists before a snapshot)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "clip_norm"

EVERY_KIND = '''
import math
import torch
from scm_bench import metrics
from scm_bench.core.tangent import TANGENT_MODES
from scm_bench.core.trigflow import PROPOSALS
from scm_bench.core.weighting import PRIOR_WEIGHTS
from scm_bench.data import Dataset, register
from scm_bench.nets import ARCHS
from scm_bench.nets.embed import TIME_EMBEDDINGS, TimeEmbedding
from scm_bench.nets.mlp import MLP

CALLS = []

@TANGENT_MODES.register("halve", "g / 2")
def halve(g, cfg):
    CALLS.append("halve")
    return g / 2

@TIME_EMBEDDINGS.register("slow", "sinusoids at frequency 0.5")
def slow(dim, scale):
    return TimeEmbedding(torch.full((dim // 2,), 0.5))

@PROPOSALS.register("uniform", "t ~ U(0.01, pi/2 - 0.01)")
def uniform(n, proposal, sigma_d, generator=None):
    return 0.01 + (math.pi / 2 - 0.02) * torch.rand(n, generator=generator)

@PRIOR_WEIGHTS.register("cos", "cos(t)")
def cos(t, sigma_d):
    return torch.cos(t)

@ARCHS.register("thin_mlp", "an MLP of width 8")
def thin_mlp(spec, shape, cond):
    return MLP(shape[0], cond, width=8, depth=1)

@register("ring")
def ring(spec):
    """Points on a circle of radius 0.5."""
    def gen(n, g):
        a = 2 * math.pi * torch.rand(n, generator=g)
        return 0.5 * torch.stack([a.cos(), a.sin()], 1)
    test = gen(1000, torch.Generator().manual_seed(1))
    return Dataset("ring", (2,), 0.35, 0, None, None, test, None, generate=gen)

metrics.register(metrics.Metric(
    "radius_error", "mean |r - 0.5| of samples", False, "sample", datasets=("ring",),
    fn=lambda x, ds, ctx: float((x.norm(dim=1) - 0.5).abs().mean())))
'''

SPEC = """
name: kinds
plugins: [{module}]
trial:
  method: sct
  student: {{init: scratch}}
  data: {{name: ring}}
  net: {{arch: thin_mlp, width: 8, depth: 1, time_embedding: slow, emb_dim: 8}}
  proposal: {{kind: uniform}}
  weighting: {{prior: cos}}
  tangent: {{mode: halve}}
  train: {{steps: 3, batch_size: 16, log_every: 1}}
  eval: {{n_samples: 32, grid: 0, bootstrap: 0, probe: false, metrics: [radius_error]}}
"""


@pytest.fixture(autouse=True)
def _plugins_stay_in_their_test(monkeypatch):
    """Each test's plugins are gone after it: registries, metrics, the recorded modules."""
    monkeypatch.setenv(PLUGINS_ENV, "[]")  # load_plugins records into os.environ: undone
    saved = [(reg, dict(reg._items)) for reg in Choices.every]
    metrics_saved, imported = dict(metrics.REGISTRY), set(choices._imported)
    yield
    for reg, items in saved:
        reg._items = items
    metrics.REGISTRY.clear()
    metrics.REGISTRY.update(metrics_saved)
    choices._imported.clear()
    choices._imported.update(imported)


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def user_folder(tmp_path: Path, module: str, code: str, spec: str) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{module}.py").write_text(code)
    (folder / "spec.yaml").write_text(spec.format(module=module))
    return folder / "spec.yaml"


def test_every_kind_of_plugin_validates_lists_and_trains(tmp_path, capsys, monkeypatch):
    spec = user_folder(tmp_path, "kinds_plugin", EVERY_KIND, SPEC)
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "validate", str(spec))[0] == 0
    _, out, _ = cli(capsys, "ls", "all", "--spec", str(spec))
    for setting, value in [("tangent.mode", "halve"), ("net.time_embedding", "slow"),
                           ("proposal.kind", "uniform"), ("weighting.prior", "cos"),
                           ("net.arch", "thin_mlp"), ("data.name", "ring")]:  # fmt: skip
        row = next(ln for ln in out.splitlines() if ln.startswith(setting + " "))
        assert f"| {value})" in row, row
    assert any(ln.startswith("ring ") for ln in out.splitlines())
    assert any(ln.startswith("radius_error ") for ln in out.splitlines())
    rc, out, _ = cli(capsys, "train", str(spec), "--out", str(tmp_path / "trial"))
    assert rc == 0 and '"status": "ok"' in out and '"radius_error_1step"' in out
    assert sys.modules["kinds_plugin"].CALLS.count("halve") == 3  # once per step


def forget_plugin(module: str, saved: list, saved_metrics: dict) -> None:
    """This process as a fresh one that never imported ``module`` (the registries as saved)."""
    for reg, items in saved:
        reg._items = dict(items)
    metrics.REGISTRY.clear()
    metrics.REGISTRY.update(saved_metrics)
    choices._imported.clear()
    sys.modules.pop(module, None)
    sys.path[:] = [p for p in sys.path if not Path(p, f"{module}.py").is_file()]
    os.environ[PLUGINS_ENV] = "[]"  # the fixture restores it


def test_sample_imports_the_plugins_a_run_names(tmp_path, capsys, monkeypatch):
    """A model whose net and data are plugin values samples in a fresh process, from the
    spec's folder; from elsewhere, one warning and one error line."""
    saved = [(reg, dict(reg._items)) for reg in Choices.every], dict(metrics.REGISTRY)
    spec = user_folder(tmp_path, "sampled_plugin", EVERY_KIND, SPEC)
    run = tmp_path / "mine" / "runs" / "kinds"
    assert cli(capsys, "train", str(spec), "--out", str(run / "trials" / "kinds-s0"))[0] == 0
    (run / "spec.yaml").write_text("name: kinds\nplugins: [sampled_plugin]\n")
    (run / "results.csv").write_text("trial_id,variant,seed,status\nkinds-s0,base,0,ok\n")
    forget_plugin("sampled_plugin", *saved)
    # main() writes warnings through a handler on the stderr it first saw: this test's stderr
    monkeypatch.setattr(logging.getLogger("scm_bench"), "handlers", [])
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    rc, _, err = cli(capsys, "sample", "mine/runs/kinds", "--out", "s.npz", "--n", "8")
    assert rc == 2 and "plugins[0]: no module 'sampled_plugin' in" in err
    assert len(err.splitlines()) == 2 and "model.pt: its spec does not validate" in err, err
    forget_plugin("sampled_plugin", *saved)
    monkeypatch.chdir(tmp_path / "mine")
    rc, out, err = cli(capsys, "sample", "runs/kinds", "--out", "s.npz", "--n", "8")
    assert rc == 0 and (tmp_path / "mine" / "s.npz").is_file(), out + err


def test_a_typo_in_a_plugin_value_gets_the_one_line_near_match(tmp_path, capsys):
    spec = user_folder(
        tmp_path, "typo_plugin", EVERY_KIND, SPEC.replace("mode: halve", "mode: halv")
    )
    rc, _, err = cli(capsys, "validate", str(spec))
    assert rc == 2 and err.splitlines() == [
        f"error: {spec}: trial.tangent.mode: 'halv' is not allowed; allowed: 'normalize', "
        "'clip', 'raw' or 'halve' (did you mean 'halve'?)"
    ]


def test_a_missing_plugin_module_is_one_line_with_a_near_match(tmp_path, capsys):
    spec = user_folder(tmp_path, "present_plugin", "", "name: x\nplugins: [present_plugn]\n")
    rc, _, err = cli(capsys, "validate", str(spec))
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"plugins[0]: no module 'present_plugn' in {spec.parent} or installed" in err
    assert "(did you mean 'present_plugin'?)" in err


def test_a_plugin_that_raises_is_one_line_naming_its_file_and_line(tmp_path, capsys):
    code = "import torch\n\nraise RuntimeError('half done')\n"
    spec = user_folder(tmp_path, "broken_plugin", code, "name: x\nplugins: [{module}]\n")
    rc, _, err = cli(capsys, "validate", str(spec))
    assert rc == 2 and err.splitlines() == [
        f"error: {spec}: plugins[0]: importing broken_plugin failed: RuntimeError: half done "
        "(broken_plugin.py line 3)"
    ]


def test_the_docs_show_the_example_files_verbatim():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in ("clip_norm_tangent.py", "clip_norm.yaml"):
        assert (EXAMPLE / name).read_text() in doc, name


@pytest.mark.slow
def test_the_worked_example_runs_on_ray_from_a_folder_outside_the_checkout(tmp_path):
    """docs/plugins.md, as a user does it: the two files copied into an empty folder, the
    package used as installed, a real `scm-bench run` (a local Ray: its workers import the
    plugin), at test size."""
    for name in ("clip_norm_tangent.py", "clip_norm.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # scm_bench itself, not the user's folder
    env.pop(PLUGINS_ENV, None)
    sets = ["train.steps=20", "teacher.steps=30", "eval.n_samples=200", "eval.grid=0",
            "eval.bootstrap=0", "seeds=[0, 1]"]  # fmt: skip
    cli_cmd = [sys.executable, "-m", "scm_bench.cli"]
    count = yaml_trial_count(EXAMPLE / "clip_norm.yaml")  # axes x seeds, from the file
    checks = [(["validate", "clip_norm.yaml"], f"clip_norm.yaml: ok ({count} trials)"),
              (["ls", "settings", "--spec", "clip_norm.yaml"], "| clip_norm)")]  # fmt: skip
    for args, shown in checks:
        done = subprocess.run(cli_cmd + args, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0 and shown in done.stdout, done.stdout + done.stderr
    cmd = [*cli_cmd, "run", "clip_norm.yaml"]
    cmd += [arg for s in sets for arg in ("--set", s)]
    cmd += ["--teacher-cache", str(tmp_path / "teachers")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = pd.read_csv(tmp_path / "runs" / "clip_norm" / "results.csv")
    assert sorted(results["tangent.mode"]) == ["clip_norm", "clip_norm", "normalize", "normalize"]
    assert set(results["status"]) == {"ok"}
    report = (tmp_path / "runs" / "clip_norm" / "report.md").read_text()
    assert "clipping the norm of g changes 2-step mode precision" in report
    assert "tangent.mode=clip_norm" in report
    assert "## Missing" not in report  # a clean run: every trial ok, no grids or curves asked
    sample = [*cli_cmd, "sample", "runs/clip_norm", "--variant", "clip_norm", "--seed", "0"]
    done = subprocess.run(sample + ["--n", "16", "--out", "s.npz"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and (tmp_path / "s.npz").is_file(), done.stdout + done.stderr
    assert "**report written at commit**: unknown" not in report  # the package's, from here


def test_a_cluster_run_hands_the_plugins_to_its_workers(monkeypatch):
    """--address: Ray's workers do not inherit the driver's environment; the job's runtime_env
    carries the plugin list (the local case inherits it: the slow test above)."""
    import ray

    from scm_bench.runner import cluster

    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(cluster, "use_token_auth", lambda address: None)
    monkeypatch.setenv(PLUGINS_ENV, '[["clip_norm_tangent", "/shared/specs"]]')
    cluster.connect("ray://head:10001", False, "127.0.0.1", print)
    assert seen["runtime_env"]["env_vars"] == {
        PLUGINS_ENV: '[["clip_norm_tangent", "/shared/specs"]]'
    }
    monkeypatch.setenv(PLUGINS_ENV, "")
    cluster.connect("ray://head:10001", False, "127.0.0.1", print)
    assert "env_vars" not in seen["runtime_env"]


def test_an_installed_package_registers_through_the_entry_point_group(tmp_path, monkeypatch):
    """A package's `[project.entry-points."scm_bench.plugins"]` module is imported the first
    time a registry is asked for its values, without a `plugins:` line."""
    from importlib.metadata import EntryPoint

    from scm_bench.core.tangent import TANGENT_MODES

    (tmp_path / "ep_tangent.py").write_text(
        "from scm_bench.core.tangent import TANGENT_MODES\n"
        "TANGENT_MODES.register('ep_half', 'g / 2')(lambda g, cfg: g / 2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    installed = {choices.ENTRY_POINTS: [EntryPoint("ep", "ep_tangent", choices.ENTRY_POINTS)]}
    monkeypatch.setattr(choices, "entry_points", lambda group: installed.get(group, []))
    monkeypatch.setattr(choices, "_discovered", False)  # a fresh process
    assert TANGENT_MODES.names()[-1] == "ep_half"
    assert TANGENT_MODES.get("ep_half")(4.0, None) == 2.0

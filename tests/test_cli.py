"""The command line fits its ecosystem: help and version, `ls` topics with descriptions,
bundled specs by name from any directory, exit codes, quiet runs, closed pipes."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT
from helpers import TINY, yaml_trial_count

import scm_bench
from scm_bench.cli import main
from scm_bench.spec import load_trials
from scm_bench.spec.bundled import bundled


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_no_arguments_prints_the_help_and_exits_0(capsys):
    rc, out, err = cli(capsys)
    assert rc == 0 and err == ""
    assert out.startswith("usage: scm-bench") and "Exit codes" in out
    for command in ("run", "sample", "tb", "ls", "validate"):
        assert f"\n    {command} " in out


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"scm-bench {scm_bench.__version__}"
    assert scm_bench.__version__ not in ("", "unknown")


@pytest.mark.parametrize("topic", ["settings", "datasets", "metrics", "ablations"])
def test_ls_topics_have_a_header_and_described_rows(capsys, topic):
    rc, out, _ = cli(capsys, "ls", topic)
    header, *rows = out.splitlines()
    assert rc == 0 and header.startswith(f"# {topic} (") and rows
    assert all(len(row.split(maxsplit=1)) == 2 for row in rows), "a row without description"


def test_ls_techniques_is_an_alias_of_settings(capsys):
    assert cli(capsys, "ls", "techniques")[1] == cli(capsys, "ls", "settings")[1]


def test_ls_ablations_lists_names_with_their_descriptions(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from anywhere, not only the repository root
    rows = dict(
        line.split(maxsplit=1) for line in cli(capsys, "ls", "ablations")[1].splitlines()[1:]
    )
    assert set(rows) == set(bundled()) >= {"quickstart", "tangent_norm", "warmup"}
    described = yaml.safe_load(bundled()["tangent_norm"].read_text())["description"]
    assert rows["tangent_norm"] == described.strip()


def test_bundled_specs_by_name_from_any_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = cli(capsys, "validate", "warmup", "tune_tangent")
    assert rc == 0
    proposals = yaml.safe_load(bundled()["tune_tangent"].read_text())["search"]["num_samples"]
    assert out.splitlines() == [f"warmup: ok ({yaml_trial_count(bundled()['warmup'])} trials)",
                                f"tune_tangent: ok (search: {proposals} proposals)"]  # fmt: skip
    rc, out, _ = cli(capsys, "expand", "quickstart")
    expected = load_trials(ROOT / "ablations" / "quickstart.yaml").trials
    assert rc == 0 and [ln.split("\t")[0] for ln in out.splitlines()] == [
        t.trial_id for t in expected
    ]


def test_an_unknown_name_lists_the_bundled_specs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli(capsys, "run", "warmp")
    assert rc == 2 and "(did you mean 'warmup'?)" in err and "bundled: adagn," in err
    rc, _, err = cli(capsys, "validate", "warmp.yaml")  # a file path stays a file path
    assert rc == 2 and "warmp.yaml: file not found" in err


def test_a_local_file_wins_over_a_bundled_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "warmup").write_text("name: mine\ntrial: {method: sct}\n")
    assert cli(capsys, "validate", "warmup")[1] == "warmup: ok (1 trials)\n"


def test_train_exits_1_when_the_trial_diverged(capsys, tmp_path):
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "lr": 1e30}}))
    rc, out, _ = cli(capsys, "train", str(config), "--out", str(tmp_path / "t"))
    assert rc == 1 and '"status": "diverged"' in out
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "steps": 5}}))
    rc, out, _ = cli(capsys, "train", str(config), "--out", str(tmp_path / "ok"))
    assert rc == 0 and '"status": "ok"' in out


@pytest.mark.slow
def test_expand_into_a_closed_pipe_ends_quietly():
    """`scm-bench expand --json | head`: the reader goes away; no traceback, exit 141."""
    seeds = "seeds=[" + ",".join(map(str, range(100))) + "]"  # ~1 MB: more than a pipe holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "scm_bench.cli", "expand", "--json", "tangent_norm", "--set", seeds],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


class Grab(logging.Handler):
    """Collects the messages a logger lets through (whatever stream its own handler uses)."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_runs_are_quiet_unless_verbose():
    """Optuna's study line and Ray's token notice are the real ones, silenced and let through."""
    import optuna
    from ray._private.authentication import authentication_token_setup as token

    from scm_bench.runner.cluster import QUIET, set_verbosity

    levels = {name: logging.getLogger(name).level for name in QUIET}
    optuna_level = optuna.logging.get_verbosity()
    grab = Grab()
    loggers = [logging.getLogger("optuna"), logging.getLogger(token.__name__)]
    for logger in loggers:
        logger.addHandler(grab)
    try:
        for verbose in (False, True):
            grab.messages.clear()
            set_verbosity(verbose)
            optuna.create_study()
            token._warn_token_auth_enabled()  # what a local ray.init() logs
            logs = "\n".join(grab.messages)
            assert ("A new study created" in logs) is verbose
            assert ("Token authentication is enabled" in logs) is verbose
    finally:
        for logger in loggers:
            logger.removeHandler(grab)
        set_verbosity(False)
        optuna.logging.set_verbosity(optuna_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

"""The README is true: its Python runs (at test size), every `scm-bench ...` command it shows
parses and names specs, settings and variants that exist, every dotted setting it mentions is
a real setting (with an allowed value where it gives one), and its YAML excerpts match the
bundled specs."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import yaml_trial_count

from scm_bench.cli import main, parser
from scm_bench.spec import TrialSpec, find_spec, load_trials
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.expand import LEAF_PATHS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
SPANS = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", README, flags=re.S))


def commands() -> list[str]:
    """Every `scm-bench ...` command: code-block lines and inline code spans (which may wrap),
    cut at a shell pipe or comment, with `a|b|c` alternatives expanded."""
    found = [ln for lang, code in BLOCKS if lang == "bash" for ln in code.splitlines()]
    found += [" ".join(span.split()) for span in SPANS]
    out = []
    for text in found:
        m = re.search(r"(?:^|\s)(scm-bench(?:\s.*)?)$", text.split(" # ")[0].split(" | ")[0])
        if not m:
            continue
        words = m.group(1).replace("[", "").replace("]", "").split()
        alternatives = next((w.split("|") for w in words if "|" in w), None)
        for alt in alternatives or [None]:
            out.append(" ".join(alt if alt and "|" in w else w for w in words))
    return out


def placeholder(word: str) -> bool:
    return "<" in word or re.fullmatch(r"[A-Z][A-Z_]*(\.\.\.|\.yaml)?", word) is not None


def test_the_readme_shows_the_main_commands():
    shown = {c.split()[1] if len(c.split()) > 1 else "" for c in commands()}
    assert {"", "run", "sample", "tb", "ls", "validate", "expand", "train", "report"} <= shown


@pytest.mark.parametrize("command", commands())
def test_every_command_in_the_readme_exists(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # bundled spec names work from any directory
    words = shlex.split(command)[1:]
    if not words:
        assert main([]) == 0 and "usage: scm-bench" in capsys.readouterr().out
        return
    if len(words) == 1:  # a command named in prose ("`scm-bench run` trains ...")
        (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
        assert words[0] in sub.choices, f"no command {words[0]}"
        return
    try:
        args = parser().parse_args(words)
    except SystemExit:
        pytest.fail(f"does not parse: {command}")
    specs = getattr(args, "specs", None) or [getattr(args, "spec", getattr(args, "config", None))]
    for spec in (s for s in specs if s and not placeholder(s)):
        assert find_spec(spec).is_file(), f"{command}: no spec {spec}"
    for item in getattr(args, "set", None) or []:
        path = item.split("=")[0]
        assert path in LEAF_PATHS or path.split(".")[0] in AblationSpec.model_fields, item
    if args.cmd == "sample" and args.variant and args.source.startswith("runs/"):
        loaded = load_trials(args.source.split("/")[1])  # runs/<spec name>: its variants
        assert any(args.variant in (t.variant, t.variant.split("=")[-1]) for t in loaded.trials)
        assert args.seed in loaded.spec.seeds


SECTIONS = [n for n, f in TrialSpec.model_fields.items() if hasattr(f.annotation, "model_fields")]
SPEC_SECTIONS = ["resources", "failure", "search"]
SETTING = re.compile(
    rf"(?<![\w./$-])((?:{'|'.join(SECTIONS + SPEC_SECTIONS)})\.[a-z_]+)(?:=([\w.-]+))?"
)


def test_every_dotted_setting_in_the_readme_exists_with_an_allowed_value():
    found = SETTING.findall(README)
    assert len({path for path, _ in found}) > 20
    spec_level = set()  # resources.cpu, failure.max_retries, search.metric, ...
    for section in SPEC_SECTIONS:
        model = AblationSpec.model_fields[section].annotation  # search: SearchSpec | None
        model = next(a for a in getattr(model, "__args__", (model,)) if a is not type(None))
        spec_level |= {f"{section}.{k}" for k in model.model_fields}
    for path, value in found:
        assert path in LEAF_PATHS or path in spec_level, f"README names unknown setting {path}"
        if value and path in LEAF_PATHS:
            TrialSpec().override({path: yaml.safe_load(value)}, "README")  # raises if not allowed


def test_yaml_excerpts_match_the_bundled_specs():
    excerpts = [yaml.safe_load(code) for lang, code in BLOCKS if lang == "yaml"]
    assert excerpts
    for excerpt in excerpts:
        bundled = yaml.safe_load(find_spec(excerpt["name"]).read_text())
        assert {k: bundled[k] for k in excerpt} == excerpt


@pytest.mark.slow
def test_the_library_snippet_runs(tmp_path, monkeypatch):
    """The README's Python, as written, with train_trial shrunk to test size."""
    from scm_bench.train import loop

    monkeypatch.chdir(tmp_path)
    small = {"train.steps": 20, "teacher.steps": 30, "train.batch_size": 64, "net.depth": 2,
             "teacher.batch_size": 64, "eval.n_samples": 200, "net.width": 32}  # fmt: skip
    train_trial = loop.train_trial
    monkeypatch.setattr(
        loop, "train_trial", lambda spec, *a, **kw: train_trial(spec.override(small), *a, **kw)
    )
    (snippet,) = [code for lang, code in BLOCKS if lang == "python"]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["result"]["status"] == "ok"
    assert tuple(namespace["x"].shape) == (1000, 2)
    assert namespace["model"].method == "scd" and namespace["teacher"].method == "teacher"
    (name,) = re.findall(r'load_trials\("([\w-]+)"', snippet)  # the spec the snippet expands
    count = yaml_trial_count(find_spec(name))  # its axes x seeds, read from the YAML
    assert len(namespace["trials"]) == count and namespace["trials"][0].spec.train.steps == 50

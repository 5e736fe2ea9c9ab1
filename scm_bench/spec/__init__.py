"""Specs: the schema, YAML loading and expansion into trials, behind one entry point.

``load_trials(path, sets)`` is the one way the CLI, the runner, search mode and the
benchmarks turn a YAML file into validated, typed trials: each is validated once here and
then travels as a frozen ``TrialSpec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scm_bench.errors import SpecError
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.bundled import find_spec
from scm_bench.spec.expand import Trial, base_trial, expand
from scm_bench.spec.load import load_spec, parse_sets, read_yaml
from scm_bench.spec.schema import TrialSpec

__all__ = ["Loaded", "Trial", "TrialSpec", "AblationSpec", "find_spec", "load_trials"]


@dataclass(frozen=True)
class Loaded:
    """A validated ablation spec, its base trial and its expanded trials."""

    spec: AblationSpec
    base: TrialSpec
    trials: list[Trial]
    where: str  # the file, for messages


def split_sets(sets: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec-level, trial-level) overrides. A path not starting with a spec key is a trial
    setting (``train.steps=50`` == ``trial.train.steps=50``)."""
    spec_level, trial_level = {}, {}
    for path, value in sets.items():
        head = path.split(".")[0]
        if head == "trial":
            trial_level[path.removeprefix("trial.")] = value
        elif head == "base":
            raise SpecError([f"--set {path}: base cannot be overridden; edit the spec file"])
        elif head in AblationSpec.model_fields:
            spec_level[path] = value
        else:
            trial_level[path] = value
    return spec_level, trial_level


def load_trials(path: str | Path, sets: list[str] = ()) -> Loaded:
    """Read a spec (an ablation, or a bare trial spec: one trial; a file path or the name of a
    bundled ablation), apply ``--set`` overrides and expand it into trials, validating
    everything once."""
    path = find_spec(path)
    where = str(path)
    spec_sets, trial_sets = split_sets(parse_sets(list(sets)))
    if not {"name", "trial"} & set(read_yaml(Path(path))):  # a bare trial spec
        spec = AblationSpec(name=Path(path).stem.replace(" ", "_") or "trial",
                            trial=read_yaml(Path(path)))  # fmt: skip
        spec = spec.model_copy(update={"seeds": [spec.trial.get("seed", 0)]})
    else:
        spec = load_spec(path, spec_sets)
    base = base_trial(spec, where)
    controlled = set(spec.axes) | {p for group in spec.zip for p in group} | {"seed"}
    clash = sorted(set(trial_sets) & controlled)
    if clash:
        raise SpecError(
            [
                f"--set {p}: this setting is an axis (or the seeds) of {where}; change the axis "
                "values or `seeds` instead"
                for p in clash
            ]  # fmt: skip
        )
    if trial_sets:
        base = base.override(trial_sets, "--set")
    return Loaded(spec, base, expand(spec, base, where), where)

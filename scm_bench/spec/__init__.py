"""Specs: the schema, YAML loading and expansion into trials, behind one entry point.

``load_trials(path, sets)`` is the one way the CLI, the runner, search mode and the
benchmarks turn a YAML file into validated, typed trials: each is validated once here and
then travels as a frozen ``TrialSpec``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scm_bench.errors import SpecError
from scm_bench.safe_yaml import check_sizes
from scm_bench.spec.ablation import AblationSpec
from scm_bench.spec.bundled import find_spec
from scm_bench.spec.check import preflight, validate_all
from scm_bench.spec.expand import Trial, expand
from scm_bench.spec.load import parse_sets, read_yaml, resolve_bases
from scm_bench.spec.paths import set_dotted
from scm_bench.spec.plugins import load_plugins
from scm_bench.spec.schema import TrialSpec

__all__ = [
    "Loaded", "Trial", "TrialSpec", "AblationSpec", "find_spec", "load_trials", "validate"
]  # fmt: skip


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


def _collect(fn, errors: list[str]):
    """fn(), or None with its SpecError lines appended to ``errors`` (one pass, every problem)."""
    try:
        return fn()
    except SpecError as err:
        errors.extend(line for line in err.lines if line not in errors)
        return None


def size_problems(spec: AblationSpec, where: str, allow_large: bool) -> list[str]:
    """Axis values, seeds and trials over the limits of ``safe_yaml`` (``--allow-large``)."""
    lengths = {f"axes.{p}": len(v) for p, v in spec.axes.items()}
    lengths |= {f"zip[{i}].{p}": len(v) for i, g in enumerate(spec.zip) for p, v in g.items()}
    if spec.search is not None:
        n_trials = spec.search.num_samples
    else:
        n_trials = math.prod(len(v) for v in spec.axes.values())
        n_trials *= math.prod(len(next(iter(g.values()), [])) for g in spec.zip)
    n_trials *= len(spec.seeds)
    return check_sizes(lengths, len(spec.seeds), n_trials, allow_large, where=where)


def load_trials(
    path: str | Path, sets: list[str] = (), allow_large: bool = False, data: bool = False
) -> Loaded:
    """Read a spec (an ablation, or a bare trial spec: one trial), apply ``--set`` overrides
    and expand it into trials, validating everything once and reporting every problem in one
    SpecError: schema, axes, claims, and with ``data`` the data and metric files
    (``check.preflight``). ``path`` is a file or the name of a bundled ablation."""
    path = find_spec(path)
    where = str(path)
    spec_sets, trial_sets = split_sets(parse_sets(list(sets)))
    raw = read_yaml(Path(path))
    if not {"name", "trial"} & set(raw):  # a bare trial spec: one trial
        raw = {"name": Path(path).stem, "trial": raw, "seeds": [raw.get("seed", 0)]}
    else:
        raw = resolve_bases(Path(path))
        for key, value in spec_sets.items():
            set_dotted(raw, key, value, f"--set {key}")
    errors = load_plugins(raw.get("plugins", []), Path(path))  # before their values validate
    spec, schema_errors, kept = validate_all(AblationSpec, raw, where)
    errors += schema_errors
    if spec is None:
        raise SpecError(errors)
    base, trial_errors, _ = validate_all(TrialSpec, spec.trial, where, "trial.")
    errors += trial_errors
    too_large = size_problems(spec, where, allow_large)
    if too_large:  # before expanding: a huge grid would take minutes to build
        raise SpecError(errors + too_large)
    base = base or TrialSpec()
    controlled = set(spec.axes) | {p for group in spec.zip for p in group} | {"seed"}
    errors += [
        f"--set {p}: this setting is an axis (or the seeds) of {where}; change the axis values "
        "or `seeds` instead"
        for p in sorted(set(trial_sets) & controlled)
    ]
    if trial_sets:
        base = _collect(lambda: base.override(trial_sets, "--set"), errors) or base
    late: list[str] = []  # expansion's lines name claims by their index among the valid ones
    trials = _collect(lambda: expand(spec, base, where), late)
    errors += renumber(late, where, kept.get("claims", []))
    if data:
        _collect(lambda: preflight(trials or [Trial("base", "base", {}, 0, base)], where), errors)
    if errors:
        raise SpecError(list(dict.fromkeys(errors)))
    return Loaded(spec, base, trials, where)


def renumber(lines: list[str], where: str, kept: list[int]) -> list[str]:
    """Lines about ``claims[j]`` of the claims that validated, named by their index in the file
    (``kept[j]``) again."""
    out = []
    for line in lines:
        for j in range(len(kept)):
            old = f"{where}: claims[{j}]"
            if line.startswith(old):
                line = f"{where}: claims[{kept[j]}]" + line[len(old) :]
                break
        out.append(line)
    return out


def validate(paths: list[str], sets: list[str] = (), allow_large: bool = False, echo=print) -> int:
    """`scm-bench validate`: every spec checked (data included), an 'ok' line for each valid
    one, then one SpecError with the problems of all the others; 0 when all are valid."""
    problems = []
    for path in paths:
        try:
            loaded = load_trials(path, sets, allow_large, data=True)
        except SpecError as err:
            problems += err.lines
            continue
        search = loaded.spec.search
        size = f"{len(loaded.trials)} trials"
        echo(f"{path}: ok ({f'search: {search.num_samples} proposals' if search else size})")
    if problems:
        raise SpecError(problems)
    return 0

"""`scm-bench init NAME`: a commented starter spec that validates and runs as written."""

from __future__ import annotations

from pathlib import Path

from scm_bench.errors import SpecError
from scm_bench.names import run_name_problem

STARTER = """\
# {name}: an ablation of your own. Check it with `scm-bench validate {name}.yaml`, run it with
# `scm-bench run {name}.yaml` (a few minutes on 2 CPU cores), read runs/{name}/report.md.
# Every setting: `scm-bench ls settings`; the spec's fields: docs/spec-reference.md.
name: {name}
description: >-
  The paper's claim this ablation tests (sCM Fig. 5a: the raw tangent is worse than the
  normalized one).

# The settings every variant starts from: a bundled base by name (`scm-bench ls bases`) or a
# YAML file beside this one. `grid` trains a small MLP on a 3 x 3 grid of Gaussians.
base: grid

# Your own techniques: Python modules beside this file that register new values
# (docs/plugins.md), e.g. plugins: [my_tangent]
plugins: []

# What differs from the base in every variant (any setting, by its dotted path).
trial:
  train: {{steps: 600}}

# One axis: a variant per value; add axes for a grid, `zip:` for values that change together.
axes:
  tangent.mode: [normalize, raw]

# Seeds of every variant; the claim below pairs the variants by seed.
seeds: [0, 1, 2, 3]
baseline: {{tangent.mode: normalize}}

# What you expect, as data: the report opens with one verdict per claim
# (reproduced / contradicted / inconclusive). Metrics: `scm-bench ls metrics`.
claims:
  - name: the raw tangent puts fewer 2-step samples in the modes
    metric: mode_precision_2step
    variant: {{tangent.mode: raw}}
    baseline: {{tangent.mode: normalize}}
    direction: lower
    paper: "sCM Fig. 5a: the raw tangent is worst"
"""


def write_starter(name: str, folder: Path, echo=print) -> int:
    """``folder/NAME.yaml`` with the starter spec (an existing file is never overwritten) and
    what to do next; 0, the command's exit code."""
    problem = run_name_problem(name)
    if problem:
        raise SpecError([f"NAME: {problem}"])
    path = Path(folder) / f"{name}.yaml"
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(STARTER.format(name=name))
    except FileExistsError:
        raise SpecError([f"{path}: already exists; pick another NAME or edit that file"]) from None
    except OSError as err:
        raise SpecError([f"{path}: cannot write: {err.strerror}"]) from None
    echo(f"wrote {path}; next: scm-bench validate {path.name} && scm-bench run {path.name}")
    return 0

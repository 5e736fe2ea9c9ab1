"""Checks of what a trial would reject later, run by `validate` and before a run trains:
data folders, sample-metric names and feature-network weights. Every problem is one line."""

from __future__ import annotations

from scm_bench import metrics
from scm_bench.data import load_dataset
from scm_bench.errors import SpecError, UserError
from scm_bench.spec.expand import Trial


def preflight(trials: list[Trial], where: str = "spec") -> None:
    """SpecError listing every problem of every distinct data / metric setting."""
    problems, seen = [], set()
    for t in trials:
        key = (t.spec.data.model_dump_json(), t.spec.eval.metrics, t.spec.eval.inception)
        if key in seen:
            continue
        seen.add(key)
        try:
            ds = load_dataset(t.spec.data)
        except UserError as err:
            problems += [f"{where}: trial.data: {line}" for line in err.lines]
            continue
        names = t.spec.eval.metrics or metrics.default_sample_metrics(ds.name)
        try:
            metrics.check_available(ds.name, names, inception=t.spec.eval.inception)
        except (UserError, ValueError) as err:
            problems.append(f"{where}: trial.eval.metrics: {err}")
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))

"""The one ``tune.Tuner`` of every phase (teachers, trials, search) and the driver's side of the
storage: each checkpoint a trial reports is assembled into its folder of the run (``Mirror``).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ray import tune

from scm_bench import rundir
from scm_bench.runner.job import Job
from scm_bench.runner.progress import Progress, relayed
from scm_bench.runner.storage import Storage, download
from scm_bench.runner.trainable import proposal, trainable
from scm_bench.runner.workers import trial_resources
from scm_bench.spec import AblationSpec

log = logging.getLogger("scm_bench")


def destination(jobs: dict[str, Job], config: dict) -> Path:
    """The run's folder of a Tune trial: its job's, or for a search proposal the folder named
    by the proposal (as the trial names itself)."""
    job = jobs[config["trial_id"]]
    if "params" in config:
        return job.dir / proposal(job, config["params"])[1]
    return job.dir


def mirror_into(item: tuple[str, tune.Checkpoint]) -> None:
    """A reported checkpoint into its folder of the run; a folder with an outcome is final.
    A checkpoint Tune dropped meanwhile (it keeps the latest two) is skipped: the next comes."""
    dest, checkpoint = Path(item[0]), item[1]
    if rundir.is_finished(dest):
        return
    try:
        download(checkpoint, dest)
    except (OSError, FileNotFoundError) as e:
        log.warning("%s: checkpoint %s not copied (%s)", dest.name, checkpoint.path, e)


class Mirror(tune.Callback):
    """Each checkpoint a trial reports goes (through ``sink``: ``mirror_into``, relayed from the
    cluster under Ray Client) into the trial's folder of the run, so the run folder follows
    the storage and a re-run resumes from it. Ray Train runs report theirs as a path."""

    def __init__(self, jobs: dict[str, Job], storage: Storage, sink: Callable):
        self.jobs, self.storage, self.sink = jobs, storage, sink

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.sink((str(destination(self.jobs, trial.config)), checkpoint))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("checkpoint_path"):  # a multi-worker trial's Ray Train checkpoint
            fs, _ = self.storage.fs()
            checkpoint = tune.Checkpoint(result["checkpoint_path"], filesystem=fs)
            self.sink((str(destination(self.jobs, trial.config)), checkpoint))


@contextmanager
def relays(echo) -> Iterator[tuple[Callable, Callable]]:
    """(say, sink): Progress's lines and Mirror's checkpoints, relayed under Ray Client."""
    with relayed(echo) as say, relayed(mirror_into) as sink:
        yield say, sink


def fit(
    jobs: dict[str, Job],
    spec: AblationSpec,
    phase: str,
    storage: Storage,
    param_space: dict,
    total: int,
    concurrency: int,
    echo,
    callbacks: list[tune.Callback] = (),
    **tune_config,  # more of tune.TuneConfig (the search's searcher, metric, mode, ...)
) -> tune.ResultGrid:
    """Run ``trainable`` over ``param_space`` as one Tune experiment ``<phase>-<time>`` in the
    storage; every reported checkpoint is assembled into its folder of the run, the final
    ones again from the results; an errored trial without an outcome gets a 'failed' one."""
    with relays(echo) as (say, sink):
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(trainable, jobs=jobs), trial_resources(spec.resources)
            ),
            param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=concurrency, **tune_config),
            run_config=tune.RunConfig(
                name=f"{phase}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=storage.uri,
                failure_config=tune.FailureConfig(max_failures=spec.failure.max_retries),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                callbacks=[
                    Progress(phase, total, concurrency, say),
                    Mirror(jobs, storage, sink),
                    *callbacks,
                ],
                verbose=0,
            ),
        )
        grid = tuner.fit()
    for res in grid:
        dest = destination(jobs, res.config)
        if res.checkpoint is not None:
            mirror_into((str(dest), res.checkpoint))
        if res.error is not None and not rundir.is_finished(dest):
            record_failure(dest, res.error, echo)
    return grid


def record_failure(dest: Path, error: BaseException, echo) -> None:
    """result.json 'failed' with the error's last line; the full traceback in error.txt."""
    dest.mkdir(parents=True, exist_ok=True)
    err = "".join(traceback.format_exception_only(type(error), error)).strip()
    (dest / "error.txt").write_text(str(error))
    reason = err.splitlines()[-1][:500]
    rundir.write_json(dest / "result.json", {"status": rundir.FAILED, "error": reason})
    echo(f"  {dest.name}: failed: {reason} (traceback: {dest / 'error.txt'})")


# Tune's console tables and TensorBoard hints would drown the progress lines; legacy output at
# verbose=0 prints nothing, and Progress reports instead. Ctrl-C must reach the CLI (exit 130,
# "re-run to resume"), not Tune's own handler (which exits 0 and suggests Tuner.restore).
TUNE_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1"}


@contextmanager
def tune_env():
    """TUNE_ENV (where the user has not set them) while the run drives Tune; the process's
    environment as it was afterwards (importing the runner changes nothing)."""
    added = {k: v for k, v in TUNE_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def tune_dirname(trial) -> str:
    """Tune's folder for a trial: the scm-bench trial id, not a dump of its config."""
    return f"{trial.config['trial_id']}-{trial.trial_id}"[:150]


def tune_trialname(trial) -> str:
    """A trial's name in Tune, TensorBoard, W&B and MLflow: the scm-bench trial id."""
    return trial.config["trial_id"]

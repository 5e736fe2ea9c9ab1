"""A one-line-per-event progress reporter for Tune: done / running / failed and an ETA."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ray
from ray import tune
from ray.util.queue import Empty, Queue

from scm_bench import rundir


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress(tune.Callback):
    def __init__(self, phase: str, total: int, concurrency: int, echo=print):
        self.phase, self.total, self.concurrency, self.echo = (
            phase,
            total,
            max(1, concurrency),
            echo,
        )
        self.done = self.failed = self.running = 0
        self.start = time.monotonic()
        self.durations: list[float] = []
        self.started: dict[str, float] = {}

    def _line(self, what: str) -> None:
        finished = self.done + self.failed
        eta = ""
        if self.durations and finished < self.total:
            mean = sum(self.durations) / len(self.durations)
            eta = f", ETA {fmt_seconds(mean * (self.total - finished) / self.concurrency)}"
        self.echo(
            f"[{self.phase} {finished}/{self.total}: {self.done} done, {self.running} "
            f"running, {self.failed} failed{eta}] {what}"
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running += 1
        self.started[trial.trial_id] = time.monotonic()

    def _finish(self, trial) -> float:
        self.running = max(0, self.running - 1)
        took = time.monotonic() - self.started.pop(trial.trial_id, self.start)
        self.durations.append(took)
        return took

    def on_trial_complete(self, iteration, trials, trial, **info):
        took = self._finish(trial)
        self.done += 1
        res = trial.last_result or {}
        self._line(
            f"{self._name(trial, res)}: {res.get('status', rundir.OK)} in {fmt_seconds(took)}"
        )

    def on_trial_recover(self, iteration, trials, trial, **info):
        """A crashed trial that Tune restarts: it starts again, so it is not running twice."""
        self.running = max(0, self.running - 1)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial)
        self.failed += 1
        self._line(f"{self._name(trial, trial.last_result or {})}: FAILED")

    @staticmethod
    def _name(trial, result: dict) -> str:
        """The scm-bench trial id; a search proposal is named by its trial folder."""
        name = trial.config.get("trial_id", trial.trial_id)
        if "params" in trial.config and result.get("trial_dir"):
            name = result["trial_dir"].rsplit("/", 1)[-1]
        return name


@contextmanager
def relayed(echo: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    """The ``echo`` to give Tune callbacks such as ``Progress``. Under Ray Client, Tune runs its
    loop, callbacks included, on the cluster, where printing reaches nobody: their lines then
    go through a Ray queue that a driver thread echoes (as Tune relays its own reporter)."""
    if not ray.util.client.ray.is_connected():
        yield echo
        return
    queue, stop = Queue(actor_options={"num_cpus": 0}), threading.Event()

    def pump() -> None:
        while True:
            try:
                echo(queue.get(timeout=0.5))
            except Empty:
                if stop.is_set():
                    return

    thread = threading.Thread(target=pump, name="scm-bench-progress", daemon=True)
    thread.start()
    try:
        yield queue.put
    finally:
        stop.set()
        thread.join(timeout=30)
        queue.shutdown()

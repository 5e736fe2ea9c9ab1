"""Shared fixtures."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Every test runs torch on one CPU thread: the small nets of these tests are no faster on
    two, and on a busy 2-core machine two intra-op threads per process oversubscribe the cores
    (measured: a batch-256 MLP step took 6.6 ms on one thread and 84 ms on two under load; the
    three paper presets' two steps at batch 2 took 4 s on one thread and 131 s on two). Ray's
    trials set their own threads (resources.cpu); drivers started as subprocesses keep theirs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ROOT = Path(__file__).resolve().parent.parent
# Quickstart at test size: every code path of a real run, in about a minute on 2 cores.
FAST = ["train.steps=20", "teacher.steps=30", "eval.n_samples=300", "eval.grid=300",
        "train.log_every=5", "train.checkpoint_every=5", "net.width=32", "net.depth=2"]  # fmt: skip
QUICK = [*FAST, "seeds=[0, 1]"]  # the quickstart at test size: 2 variants x 2 seeds


def pytest_collection_modifyitems(config, items):
    """Every test that needs the session's Ray (directly or through a fixture) is `slow`:
    `pytest -m "not slow"` is the inner loop that never starts Ray."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole session, exporting metrics every 0.5 s on a known port."""
    ray = pytest.importorskip("ray")
    port = _free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _metrics_export_port=port,
             _system_config={"metrics_report_interval_ms": 500})  # fmt: skip
    yield {"metrics_port": port, "address": ray.get_runtime_context().gcs_address}
    ray.shutdown()


@pytest.fixture(scope="session")
def quickstart_run(ray_cluster, tmp_path_factory):
    """ablations/quickstart.yaml run through Ray at test size: (run dir, trials, results)."""
    from scm_bench.runner.run import run
    from scm_bench.spec import load_trials

    base = tmp_path_factory.mktemp("quickstart")
    loaded = load_trials(ROOT / "ablations" / "quickstart.yaml", QUICK)
    spec, trials = loaded.spec, loaded.trials
    df = run(spec, trials, base / "run", teacher_cache=base / "teachers", echo=lambda *_: None)
    # The trials' live metrics leave Ray's endpoint within seconds of their workers exiting;
    # keep what it exports now for the runner test, whichever test first asked for this run.
    ids = [t.trial_id for t in trials]
    (base / "live_metrics.prom").write_text(scrape(ray_cluster["metrics_port"], ids))
    return base / "run", trials, df


@pytest.fixture
def warm_teachers(quickstart_run, tmp_path) -> Path:
    """``tmp_path/teachers``: a copy of the session's trained quickstart teachers (QUICK's
    settings, seeds 0 and 1), so a test that runs the quickstart at those settings for another
    fact trains no teacher of its own (its students are the same as without the copy)."""
    cache = tmp_path / "teachers"
    shutil.copytree(quickstart_run[0].parent / "teachers", cache)
    return cache


def scrape(port: int, wanted: list[str], wait: float = 30.0) -> str:
    """Ray's Prometheus export, read until it names one of ``wanted`` (or ``wait`` s passed)."""
    import urllib.request

    deadline, text = time.time() + wait, ""
    while time.time() < deadline and not any(w in text for w in wanted):
        time.sleep(1)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return text

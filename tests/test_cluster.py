"""A Ray cluster started the way Ray users start one (`ray start --head`, token authentication on
because a token exists): `scm-bench run --address` from a shell without RAY_AUTH_MODE, in both
address forms, gives the rows of a local run and the same progress lines."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import QUICK, ROOT
from test_hardening import DETERMINISTIC

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # every test starts `ray start` or a driver subprocess

from scm_bench.runner.cluster import token_available  # noqa: E402
from scm_bench.runner.trainable import teacher_dir  # noqa: E402

QUICKSTART = str(ROOT / "ablations" / "quickstart.yaml")
PROGRESS = re.compile(r"^\[(teachers|trials) (\d+)/(\d+): [^\]]*\] (\S+): (\w+)")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def clean_env(**extra: str) -> dict:
    """The environment of a fresh shell: no RAY_AUTH_MODE (the session's local Ray set it in
    this process) and no RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    return env | extra


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"ray start did not listen on {port}: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def head():
    """`ray start --head --block` in its own process group, on free ports and its own temp
    folder; stopped by terminating that process group (never `ray stop`, which would stop
    every Ray on the machine). It declares one GPU, a logical resource here: this machine has
    none, so trials asking for GPU shares still train on the CPU."""
    if not token_available():
        pytest.skip("no Ray auth token (~/.ray/auth_token): token authentication would be off")
    gcs, client, agent, metrics = free_ports(4)
    temp = Path(tempfile.mkdtemp(prefix="scmray", dir="/tmp"))  # short: socket paths
    log = temp / "head.log"
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
           f"--port={gcs}", "--num-cpus=2", "--num-gpus=1", f"--ray-client-server-port={client}",
           "--include-dashboard=false", f"--dashboard-agent-listen-port={agent}",
           f"--metrics-export-port={metrics}", f"--temp-dir={temp}",
           "--disable-usage-stats"]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True
        )
    try:
        wait_for_port(gcs, proc, log)
        wait_for_port(client, proc, log)
        assert "Token authentication is enabled" in log.read_text()
        yield {"gcs": f"127.0.0.1:{gcs}", "client": f"ray://127.0.0.1:{client}"}
    finally:  # `ray start` shuts its node down on SIGTERM; then nothing of its group is left
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def progress(stdout: str) -> dict[str, list[tuple]]:
    """Per phase: the (trials finished, trial, outcome) of each progress line, in order."""
    out: dict[str, list[tuple]] = {}
    for line in stdout.splitlines():
        if m := PROGRESS.match(line):
            phase, done, total, name, status = m.groups()
            out.setdefault(f"{phase}/{total}", []).append((int(done), name, status))
    return out


@pytest.mark.parametrize("form", ["gcs", "client"])
def test_a_run_on_a_ray_start_cluster_matches_a_local_run(
    head, form, quickstart_run, tmp_path, request
):
    """gcs: the local quickstart run again, its teachers included. client: the same driver
    through the other address form, its teachers already in the cache and seed 0 only."""
    run_dir, trials, local = quickstart_run
    sets, cache = QUICK, tmp_path / "teachers"
    if form == "client":
        sets, cache = [*QUICK, "seeds=[0]"], request.getfixturevalue("warm_teachers")
        trials = [t for t in trials if t.seed == 0]
    args = [sys.executable, "-m", "scm_bench.cli", "run", QUICKSTART, "--out",
            str(tmp_path / "run"), "--teacher-cache", str(cache),
            "--address", head[form]] + [x for s in sets for x in ("--set", s)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    # The rows: every deterministic number equals the local run's.
    got = pd.read_csv(tmp_path / "run" / "results.csv").set_index("trial_id")
    want = local.set_index("trial_id").loc[[t.trial_id for t in trials]]
    cols = [c for c in want.select_dtypes("number").columns if re.match(DETERMINISTIC, c)]
    assert cols and got.index.equals(want.index) and (got["status"] == "ok").all()
    pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=False)

    # The progress lines: one per finished trial and teacher, counted 1..N, on this terminal
    # (a cached teacher is not trained: no line).
    phases = {"trials": {t.trial_id for t in trials}}
    if form == "gcs":
        phases["teachers"] = {teacher_dir(t.spec, run_dir.parent / "teachers").name for t in trials}
    lines = progress(done.stdout)
    assert set(lines) == {f"{p}/{len(names)}" for p, names in phases.items()}, done.stdout
    for phase, names in phases.items():
        got_lines = lines[f"{phase}/{len(names)}"]
        assert [n for n, _, _ in got_lines] == list(range(1, len(names) + 1))
        assert {name for _, name, _ in got_lines} == names
        assert {status for _, _, status in got_lines} == {"ok"}


def test_fractional_gpus_pack_four_trials_on_one_gpu(head, tmp_path):
    """resources.gpu: 0.25 is accepted by the resource check and by Tune, and four trials
    share the head's one GPU at once."""
    spec = tmp_path / "packed.yaml"
    spec.write_text(
        f"name: packed\nbase: {ROOT / 'ablations' / 'base' / 'toy2d.yaml'}\n"
        "trial: {method: sct, student: {init: scratch}, device: cpu, net: {width: 32, depth: 2},\n"
        "        train: {steps: 30, log_every: 10}, eval: {n_samples: 100, grid: 0}}\n"
        "axes: {tangent.mode: [normalize, raw]}\nseeds: [0, 1]\n"
        "resources: {cpu: 0.5, gpu: 0.25}\n"
    )
    args = [sys.executable, "-m", "scm_bench.cli", "run", str(spec), "--out",
            str(tmp_path / "run"), "--address", head["gcs"]]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "trials: 4 trial(s), up to 4 at a time" in done.stdout
    # Whether the four actually overlap depends on the machine's load; what the test can hold
    # is that Tune was given room for all four on the one GPU and that all four finished.
    assert len(re.findall(r"(\d+) running", done.stdout)) == 4, done.stdout


def test_an_address_without_a_token_is_refused_in_one_line(tmp_path):
    """No token anywhere Ray's CLI looks: one line saying how to give it, before connecting."""
    env = clean_env(HOME=str(tmp_path))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    args = [sys.executable, "-m", "scm_bench.cli", "run", QUICKSTART, "--out",
            str(tmp_path / "run"), "--address", "127.0.0.1:1"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    errors = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "--address 127.0.0.1:1" in errors[0] and "ray get-auth-token" in errors[0]

"""What a local run listens on: every socket of the Ray processes it starts is on loopback (the
reporter agent's, dashboard head's and monitor's Prometheus endpoints included), read from
/proc/net/tcp{,6} as `ss -ltnp` does."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LISTEN = "0A"  # TCP state code of a listening socket in /proc/net/tcp


def _address(hex_ip: str) -> str:
    """The IP of a /proc/net/tcp{,6} address field (little-endian 32-bit words)."""
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_sockets() -> dict[int, str]:
    """{socket inode: 'ip:port'} of every listening TCP socket on this machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                ip, port = fields[1].split(":")
                found[int(fields[9])] = f"{_address(ip)}:{int(port, 16)}"
    return found


def descendants(pid: int) -> set[int]:
    """The processes started by ``pid``, directly or not."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = set(), [pid]
    while todo:
        kids = {p for p, parent in parents.items() if parent == todo[-1]} - out
        todo.pop()
        out |= kids
        todo.extend(kids)
    return out


def listeners_of(pids: set[int]) -> list[tuple[int, str, str]]:
    """(pid, process name, 'ip:port') of every listening socket the processes hold."""
    sockets, out = listening_sockets(), []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in sockets:
                out.append((pid, name, sockets[int(target[8:-1])]))
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


# The driver side of a local run: scm-bench's connect(), a trial's live metric, then it waits.
DRIVER = """
import sys, time
import ray
from ray.util import metrics
from scm_bench.runner.cluster import connect
connect(None, False, "127.0.0.1", print)
@ray.remote
def trial():
    gauge = metrics.Gauge("scm_bench_loss", tag_keys=("trial_id",))
    gauge.set(1.0, tags={"trial_id": "t"})
    time.sleep(3)  # the metrics agent exports while the worker lives
    return 1
ray.get(trial.remote())
port = next(n["MetricsExportPort"] for n in ray.nodes() if n["Alive"])
print("ready", port, flush=True)
sys.stdin.readline()
ray.shutdown()
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_a_local_run_listens_on_loopback_only(tmp_path):
    env = os.environ | {"RAY_ADDRESS": "", "PYTHONPATH": str(Path(__file__).parents[1])}
    env.pop("RAY_ADDRESS")
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("ready"):
            line = proc.stdout.readline()
        assert line.startswith("ready"), "the driver did not start Ray"
        port = int(line.split()[1])
        found = listeners_of(descendants(proc.pid) | {proc.pid})
        names = {name for _, name, _ in found}
        # The node's Prometheus endpoint (reporter agent), the dashboard head's and the
        # monitor's metrics servers (Ray's ports 44227 and 44217), GCS, raylet, workers.
        assert {"gcs_server", "raylet"} <= names and any(a.endswith(f":{port}") for *_, a in found)
        wide = [f for f in found if not is_loopback(f[2])]
        assert not wide, json.dumps(wide)
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=60)


def test_the_proc_reader_finds_a_socket_of_ours_and_its_address():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        found = [a for _, _, a in listeners_of({os.getpid()})]
        assert f"127.0.0.1:{port}" in found
    assert is_loopback("::ffff:127.0.0.1:80") and not is_loopback("0.0.0.0:80")


def test_the_readme_says_what_the_listener_test_measures():
    text = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "every socket its Ray processes open listens on loopback only" in text
    assert "tests/test_listeners.py" in text and "0.0.0.0" in text

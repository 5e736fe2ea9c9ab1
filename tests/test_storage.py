"""No shared filesystem assumed: on Ray's two-node test cluster (ray.cluster_utils.Cluster, one
machine), trials pinned to the second node by a custom resource work in that node's own working
directory, their artifacts travel through Tune's storage (--storage, outside the run folder),
students get their teacher from there, and the driver assembles a complete run folder whose
rows equal a local run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import FAST, ROOT
from test_cluster import clean_env, free_ports
from test_hardening import DETERMINISTIC

pytest.importorskip("ray")

# The driver of the two-node run, in a process of its own (this session's Ray stays as it is).
DRIVER = """
import json, sys
import ray
from ray.cluster_utils import Cluster
from scm_bench.runner.run import run
from scm_bench.spec import load_trials

spec, out, cache, storage, far_dir, port, sets = sys.argv[1:6] + [int(sys.argv[6]), sys.argv[7:]]
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "gcs_server_port": port, "include_dashboard": False})
far = cluster.add_node(num_cpus=2, resources={"far": 2}, env_vars={"SCM_BENCH_WORKDIR": far_dir})
ray.init(address=cluster.address, log_to_driver=False)
loaded = load_trials(spec, sets)
run(loaded.spec, loaded.trials, out, teacher_cache=cache, storage=storage, echo=print)
print(json.dumps({"far": far.node_id, "head": cluster.head_node.node_id}))
ray.shutdown()
cluster.shutdown()
"""
SETS = [*FAST, "seeds=[0]", "resources.custom={far: 1}"]
FILES = ("trial.json", "history.jsonl", "checkpoint.pt", "result.json", "model.pt")


def test_trials_on_a_second_node_go_through_storage_and_match_a_local_run(quickstart_run, tmp_path):
    out, cache, storage, far_dir = (tmp_path / n for n in ("run", "teachers", "store", "far"))
    args = [str(ROOT / "ablations" / "quickstart.yaml"), out, cache, storage, far_dir]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, args), str(free_ports(1)[0]), *SETS],
        capture_output=True, text=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = json.loads(done.stdout.strip().splitlines()[-1])

    # Every trial, the teacher included, ran on the second node, in its working directory.
    df = pd.read_csv(out / "results.csv")
    teachers = [p for p in cache.iterdir() if p.is_dir()]
    assert len(df) == 2 and (df["status"] == "ok").all() and len(teachers) == 1
    folders = [out / "trials" / t for t in df["trial_id"]] + teachers
    for folder in folders:
        where = json.loads((folder / "result.json").read_text())["ran_on"]
        assert where["node_id"] == nodes["far"] != nodes["head"]
        assert where["workdir"].startswith(str(far_dir)) and str(out) not in where["workdir"]
        assert all((folder / f).is_file() for f in FILES), sorted(os.listdir(folder))
        assert list(folder.glob("samples_*.png"))
    assert not list(far_dir.glob("trial-*")), "working directories are removed when done"

    # The artifacts went through the storage: Tune's checkpoints and the shared teacher.
    assert list(storage.glob("trials-*/*/checkpoint_*/result.json"))
    assert (storage / "teachers" / teachers[0].name / "model.pt").is_file()
    assert not (out / "ray").exists()
    assert "teacher" in (out / "report.md").read_text()

    # The same rows as the local run of the same trials.
    local = quickstart_run[2].set_index("trial_id").loc[df["trial_id"]]
    got = df.set_index("trial_id")
    cols = [c for c in local.select_dtypes("number").columns
            if pd.Series([c]).str.match(DETERMINISTIC).all()]  # fmt: skip
    assert cols
    pd.testing.assert_frame_equal(got[cols], local[cols], check_dtype=False)


def test_an_unusable_storage_uri_is_one_line_exit_2(tmp_path, capsys):
    from scm_bench.cli import main

    rc = main(["run", "quickstart", "--out", str(tmp_path / "run"), "--storage", "nope://x/y"])
    err = capsys.readouterr().err
    assert rc == 2 and "--storage nope://x/y" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

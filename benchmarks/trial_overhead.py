"""How much of a digits run's wall time is not training steps (the cost of a cheap trial).

    python benchmarks/trial_overhead.py [--seeds 2] [--out DIR]
    python benchmarks/trial_overhead.py --from RUN_DIR [RUN_DIR ...]   # phases of finished runs

Runs `scm-bench run ablations/base/digits_sct.yaml` (small U-Net, sCT, 400 steps per student)
twice with one teacher cache: the first run (students of 1 step) trains the teachers, untimed,
with 200 steps instead of 1000 (a student's step costs the same whatever its teacher learnt);
the second trains only the students, one at a time (``resources.cpu=2``), and is timed end to
end as a user waits for it. Its wall time is split with each trial's ``result.json``
``phases``: training steps (with their logging and checkpoints), setup (data, nets, the
teacher's weights), evaluation (samples, metrics, grids, model export), the mechanism probes,
and the rest: Ray's start, worker start and imports, results and the report. Prints a Markdown
table (the README's numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "ablations" / "base" / "digits_sct.yaml"
PHASES = {
    "train": "training steps (incl. logging, checkpoints)",
    "setup": "setup: data, nets, teacher weights",
    "evaluate": "evaluation: samples, FID, grids, model export",
    "probe": "mechanism probes (fixed weights)",
}


def run(out: Path, cache: Path, seeds: int, *sets: str) -> float:
    """Seconds `scm-bench run` took (a failed run is an error: its numbers would be wrong)."""
    cmd = [sys.executable, "-m", "scm_bench.cli", "run", str(SPEC), "--out", str(out),
           "--set", f"seeds={list(range(seeds))}", "--set", "resources.cpu=2",
           "--set", "teacher.steps=200", *(a for s in sets for a in ("--set", s))]  # fmt: skip
    env = os.environ | {"SCM_BENCH_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(base: Path, seeds: int) -> tuple[float, dict[str, float], int]:
    """(timed wall seconds, seconds per phase summed over the students, students)."""
    run(base / "prime", base / "cache", seeds, "train.steps=1")  # trains, caches the teachers
    wall = run(base / "timed", base / "cache", seeds)
    totals = dict.fromkeys(PHASES, 0.0)
    results = sorted((base / "timed" / "trials").glob("*/result.json"))
    for path in results:
        phases = json.loads(path.read_text()).get("phases") or {}
        for name in totals:
            totals[name] += phases.get(name, 0.0)
    return wall, totals, len(results)


def from_runs(run_dirs: list[str]) -> None:
    """Per run: mean seconds per phase over its students (``result.json`` phases) and the share
    of a trial's own wall time outside training steps (Ray and worker start not included)."""
    print("| run | students | train s | setup s | evaluate s | probe s | outside training |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run_dir in run_dirs:
        rows = [json.loads(p.read_text()) for p in Path(run_dir).glob("trials/*/result.json")]
        rows = [r["phases"] for r in rows if r.get("phases")]
        if not rows:
            continue
        mean = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) for k in PHASES}
        share = 1 - mean["train"] / sum(mean.values())
        cells = " | ".join(f"{mean[k]:.1f}" for k in ("train", "setup", "evaluate", "probe"))
        print(f"| {Path(run_dir).name} | {len(rows)} | {cells} | {100 * share:.1f}% |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2, help="students (one per seed)")
    p.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    p.add_argument("--from", dest="runs", nargs="+", help="only read the phases of these runs")
    args = p.parse_args()
    if args.runs:
        return from_runs(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.out or tmp)
        wall, totals, n = measure(base, args.seeds)
    rest = wall - sum(totals.values())
    print(f"{n} digits students (U-Net, 400 sCT steps), one at a time; `scm-bench run` took "
          f"{wall:.0f} s\n")  # fmt: skip
    print("| phase | seconds | share of the run |\n|---|---:|---:|")
    for name, label in PHASES.items():
        print(f"| {label} | {totals[name]:.1f} | {100 * totals[name] / wall:.1f}% |")
    print(f"| rest: Ray and worker start, imports, results, report | {rest:.1f} | "
          f"{100 * rest / wall:.1f}% |")  # fmt: skip
    print(f"\noutside training steps: {100 * (1 - totals['train'] / wall):.1f}% of the run")


if __name__ == "__main__":
    main()

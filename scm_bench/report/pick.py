"""`scm-bench sample`: pick a trial of a run folder by variant and seed, and write its
model's samples to a file. Reads what the runner wrote (results.csv, trial folders); the
model itself is train/model.py's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scm_bench import rundir
from scm_bench.errors import ModelError
from scm_bench.spec.plugins import load_run_plugins
from scm_bench.train.grids import save_samples
from scm_bench.train.model import load_model


def _aliases(label: str) -> set[str]:
    """Ways to name a variant: 'tangent.mode=normalize', 'mode=normalize' or 'normalize'."""
    pairs = [p.partition("=") for p in label.split(",")]
    return {
        label,
        ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, _, v in pairs),
        ",".join(v for _, _, v in pairs),
    }


def find_trial(
    run_dir: str | Path, variant: str | None, seed: int | None, teacher: bool = False
) -> Path:
    """The folder of a run's trial picked by variant label and seed (either may be left out
    when the run has only one), or of that trial's teacher; errors list what there is."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.csv").is_file():
        raise ModelError(f"{run_dir}: no results.csv; is this a run directory (runs/<name>)?")
    df = pd.read_csv(run_dir / "results.csv")
    variants = list(dict.fromkeys(df["variant"].astype(str)))
    listed = "; variants: " + ", ".join(variants)
    if variant is None and len(variants) > 1:
        raise ModelError(f"{run_dir}: --variant is needed{listed}")
    picked = [v for v in variants if variant is None or variant in _aliases(v)]
    if len(picked) != 1:
        what = "matches several variants" if picked else "is not a variant of this run"
        raise ModelError(f"{run_dir}: --variant {variant!r} {what}{listed}")
    rows = df[df["variant"].astype(str) == picked[0]]
    seeds = sorted(int(s) for s in rows["seed"])
    if seed is None and len(seeds) > 1:
        raise ModelError(f"{run_dir}: --seed is needed; seeds of {picked[0]}: {seeds}")
    rows = rows[rows["seed"] == (seeds[0] if seed is None else seed)]
    if rows.empty:
        raise ModelError(f"{run_dir}: no trial of {picked[0]} with seed {seed}; seeds: {seeds}")
    row = rows.iloc[0]
    if teacher:
        if not isinstance(row.get("teacher_dir"), str):
            raise ModelError(f"{row['trial_id']}: this trial has no teacher")
        return Path(row["teacher_dir"])
    if row["status"] != rundir.OK:
        raise ModelError(f"{row['trial_id']}: status {row['status']}, no trained model")
    trial_dir = run_dir / "trials" / str(row["trial_id"])
    if not trial_dir.is_dir():  # a search proposal: trials/search-<digest of its spec>
        trial_dir = run_dir / "trials" / f"search-{str(row['trial_id']).rsplit('-', 1)[-1]}"
    return trial_dir


def sample_to_file(
    source: Path, out: Path, variant: str | None, seed: int | None, teacher: bool,
    steps: int | None, n: int | None, noise_seed: int, device: str,
) -> str:  # fmt: skip
    """`scm-bench sample`: samples of a model file, a trial folder or a run's trial (picked by
    variant and seed) written as a .png grid or .npz arrays; returns the line to print."""
    if (source / "results.csv").is_file():  # a run: its plugins, then pick the trial
        load_run_plugins(source)
        source = find_trial(source, variant, seed, teacher)
    elif variant is not None or seed is not None or teacher:
        why = "pick a trial of a run directory (the noise seed is --noise-seed)"
        raise ModelError(f"{source}: --variant, --seed and --teacher {why}")
    model = load_model(source, device)
    n = n or model.spec.eval.grid or 64
    save_samples(model.sample(n, steps, noise_seed), out, model.default_labels(n))
    how = f"{steps or 1}-step sampling" if model.spec.is_student else "ODE solver"
    return f"wrote {out}: {n} samples of {source} ({model.method}, EMA weights, {how})"

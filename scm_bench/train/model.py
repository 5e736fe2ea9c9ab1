"""Trained models you can use: ``model.pt`` of a trial, ``load_model`` and ``Model.sample``.

A finished trial exports the network every sampler and metric of the run used: the EMA of
its trained weights. ``model.pt`` describes itself: the spec sections that build the network
(``net``, ``attention``, ``data``), the data's shape, sigma_d and classes, and the sampler
settings (``sampling``, ``student.guidance``, ``eval.grid``), so sampling needs neither the run
nor its spec.
The run's sample grids come out of ``Model.sample`` too: ``load_model(p).sample(n, steps)``
redraws ``samples_<steps>step.png`` exactly (the grid uses the trial's seed).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

from scm_bench import rundir
from scm_bench.core.sampling import consistency_times, sample_consistency, sample_ode
from scm_bench.errors import ModelError
from scm_bench.nets import build_net
from scm_bench.spec.schema import TrialSpec

FORMAT, VERSION = "scm-bench model", 1
WEIGHTS = "ema"  # which weights model.pt holds: the EMA network, the one the run sampled from


@dataclass
class Model:
    """A trained sCM student (1, 2 or N-step consistency sampling) or a TrigFlow teacher (the
    PF-ODE solver), with what it needs to sample."""

    net: torch.nn.Module  # the EMA network, in eval mode
    spec: TrialSpec  # method, seed and the sections that build and sample the net
    shape: tuple[int, ...]  # one sample: (dim,) or (C, H, W)
    sigma_d: float
    num_classes: int  # 0 = unconditional

    @classmethod
    def of(cls, parts) -> Model:
        """The EMA network of a trial being trained (``train.setup.Parts``)."""
        data = parts.data
        return cls(parts.ema, parts.spec, tuple(data.shape), data.sigma_d, data.num_classes)

    @property
    def method(self) -> str:
        return self.spec.method

    def default_labels(self, n: int) -> torch.Tensor | None:
        """Class labels 0, 1, ..., C-1, 0, ... for a class-conditional net, else None."""
        return torch.arange(n) % self.num_classes if self.num_classes else None

    def sample(
        self,
        n: int,
        steps: int | None = None,  # student: sampling steps (None = 1); teacher: ODE solver steps
        seed: int | None = None,  # None = the trial's seed (the seed of its sample grids)
        labels: torch.Tensor | None = None,  # (n,) class labels; None = default_labels(n)
    ) -> torch.Tensor:
        """n samples, (n, *shape), on the net's device. Students: consistency sampling at
        ``consistency_times(steps, sampling.t_max, sampling.t_mid)``; teachers: the
        ``sampling.solver`` ODE solver with ``steps`` (default ``sampling.teacher_steps``)."""
        device = next(self.net.parameters()).device
        gen = torch.Generator().manual_seed(self.spec.seed if seed is None else seed)
        y = self.default_labels(n) if labels is None else torch.as_tensor(labels).long()
        if y is not None and not self.num_classes:
            raise ModelError("labels given, but this model is unconditional (num_classes 0)")
        if y is not None:
            if y.shape != (n,):
                raise ModelError(f"labels must have shape ({n},), got {tuple(y.shape)}")
            y = y.to(device)
        shape, s = (n, *self.shape), self.spec.sampling
        if not self.spec.is_student:
            steps = steps or s.teacher_steps
            guidance = self.spec.student.guidance
            return sample_ode(
                self.net, shape, self.sigma_d, steps, s.solver, y, guidance, gen, device
            )
        times = consistency_times(steps or 1, s.t_max, s.t_mid)
        return sample_consistency(self.net, shape, self.sigma_d, times, y, gen, device)

    def to(self, device: str | torch.device) -> Model:
        self.net.to(device)
        return self


def export_model(parts, path: Path) -> None:
    """Write ``model.pt``: the EMA weights and everything needed to build and sample them."""
    spec, data = parts.spec, parts.data
    sections = ("net", "attention", "data", "sampling")
    rundir.save_checkpoint(
        Path(path),
        {
            "format": FORMAT,
            "version": VERSION,
            "weights": WEIGHTS,
            "method": spec.method,
            "seed": spec.seed,
            "trial_digest": spec.digest(),
            "spec": {
                **{k: getattr(spec, k).model_dump(mode="json") for k in sections},
                "student": {"guidance": spec.student.guidance},
                "eval": {"grid": spec.eval.grid},  # samples in the trial's grids
            },
            "data": {
                "shape": list(data.shape),
                "sigma_d": float(data.sigma_d),
                "num_classes": int(data.num_classes),
            },
            "state_dict": {k: v.detach().cpu() for k, v in parts.ema.state_dict().items()},
        },
    )


def assemble(spec: TrialSpec, data: dict, state: dict, where: str) -> Model:
    """Build the network a spec describes and load its weights."""
    shape = tuple(data["shape"])
    net = build_net(spec, shape, data["sigma_d"], data["num_classes"])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"{where}: weights do not fit the network: {err}") from None
    net.eval().requires_grad_(False)
    return Model(net, spec, shape, float(data["sigma_d"]), int(data["num_classes"]))


def from_checkpoint(trial_dir: Path) -> Model:
    """A finished trial without model.pt (trained before models were exported): the EMA of
    its last checkpoint, built from trial.json (loads the dataset once for its shape)."""
    from scm_bench.data import load_dataset

    spec = TrialSpec.model_validate(rundir.read_json(trial_dir / "trial.json"))
    ckpt = rundir.load_checkpoint(trial_dir / "checkpoint.pt")
    ds = load_dataset(spec.data)
    data = {"shape": ds.shape, "sigma_d": ds.sigma_d, "num_classes": ds.num_classes}
    return assemble(spec, data, ckpt["ema"], str(trial_dir))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Model:
    """A trained model from ``model.pt`` or from a trial folder holding one."""
    path = Path(path)
    if path.is_dir():
        if not (path / rundir.MODEL_FILE).is_file():
            outcome = rundir.trial_outcome(path)
            if (
                outcome
                and outcome.get("status") == rundir.OK
                and (path / "checkpoint.pt").is_file()
            ):
                return from_checkpoint(path).to(device)
            why = f"status {outcome['status']}" if outcome else "no finished trial there"
            raise ModelError(f"{path}: no {rundir.MODEL_FILE} ({why})")
        path = path / rundir.MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{path}: file not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ModelError(f"{path}: not an scm-bench model file ({err})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{path}: not an scm-bench model file")
    if blob.get("version", 0) > VERSION:
        raise ModelError(f"{path}: model format {blob['version']} is newer than this scm-bench")
    try:
        spec = TrialSpec.model_validate(
            {"method": blob["method"], "seed": blob["seed"], **blob["spec"]}
        )
    except ValidationError as err:
        raise ModelError(f"{path}: its spec does not validate: {err.errors()[0]['msg']}") from None
    return assemble(spec, blob["data"], blob["state_dict"], str(path)).to(device)

"""Building the pieces of one trial from its spec: device, data, nets, loss, optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from scm_bench.core.ema import make_ema
from scm_bench.core.losses import GuidedTeacher, Loss, SCMLoss, TeacherLoss
from scm_bench.core.weighting import AdaptiveWeight
from scm_bench.data import Dataset, load_dataset
from scm_bench.errors import RunError
from scm_bench.nets import build_net
from scm_bench.safe_files import load_checkpoint_or_none
from scm_bench.spec.schema import TrialSpec
from scm_bench.train.teacher_file import load_file_teacher


def pick_device(choice: str) -> torch.device:
    """auto: CUDA when a GPU is visible, else CPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RunError("device: cuda asked, but no GPU is visible; use device: auto or cpu")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class Parts:
    """Everything a training loop touches, built once per trial."""

    spec: TrialSpec
    device: torch.device
    data: Dataset
    net: torch.nn.Module
    ema: torch.nn.Module
    adaptive: AdaptiveWeight | None
    teacher: torch.nn.Module | None
    loss: Loss
    opt: torch.optim.Optimizer


def load_teacher(spec: TrialSpec, teacher_dir: Path, data: Dataset, device) -> torch.nn.Module:
    """The finished teacher's EMA network (the paper's pretrained diffusion model), frozen.

    The checkpoint is read with ``weights_only=True`` (tensors and plain containers): a file
    holding anything else, a planted pickle included, is refused in one line, never run."""
    path = Path(teacher_dir) / "checkpoint.pt"
    ckpt, problem = load_checkpoint_or_none(path)
    if ckpt is None or not isinstance(ckpt.get("ema"), dict):
        raise RunError(problem or f"{path}: no teacher checkpoint with EMA weights")
    teacher = build_net(spec.teacher_trial(), data.shape, data.sigma_d, data.num_classes)
    teacher.load_state_dict(ckpt["ema"])
    return teacher.to(device).eval().requires_grad_(False)


def build_loss(
    spec: TrialSpec,
    sigma_d: float,
    teacher: torch.nn.Module | None = None,  # required for method=scd
    device: torch.device | str = "cpu",  # where a learned weight w_phi lives
    dtype: torch.dtype = torch.float32,  # ... and in which precision
) -> Loss:
    """The trial's objective: the TrigFlow teacher loss or the sCT / sCD loss with its adaptive
    weight w_phi (``loss.adaptive``, None when fixed); the one place that asks which method a
    trial trains."""
    proposal = spec.proposal.config()
    if spec.method == "teacher":
        return TeacherLoss(sigma_d, proposal, spec.train.label_dropout)
    distil = GuidedTeacher(teacher, spec.student.guidance) if spec.method == "scd" else None
    adaptive = AdaptiveWeight().to(device, dtype) if spec.weighting.adaptive else None
    return SCMLoss(
        sigma_d,
        spec.method,
        proposal,
        spec.tangent.config(),
        spec.jvp.config(),
        spec.weighting.prior,
        adaptive,
        distil,
    )


def build_parts(spec: TrialSpec, teacher_dir: Path | None = None) -> Parts:
    device = pick_device(spec.device)
    torch.manual_seed(spec.seed)
    data = load_dataset(spec.data)
    net = build_net(spec, data.shape, data.sigma_d, data.num_classes).to(device)
    teacher = None
    if spec.teacher.checkpoint is not None and spec.uses_teacher():  # a pretrained file
        teacher = load_file_teacher(spec, data, device)
    elif spec.needs_teacher():
        if teacher_dir is None:
            raise ValueError("this trial needs a teacher directory")
        teacher = load_teacher(spec, teacher_dir, data, device)
    if teacher is not None:
        if spec.student.init == "teacher":
            net.load_state_dict(teacher.state_dict())
    ema = make_ema(net)
    loss = build_loss(spec, data.sigma_d, teacher, device)
    params = list(net.parameters())
    if loss.adaptive is not None:  # w_phi is trained with the net
        params += list(loss.adaptive.parameters())
    opt = torch.optim.Adam(params, lr=spec.train.lr, betas=(0.9, spec.train.beta2))
    return Parts(spec, device, data, net, ema, loss.adaptive, teacher, loss, opt)

"""Spec sections of how a trial trains, samples and is evaluated (part of the trial schema in
``spec/schema.py``, which re-exports them), and ``Section``, the base of every spec section."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from scm_bench.core.precision import TrainPrecision
from scm_bench.core.sampling import SAMPLER_NAME, Solver
from scm_bench.core.trigflow import Proposal, ProposalKind

# Bounds that keep a typo from validating and then running for days or crashing deep inside
# (a seed of 2**64 overflowed pyarrow's int64 results column after training).
MAX_SEED = 2**31 - 1  # leaves room for the per-sampler seed offsets (train/evaluate.py)
MAX_STEPS = 10_000_000  # optimizer steps of a trial or teacher
MAX_SAMPLES = 1_000_000  # samples per evaluation or grid (FID's usual 50k is well inside)

TeacherParam = Literal["trigflow", "edm"]  # what a teacher.checkpoint file's network computes


class Section(BaseModel):
    """Base for every spec section: unknown keys are errors, values are frozen after validation;
    numbers are strict (``true`` is not 1, ``'3'`` is not 3) and finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StudentSpec(Section):
    target: Literal["stopgrad", "ema"] = Field(
        "stopgrad", description="theta^-: stop-gradient of current weights (paper) | EMA weights."
    )
    init: Literal["teacher", "scratch"] = Field(
        "teacher", description="Student initialization: from the teacher (paper) | from scratch."
    )
    guidance: StrictFloat = Field(
        1.0, ge=1.0, description="sCD: classifier-free guidance scale of the teacher (1 = none)."
    )


class ProposalSpec(Section):
    kind: ProposalKind = Field(
        "lognormal", description="Distribution of training times t (a plugin may add one)."
    )
    p_mean: StrictFloat = Field(-1.0, description="Mean of tau in t = arctan(exp(tau)/sigma_d).")
    p_std: StrictFloat = Field(1.4, gt=0, description="Std of tau (CIFAR-10: 1.4).")

    def config(self) -> Proposal:
        return Proposal(self.p_mean, self.p_std, self.kind)


class TrainSpec(Section):
    steps: StrictInt = Field(400, ge=1, le=MAX_STEPS, description="Optimizer steps.")
    batch_size: StrictInt = Field(256, ge=1, description="Batch size.")
    lr: StrictFloat = Field(1e-3, gt=0, description="Adam learning rate.")
    lr_decay_steps: StrictInt = Field(
        0,
        ge=0,
        description="0: constant learning rate | t_ref: lr / sqrt(max(step / t_ref, 1)), the "
        "inverse square root decay of EDM2 (Karras et al. 2024, Eq. 19 without its ramp-up).",
    )
    beta2: StrictFloat = Field(0.99, gt=0, lt=1, description="Adam beta2.")
    ema_decay: StrictFloat = Field(0.999, ge=0, lt=1, description="EMA decay of weights.")
    log_every: StrictInt = Field(10, ge=1, description="Write a history row every this many steps.")
    checkpoint_every: StrictInt = Field(
        100, ge=1, description="Save a resumable checkpoint every N steps."
    )
    label_dropout: StrictFloat = Field(
        0.1, ge=0, le=1, description="Teacher: probability of dropping the label (for CFG)."
    )
    precision: TrainPrecision = Field(
        "float32", description="Training forward under autocast; the JVP keeps jvp.precision."
    )


class TeacherSpec(Section):
    checkpoint: str | None = Field(
        None,
        description="A pretrained teacher read from this file instead of trained: a state dict "
        "(.safetensors, or a torch file read with weights_only=True) for this trial's net "
        "(docs/paper-scale.md); steps, lr and batch_size below are then unused.",
    )
    parameterization: TeacherParam = Field(
        "trigflow",
        description="teacher.checkpoint's network: trigflow (this suite's F) | edm (EDM's raw "
        "F_theta in D = c_skip x + c_out F_theta(c_in x, ln(sigma)/4); needs "
        "net.time_transform: edm).",
    )
    key_map: dict[str, str] = Field(
        default_factory=dict,
        description="teacher.checkpoint: key prefix renames, file prefix -> this net's prefix "
        "(e.g. {'module.': ''}), the first matching one per key.",
    )
    steps: StrictInt = Field(1000, ge=1, le=MAX_STEPS, description="Teacher optimizer steps.")
    lr: StrictFloat = Field(2e-3, gt=0, description="Teacher Adam learning rate.")
    batch_size: StrictInt = Field(256, ge=1, description="Teacher batch size.")


class SamplingSpec(Section):
    t_max: StrictFloat = Field(
        math.atan(80 / 0.5), gt=0, le=math.pi / 2, description="Start time of 1-step sampling."
    )
    t_mid: StrictFloat = Field(
        1.1, gt=0, lt=math.pi / 2, description="Re-noising time of 2-step sampling."
    )
    teacher_steps: StrictInt = Field(18, ge=1, description="Teacher ODE solver steps.")
    solver: Solver = Field(
        "heun", description="Teacher ODE solver (Heun: 2 steps - 1 NFE per step pair)."
    )


class EvalSpec(Section):
    n_samples: StrictInt = Field(
        2000, ge=16, le=MAX_SAMPLES, description="Samples generated per evaluation."
    )
    samplers: tuple[Annotated[str, Field(pattern=SAMPLER_NAME)], ...] = Field(
        ("1step", "2step"),
        min_length=1,
        description="Student samplers evaluated: 1step, 2step, or Nstep (e.g. 4step).",
    )
    metrics: tuple[str, ...] = Field((), description="Sample metrics; empty: the data's defaults.")
    sample_seeds: StrictInt = Field(
        1, ge=1, description="Sampling seeds each sample metric averages."
    )
    bootstrap: StrictInt = Field(10, ge=0, description="Bootstraps for <metric>_evalsd (0: none).")
    grid: StrictInt = Field(
        64, ge=0, le=MAX_SAMPLES, description="Samples saved as a grid image (0 = none)."
    )
    curve_every: StrictInt = Field(
        0,
        ge=0,
        description="Every this many steps (at logged steps), the sample metrics of each sampler "
        "(a teacher's: its ODE solver) on n_samples, as history fields eval_<metric>_<sampler> "
        "(metric against step; a student's teachers log theirs too); 0: only at the end.",
    )
    probe: bool = Field(
        True,
        description="Mechanism probes at fixed weights at the end (dfdt, g_p99, fp16_nonfinite; "
        "docs/metrics.md): about a second on toy2d.",
    )
    probe_steps: tuple[Annotated[StrictInt, Field(ge=0)], ...] = Field(
        (0,),
        description="Matched probes: also probe at these training steps (0: the initial weights, "
        "shared by the variants of a seed that start from one teacher) as columns "
        "<probe>_at<step> (dfdt, g_p99, g_max, fp16_nonfinite); a trial that diverged before a "
        "step has none, so variants compare at the same weights or the same step.",
    )
    inception: str | None = Field(
        None,
        description="Path to clean-fid's inception-2015-12-05.pt for RGB FID (default: "
        "$SCM_BENCH_INCEPTION, else ~/.cache/scm-bench/); never downloaded.",
    )

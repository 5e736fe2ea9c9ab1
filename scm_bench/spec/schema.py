"""The trial schema: the one place where every setting is defined, with its description.

Every stabilization technique of sCM (Lu & Song 2024) is an explicit field whose default is the
paper's recommended setting, so a resolved trial lists every switch. The dotted names used here
(``tangent.mode``, ``jvp.ordering``, ...) are the names used in YAML specs, result columns and
report headers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
)

from scm_bench.core.jvp import JVPBackend, JVPConfig, JVPOrdering, JVPPrecision
from scm_bench.core.losses import Method
from scm_bench.core.tangent import TangentConfig, TangentMode, TangentNorm
from scm_bench.core.weighting import PriorWeight
from scm_bench.data import DatasetName
from scm_bench.data.toy2d import ToyVariant
from scm_bench.errors import SpecError
from scm_bench.nets import Arch
from scm_bench.nets.attend import AttentionKernel
from scm_bench.nets.embed import CondConfig, TimeEmbeddingKind, TimeTransform
from scm_bench.nets.layers import AdaGN
from scm_bench.nets.unet import BlockCond
from scm_bench.spec.paths import format_errors, set_dotted
from scm_bench.spec.sections import (
    MAX_SEED,
    EvalSpec,
    ProposalSpec,
    SamplingSpec,
    Section,
    StudentSpec,
    TeacherSpec,
    TrainSpec,
)

LATER = {("proposal", "kind"): "lognormal"}  # (section, setting) added later: its default


class DataSpec(Section):
    name: DatasetName = Field(
        "toy2d",
        description="Dataset: generated 2-D toy data, scikit-learn digits, or local images.",
    )
    variant: ToyVariant = Field(
        "checkerboard", description="toy2d only: which 2-D distribution to generate."
    )
    root: str | None = Field(
        None,
        description="cifar10 / image_folder: local folder holding the data (never downloaded).",
    )
    resolution: StrictInt = Field(
        32, ge=4, le=512, description="image_folder: images are resized to this."
    )
    class_cond: StrictBool = Field(False, description="Condition the networks on class labels.")


class NetSpec(Section):
    arch: Arch = Field("mlp", description="Backbone network F.")
    width: StrictInt = Field(
        128, ge=4, description="MLP hidden width / U-Net base channels / DiT width."
    )
    depth: StrictInt = Field(
        4, ge=1, description="MLP residual blocks / U-Net blocks per level / DiT blocks."
    )
    channel_mult: tuple[StrictInt, ...] = Field(
        (1, 2), description="U-Net: channel multiplier per level."
    )
    attn_resolutions: tuple[StrictInt, ...] = Field(
        (4,), description="U-Net: resolutions with self-attention (see attention.kernel)."
    )
    patch_size: StrictInt = Field(2, ge=1, description="DiT: patch size.")
    heads: StrictInt = Field(4, ge=1, description="DiT / U-Net attention heads.")
    time_transform: TimeTransform = Field(
        "identity",
        description="c_noise(t): identity t (paper) | EDM log(sigma_d tan t)/4 | 1000 t.",
    )
    time_embedding: TimeEmbeddingKind = Field(
        "positional", description="Time embedding: positional (paper) | random Fourier features."
    )
    fourier_scale: StrictFloat = Field(
        16.0, gt=0, description="Std of Fourier frequencies (16 is the paper's unstable case)."
    )
    adagn: AdaGN = Field(
        "double",
        description="Adaptive norm: double (pixel-normed scale and shift, paper) | single "
        "(norm(x)(1+s)+b) | scale (norm(x)(1+s)).",
    )
    block_cond: BlockCond = Field(
        "both",
        description="U-Net: which norms of a residual block see the time embedding: both | "
        "second (norm1 plain GroupNorm; one embedding projection per block, DDPM++ / EDM2).",
    )
    dropout: StrictFloat = Field(0.0, ge=0, lt=1, description="Dropout probability inside blocks.")
    emb_dim: StrictInt = Field(128, ge=8, description="Width of the time embedding.")

    def conditioning(self, sigma_d: float, num_classes: int) -> CondConfig:
        return CondConfig(
            sigma_d, self.emb_dim, self.time_transform, self.time_embedding,
            self.fourier_scale, self.adagn, self.dropout, num_classes,
        )  # fmt: skip


class TangentSpec(Section):
    mode: TangentMode = Field(
        "normalize", description="Tangent g: normalize g/(||g||+c) (paper) | clip to [-1, 1] | raw."
    )
    norm: TangentNorm = Field("l2", description="Norm used by normalize: L2 (paper) | RMS.")
    c: StrictFloat = Field(0.1, gt=0, description="Normalization constant c in g/(||g||+c).")
    warmup_steps: StrictInt = Field(
        10000, ge=0, description="Tangent warmup H: r = min(1, step/H); 0 switches warmup off."
    )

    discrete_steps: StrictInt = Field(
        0,
        ge=0,
        description="0: continuous time, df/dt by the JVP (sCM) | N: the discrete-time "
        "consistency objective with N steps (sCM Fig. 5c): df/dt replaced by (f(x_t, t) - "
        "f(x_t', t'))/dt, t' = t - pi/(2N), on the same noise path (sCT) or one teacher Euler "
        "step (sCD).",
    )

    def config(self) -> TangentConfig:
        return TangentConfig(self.mode, self.norm, self.c, self.warmup_steps, self.discrete_steps)


class WeightingSpec(Section):
    adaptive: StrictBool = Field(True, description="Learned adaptive weighting w_phi(t) (paper).")
    prior: PriorWeight = Field(
        "none",
        description="Extra prior weight on top of Algorithm 1: none (the paper: its prior "
        "1/(sigma_d tan t) is already inside g) | inv_tan: multiply by 1/(sigma_d tan t) again "
        "(some public codebases).",
    )


class JVPSpec(Section):
    ordering: JVPOrdering = Field(
        "rearranged",
        description="rearranged: tangents pre-multiplied by cos t sin t (paper) | naive: "
        "tangents (dx/dt, 1), multiplied afterwards.",
    )
    precision: JVPPrecision = Field(
        "float32", description="Precision of the JVP pass (weights and inputs cast to it)."
    )
    backend: JVPBackend = Field(
        "fast",
        description="fast: JVP-aware layers give F and its tangent in one pass, which with "
        "student.target=stopgrad is also the gradient pass (float16/bfloat16 JVPs fall back to "
        "autograd) | autograd: torch.func.jvp (reference) | finite_difference: float64 central "
        "difference.",
    )

    def config(self) -> JVPConfig:
        return JVPConfig(self.ordering, self.precision, self.backend)


class AttentionSpec(Section):
    kernel: AttentionKernel = Field(
        "flash",
        description="flash: blockwise online-softmax attention with a fused JVP, O(N) memory "
        "(paper) / math: softmax(QK^T)V on the full N x N matrix, closed-form JVP, O(N^2).",
    )
    block_size: StrictInt = Field(128, ge=8, description="flash: key/query block size.")


class TrialSpec(Section):
    """One fully resolved trial: everything needed to train and evaluate it."""

    method: Method = Field(
        "sct",
        description="teacher: TrigFlow diffusion | sct: consistency training | "
        "scd: consistency distillation.",
    )
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED, description="Random seed (data, init, noise).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when a GPU is visible, else CPU."
    )
    data: DataSpec = DataSpec()
    net: NetSpec = NetSpec()
    attention: AttentionSpec = AttentionSpec()
    tangent: TangentSpec = TangentSpec()
    weighting: WeightingSpec = WeightingSpec()
    jvp: JVPSpec = JVPSpec()
    student: StudentSpec = StudentSpec()
    proposal: ProposalSpec = ProposalSpec()
    train: TrainSpec = TrainSpec()
    teacher: TeacherSpec = TeacherSpec()
    sampling: SamplingSpec = SamplingSpec()
    eval: EvalSpec = EvalSpec()

    def digest(self) -> str:
        """Short stable hash of the resolved spec (used in trial ids and caches); a setting
        added after trial ids were published stays out of it at its default (``LATER``), so
        earlier runs resume and cached teachers keep their names."""
        data = self.model_dump(mode="json")
        for (section, key), default in LATER.items():
            if data[section][key] == default:
                del data[section][key]
        blob = json.dumps(data, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]

    def override(self, values: dict[str, Any], where: str = "--set") -> TrialSpec:
        """A new validated trial with dotted paths set (``{"tangent.mode": "clip"}``): the one
        way axes, ``--set`` and search proposals change a trial. Errors name ``where`` and the
        path; the digest (and so the teacher) follows the new values."""
        data = self.model_dump()
        for path, value in values.items():
            set_dotted(data, path, value, where)
        try:
            return TrialSpec.model_validate(data)
        except ValidationError as err:
            raise SpecError(format_errors(err, where, TrialSpec)) from None

    @property
    def is_student(self) -> bool:
        """sCT or sCD (a consistency model), not the diffusion teacher."""
        return self.method != "teacher"

    @property
    def distils(self) -> bool:
        """sCD: dx_t/dt comes from the teacher (one more network evaluation per step)."""
        return self.method == "scd"

    def uses_teacher(self) -> bool:
        """The student distils a teacher (sCD) or starts from one (student.init: teacher)."""
        return self.method == "scd" or (self.method == "sct" and self.student.init == "teacher")

    def needs_teacher(self) -> bool:
        """A teacher trial must train first: one is used and none is read from a file."""
        return self.uses_teacher() and self.teacher.checkpoint is None

    def samplers(self) -> tuple[str, ...]:
        """What the trial is evaluated with: a teacher's ODE solver, a student's eval.samplers."""
        return self.eval.samplers if self.is_student else ("teacher",)

    def teacher_trial(self) -> TrialSpec:
        """The teacher this student starts from or distils: same data, net and seed.

        Student-only sections (and the attention JVP) are reset to defaults so students
        differing only in those share one teacher (and one cache entry).
        """
        teach = self.teacher
        train = self.train.model_copy(
            update={"steps": teach.steps, "lr": teach.lr, "batch_size": teach.batch_size}
        )
        return TrialSpec(
            method="teacher",
            seed=self.seed,
            device=self.device,
            data=self.data,
            net=self.net,
            attention=AttentionSpec(),  # the attention kernel never changes teacher training
            proposal=self.proposal,
            train=train,
            teacher=self.teacher,
            sampling=self.sampling,
            eval=self.eval.model_copy(update={"samplers": ("teacher",)}),
        )

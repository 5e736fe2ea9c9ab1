"""Training-step cost of sCT / sCD vs the TrigFlow teacher, and 1-step vs teacher sampling.

Nets (``NETS``): the digits U-Net of ``ablations/base/digits_sct.yaml`` and the digits DiT of
``ablations/attention_jvp.yaml`` (with fused and with math attention); batch 128, float32, CPU.
A step is what the training loop does per iteration: the loss, ``backward``, the Adam update.
Steps (``STEPS``): ``teacher`` (TrigFlow diffusion loss); ``sct`` and ``scd`` with the default
``jvp.backend=fast``; ``sct_autograd`` with ``jvp.backend=autograd`` (plain torch.func.jvp, the
reference). Peak memory: ``peak_memory_bytes`` (tensor allocations recorded by the profiler on
CPU, see test_bench_attention.py), stored in ``extra_info["peak_mib"]``.

    pytest benchmarks/test_bench_step.py       # pytest-benchmark timings (a few minutes)
    python benchmarks/step_table.py            # the Markdown tables (interleaved medians)

(``--benchmark-timer time.process_time`` makes pytest-benchmark time CPU instead of wall time.)
With ``--benchmark-disable`` (CI) every step runs once at batch 8, and the tests check facts
instead: the fast step's loss and gradients equal the autograd step's, and the fast step's peak
memory at batch 128 stays within 1.3x the teacher step's. Seconds in all.
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import pytest
import torch
from test_bench_attention import peak_memory_bytes

from scm_bench.core.losses import GuidedTeacher
from scm_bench.core.sampling import ode_nfe, sample_consistency, sample_ode
from scm_bench.data import load_dataset
from scm_bench.nets import build_net
from scm_bench.spec import TrialSpec, load_trials
from scm_bench.train.setup import build_loss

ABLATIONS = Path(__file__).resolve().parents[1] / "ablations"
BATCH, CI_BATCH = 128, 8
NETS = {  # name -> (spec whose trial is used, that trial's axis values)
    "unet": ("base/digits_sct.yaml", {}),  # the digits U-Net, math attention at 4x4
    "dit": ("attention_jvp.yaml", {"attention.kernel": "flash"}),  # that spec's baseline
    "dit_math": ("attention_jvp.yaml", {"attention.kernel": "math"}),  # math attention
}
STEPS = {  # step name -> --set overrides
    "teacher": ["method=teacher"],
    "sct": ["method=sct"],
    "sct_autograd": ["method=sct", "jvp.backend=autograd"],
    "scd": ["method=scd"],
}
TEACHER_SOLVER, TEACHER_STEPS = "heun", 18  # 35 NFE, the paper's CIFAR-10 teacher budget


def trial_spec(net: str, step: str) -> TrialSpec:
    """The net's digits trial (loaded as `scm-bench run` loads it) with the step's overrides."""
    path, axes = NETS[net]
    trials = load_trials(ABLATIONS / path, [*STEPS[step], "device=cpu"]).trials
    return next(t.spec for t in trials if t.axes == axes)


def perturbed(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add N(0, 0.02^2) to every weight: no layer stays exactly zero as at initialization."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    return net


class StepBench:
    """One net (student = a copy of the teacher, as in the paper) and one training step."""

    def __init__(
        self, net: str, step: str, batch: int = BATCH, dtype=torch.float32, device: str = "cpu"
    ):
        self.spec = spec = trial_spec(net, step)
        self.device = device
        torch.manual_seed(0)
        data = load_dataset(spec.data)
        self.sigma_d = data.sigma_d
        self.teacher = perturbed(build_net(spec, data.shape, data.sigma_d), seed=1)
        self.teacher = self.teacher.to(device, dtype)
        self.teacher.eval().requires_grad_(False)
        self.net = copy.deepcopy(self.teacher).requires_grad_(True).train()
        self.loss = build_loss(spec, data.sigma_d, self.teacher, device, dtype)
        assert spec.method != "scd" or isinstance(self.loss.teacher, GuidedTeacher)
        params = list(self.net.parameters())
        if self.loss.adaptive is not None:
            params += list(self.loss.adaptive.parameters())
        self.opt = torch.optim.Adam(params, lr=spec.train.lr)
        self.x0 = data.batch(batch, torch.Generator().manual_seed(2))[0].to(device, dtype)
        self.gen = torch.Generator().manual_seed(3)

    def loss_value(self, seed: int = 4) -> torch.Tensor:
        """The per-sample loss at fixed (t, z) draws (warmup over: r = 1)."""
        self.gen.manual_seed(seed)
        step = self.spec.tangent.warmup_steps + 1
        return self.loss(self.net, self.x0, step=step, generator=self.gen)[0]

    def step(self) -> torch.Tensor:
        """One training step: loss, backward, Adam update."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_value().mean()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def gradients(self) -> list[torch.Tensor]:
        """Loss and parameter gradients, with no update (for the fast == autograd check)."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_value()
        loss.mean().backward()
        return [loss.detach()] + [p.grad.clone() for p in self.opt.param_groups[0]["params"]]


def sampler(bench: StepBench, name: str, batch: int):
    """A zero-argument sampler: 1 NFE consistency sampling or the teacher's Heun ODE solve."""
    shape = (batch, *bench.x0.shape[1:])
    if name == "1step":
        t_max = bench.spec.sampling.t_max
        return partial(
            sample_consistency, bench.net.eval(), shape, bench.sigma_d, [t_max],
            device=bench.device,
        )  # fmt: skip
    return partial(
        sample_ode, bench.teacher, shape, bench.sigma_d, TEACHER_STEPS, TEACHER_SOLVER,
        device=bench.device,
    )  # fmt: skip


SAMPLERS = {"1step": 1, "teacher": ode_nfe(TEACHER_STEPS, TEACHER_SOLVER)}  # name -> NFE


# Timings (pytest-benchmark) and, with benchmarking disabled, quick correctness checks.


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread: comparable timings on a shared machine (as tests/conftest.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("net", list(NETS))
def test_training_step(benchmark, single_thread, net, step):
    batch = CI_BATCH if benchmark.disabled else BATCH
    bench = StepBench(net, step, batch)
    benchmark.group = f"training step, {net}, batch {batch}"
    bench.step()  # warm-up: Adam state, allocator, one-time kernels
    benchmark.extra_info["peak_mib"] = peak_memory_bytes(bench.step) / 2**20
    loss = benchmark.pedantic(bench.step, rounds=5, iterations=1, warmup_rounds=1)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("net", list(NETS))
def test_sampling(benchmark, single_thread, net, name):
    batch = CI_BATCH if benchmark.disabled else BATCH
    bench = StepBench(net, "sct", batch)
    benchmark.group = f"sampling, {net}, batch {batch}"
    benchmark.extra_info.update(nfe=SAMPLERS[name], batch=batch)
    x = benchmark.pedantic(sampler(bench, name, batch), rounds=3, iterations=1, warmup_rounds=1)
    assert x.shape == bench.x0.shape and torch.isfinite(x).all()


@pytest.mark.parametrize("net", list(NETS))
def test_fast_step_loss_and_gradients_equal_autograd_step(single_thread, net):
    """Same nets, data, draws: the fast sCT step's loss and gradients are the reference's
    (float64, so the comparison is exact to rounding)."""
    fast, ref = (
        StepBench(net, step, CI_BATCH, dtype=torch.float64) for step in ("sct", "sct_autograd")
    )
    for a, b in zip(fast.gradients(), ref.gradients(), strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("net", list(NETS))
def test_fast_step_peak_memory_within_1_3x_teacher(single_thread, net):
    """Tensor memory allocated by one training step at batch 128 (deterministic, not timed)."""
    peaks = {}
    for step in ("teacher", "sct"):
        bench = StepBench(net, step)
        bench.step()
        peaks[step] = peak_memory_bytes(bench.step)
    assert peaks["sct"] <= 1.3 * peaks["teacher"]

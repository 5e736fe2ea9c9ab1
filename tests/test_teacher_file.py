"""teacher.checkpoint: an EDM-preconditioned diffusion model read from a file becomes TrigFlow's
F with the same PF-ODE velocity (float64), and an sCD student trains from it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from helpers import QUICKSTART, SIGMA_D, expand, perturb_, rel_err, spec

from scm_bench.cli import main
from scm_bench.errors import RunError
from scm_bench.nets import build_net
from scm_bench.train.loop import train_trial
from scm_bench.train.teacher_file import load_file_teacher

NETS = {
    "unet": ((1, 8, 8), {"arch": "unet", "width": 16, "depth": 1, "channel_mult": [1, 2],
                         "attn_resolutions": [4], "heads": 2, "emb_dim": 32}),
    "mlp": ((2,), {"arch": "mlp", "width": 32, "depth": 2, "emb_dim": 32}),
}  # fmt: skip


def edm_denoiser(raw, x, sigma):
    """EDM's D(x; sigma) = c_skip x + c_out F_theta(c_in x, ln(sigma) / 4) (Karras et al. 2022,
    Table 1); ``raw`` takes c_noise itself as its time input (net.time_transform: identity)."""
    s = expand(sigma, x)
    c_skip = SIGMA_D**2 / (s**2 + SIGMA_D**2)
    c_out = s * SIGMA_D / (s**2 + SIGMA_D**2).sqrt()
    c_in = 1 / (s**2 + SIGMA_D**2).sqrt()
    return c_skip * x + c_out * raw(c_in * x, sigma.log() / 4)


def edm_velocity_in_t(raw, x_t, t):
    """dx_t/dt from EDM's own PF-ODE dx/dsigma = (x - D(x; sigma)) / sigma by the chain rule:
    x_t = cos(t) x_sigma, sigma = sigma_d tan t, so dx_t/dt = -sin(t) x_sigma
    + cos(t) (dsigma/dt) dx_sigma/dsigma with dsigma/dt = sigma_d / cos^2 t."""
    c, s = torch.cos(expand(t, x_t)), torch.sin(expand(t, x_t))
    sigma = SIGMA_D * torch.tan(t)
    x_sigma = x_t / c
    dx_dsigma = (x_sigma - edm_denoiser(raw, x_sigma, sigma)) / expand(sigma, x_t)
    return -s * x_sigma + c * (SIGMA_D / c**2) * dx_dsigma


def edm_file(tmp_path, net: dict, shape, prefix: str = "model.") -> tuple[torch.nn.Module, str]:
    """A perturbed raw EDM network (time input = c_noise) saved as a torch state dict whose
    keys carry ``prefix`` (as a wrapper module's would)."""
    raw_spec = spec(QUICKSTART, net=net | {"time_transform": "identity"})
    torch.manual_seed(0)
    raw = perturb_(build_net(raw_spec, shape, SIGMA_D), std=0.1).eval()
    path = tmp_path / "edm.pt"
    torch.save({prefix + k: v for k, v in raw.state_dict().items()}, path)
    return raw, str(path)


def file_spec(path: str, net: dict, **over):
    teacher = {"checkpoint": path, "parameterization": "edm", "key_map": {"model.": ""}}
    return spec(QUICKSTART, method="scd", net=net | {"time_transform": "edm"},
                teacher=teacher, **over)  # fmt: skip


@pytest.mark.parametrize("arch", list(NETS))
def test_wrapped_edm_teacher_has_the_originals_pf_ode_velocity_in_float64(tmp_path, arch):
    shape, net = NETS[arch]
    raw, path = edm_file(tmp_path, net, shape)
    data = SimpleNamespace(shape=shape, sigma_d=SIGMA_D, num_classes=0)
    teacher = load_file_teacher(file_spec(path, net), data, torch.device("cpu")).double()
    raw = raw.double()
    gen = torch.Generator().manual_seed(3)
    t = 0.05 + 1.45 * torch.rand(16, generator=gen, dtype=torch.float64)  # (0.05, 1.5)
    x_t = SIGMA_D * torch.randn(16, *shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        wrapped = SIGMA_D * teacher(x_t / SIGMA_D, t)  # TrigFlow: sigma_d F(x_t / sigma_d, t)
        original = edm_velocity_in_t(raw, x_t, t)
    assert original.abs().max() > 0.1  # a real, non-trivial velocity
    assert rel_err(wrapped, original) < 1e-12


def test_scd_student_trains_from_the_file_teacher_without_a_teacher_trial(tmp_path):
    shape, net = NETS["mlp"]
    _, path = edm_file(tmp_path, net, shape)
    trial = file_spec(path, net, train={"steps": 4, "batch_size": 64, "log_every": 2},
                      eval={"n_samples": 64, "grid": 0, "probe": False})  # fmt: skip
    assert trial.uses_teacher() and not trial.needs_teacher()  # no teacher to train first
    result = train_trial(trial, tmp_path / "trial")
    assert result["status"] == "ok" and result["steps_done"] == 4
    assert not (tmp_path / "trial" / "teacher").exists()
    assert all(math.isfinite(v) for v in result["metrics"].values() if isinstance(v, float))


def test_student_initialised_from_the_file_teacher_starts_equal_to_it(tmp_path):
    from scm_bench.train.setup import build_parts

    shape, net = NETS["mlp"]
    _, path = edm_file(tmp_path, net, shape)
    parts = build_parts(file_spec(path, net))
    x, t = torch.randn(8, *shape), torch.linspace(0.1, 1.5, 8)
    with torch.no_grad():
        assert torch.equal(parts.net.eval()(x, t), parts.teacher(x, t))


def test_file_teacher_errors_name_the_setting(tmp_path):
    shape, net = NETS["mlp"]
    data = SimpleNamespace(shape=shape, sigma_d=SIGMA_D, num_classes=0)
    cpu = torch.device("cpu")
    with pytest.raises(RunError, match=r"teacher.checkpoint: .*absent.pt: no such file"):
        load_file_teacher(file_spec(str(tmp_path / "absent.pt"), net), data, cpu)
    _, path = edm_file(tmp_path, net, shape, prefix="module.")
    with pytest.raises(RunError, match=r"does not match net \(missing: .*teacher.key_map"):
        load_file_teacher(file_spec(path, net), data, cpu)  # key_map renames model. only
    bad = spec(QUICKSTART, method="scd", net=net, teacher={"checkpoint": path,
               "parameterization": "edm"})  # fmt: skip
    with pytest.raises(RunError, match="needs net.time_transform: edm"):
        load_file_teacher(bad, data, cpu)
    pickled = tmp_path / "pickled.pt"
    torch.save({"net": SimpleNamespace()}, pickled)  # needs unpickling code to load
    with pytest.raises(RunError, match="weights_only=True"):
        load_file_teacher(file_spec(str(pickled), net), data, cpu)


def test_cli_reports_a_missing_teacher_file_in_one_line(tmp_path, capsys):
    code = main(["train", "quickstart", "--out", str(tmp_path / "t"), "--set", "method=scd",
                 "--set", f"teacher.checkpoint={tmp_path / 'absent.pt'}"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "teacher.checkpoint" in err[0] and "no such file" in err[0]

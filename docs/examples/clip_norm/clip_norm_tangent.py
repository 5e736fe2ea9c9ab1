"""A tangent shaping scm-bench does not ship: clip the norm of g at 1 per sample.

Tangents with ||g|| <= 1 stay as they are (unlike normalize, which rescales every g to a norm
just under 1); larger ones are scaled down to norm 1 (unlike clip, which clips each element).
"""

import torch

from scm_bench.core.tangent import TANGENT_MODES, TangentConfig, per_sample_norm
from scm_bench.core.trigflow import expand_t


@TANGENT_MODES.register("clip_norm", "g * min(1, 1 / ||g||): only large tangents shrink")
def clip_norm(g: torch.Tensor, cfg: TangentConfig) -> torch.Tensor:
    norm = per_sample_norm(g, cfg.norm)  # (B,), L2 or RMS as tangent.norm says
    return g * expand_t(norm.clamp_min(1.0).reciprocal(), g)  # (B, ...)

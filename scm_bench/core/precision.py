"""Training precision (spec ``train.precision``): the gradient pass under ``torch.autocast``.

Separate from the paper's ``jvp.precision``: the JVP pass of step 4 runs with autocast off, in
its own precision (``core/jvp.py``). Weights, gradients and optimizer state stay float32; only
the ops autocast lists run in bfloat16 / float16. float16 scales the loss (``GradScaler``) so
small gradients do not underflow; an overflowed float16 step is skipped and the scale halved.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import torch

from scm_bench.core.choices import check

TrainPrecision = Literal["float32", "bfloat16", "float16"]
MIN_LOSS_SCALE = 1.0  # float16: a scale halved below this means the gradients overflow anyway


class MixedPrecision:
    """Autocast for the forward, loss scaling around backward and the optimizer step."""

    def __init__(self, precision: TrainPrecision, device: torch.device):
        check(precision, TrainPrecision, "train.precision")
        self.precision, self.device_type = precision, device.type
        self.dtype = getattr(torch, precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "float16" else None

    def autocast(self) -> AbstractContextManager:
        """The training forward: a no-op in float32."""
        return torch.autocast(self.device_type, self.dtype, enabled=self.precision != "float32")

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale_(self, opt: torch.optim.Optimizer) -> None:
        """Gradients back to their true scale (before they are checked, clipped or logged)."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        """opt.step(); float16: skipped when a gradient overflowed, and the scale updated."""
        if self.scaler is None:
            opt.step()
            return
        self.scaler.step(opt)
        self.scaler.update()

    def overflow_is_skipped(self) -> bool:
        """float16 only: a non-finite gradient is an overflow of the loss scale (the step is
        skipped) while the scale is still >= MIN_LOSS_SCALE; otherwise it is a divergence."""
        return self.scaler is not None and self.scaler.get_scale() >= MIN_LOSS_SCALE

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

"""Exponential moving average of network weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(net: nn.Module) -> nn.Module:
    """A frozen copy of ``net`` that follows it through :func:`ema_update`."""
    ema = copy.deepcopy(net).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net, for parameters; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):
        b_ema.copy_(b)

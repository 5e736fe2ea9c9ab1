"""Tangent rules for the fast JVP: each layer maps a pair (x, t_x) to (y, t_y) in one pass.

The primal y is computed with the layer's ordinary ops, so it carries the autograd graph when
gradients are on (it *is* F_theta); the tangent t_y is computed under ``torch.no_grad`` from
detached primal values and detached weights, so it never records a graph. theta^- is a
stop-gradient: weights carry no tangent, so a linear layer's tangent is W t_x, with no bias
and no dW x term (forward AD through the ordinary forward runs each convolution four times with
torch 2.14 on CPU; this runs it twice, the primal and W * t_x).

Elementwise activations and the normalizations below have symmetric Jacobians, so PyTorch's
backward kernel applied to the tangent is exactly their JVP (one fused kernel, no graph):
- SiLU / GELU: J = diag(f'(x)).
- GroupNorm / LayerNorm without affine, per group of n values with y = (x - mu) r,
  r = (var + eps)^(-1/2):  t_y = r (t_x - mean(t_x) - y mean(y t_x)),
  i.e. J = r (I - 1 1^T / n - y y^T / n) = J^T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
Pair = tuple[Tensor, Tensor]  # (primal, tangent), same shape


def linear_jvp(layer: nn.Linear, x: Tensor, tx: Tensor) -> Pair:
    """y = W x + b,  t_y = W t_x (weights and bias carry no tangent)."""
    with torch.no_grad():
        ty = F.linear(tx, layer.weight)
    return layer(x), ty


def conv_jvp(layer: nn.Conv2d, x: Tensor, tx: Tensor) -> Pair:
    """y = W * x + b,  t_y = W * t_x: one convolution of the tangent, no bias."""
    with torch.no_grad():
        ty = F.conv2d(tx, layer.weight, None, layer.stride, layer.padding, layer.dilation)
    return layer(x), ty


def silu_jvp(x: Tensor, tx: Tensor) -> Pair:
    """y = x sigmoid(x),  t_y = t_x sigmoid(x) (1 + x (1 - sigmoid(x)))."""
    with torch.no_grad():
        ty = torch.ops.aten.silu_backward(tx, x.detach())
    return F.silu(x), ty


def gelu_tanh_jvp(x: Tensor, tx: Tensor) -> Pair:
    """GELU (tanh approximation) and t_y = GELU'(x) t_x."""
    with torch.no_grad():
        ty = torch.ops.aten.gelu_backward(tx, x.detach(), approximate="tanh")
    return F.gelu(x, approximate="tanh"), ty


def group_norm_jvp(norm: nn.GroupNorm, x: Tensor, tx: Tensor) -> Pair:
    """GroupNorm without affine (B, C, H, W) and t_y = r (t_x - mean t_x - y mean(y t_x))."""
    b, c = x.shape[:2]
    hw, g = x[0, 0].numel(), norm.num_groups
    y, mean, rstd = torch.native_group_norm(x, None, None, b, c, hw, g, norm.eps)
    with torch.no_grad():
        ty = torch.ops.aten.native_group_norm_backward(
            tx, x.detach(), mean.detach(), rstd.detach(), None, b, c, hw, g, [True, False, False]
        )[0]
    return y, ty


def layer_norm_jvp(norm: nn.LayerNorm, x: Tensor, tx: Tensor) -> Pair:
    """LayerNorm without affine over the last dim and t_y = r (t_x - mean t_x - y mean(y t_x))."""
    shape = norm.normalized_shape
    y, mean, rstd = torch.native_layer_norm(x, shape, None, None, norm.eps)
    with torch.no_grad():
        ty = torch.ops.aten.native_layer_norm_backward(
            tx, x.detach(), shape, mean.detach(), rstd.detach(), None, None, [True, False, False]
        )[0]
    return y, ty


def norm_jvp(norm: nn.Module, x: Tensor, tx: Tensor) -> Pair:
    """GroupNorm or LayerNorm (both without affine parameters)."""
    if isinstance(norm, nn.GroupNorm):
        return group_norm_jvp(norm, x, tx)
    return layer_norm_jvp(norm, x, tx)


def pixel_norm_jvp(v: Tensor, tv: Tensor, eps: float = 1e-4) -> Pair:
    """y = v / n, n = sqrt(mean_c(v^2) + eps) over dim 1:  t_y = (t_v - y mean_c(y t_v)) / n."""
    n = torch.sqrt(v.pow(2).mean(dim=1, keepdim=True) + eps)  # (B, 1)
    y = v / n
    with torch.no_grad():
        yd = y.detach()
        ty = (tv - yd * (yd * tv).mean(dim=1, keepdim=True)) / n.detach()
    return y, ty


def dropout_jvp(drop: nn.Dropout, x: Tensor, tx: Tensor) -> Pair:
    """y = x m, t_y = t_x m with one mask m (0 or 1 / (1 - p)) for primal and tangent.

    m is drawn by ``F.dropout`` on a tensor of ones shaped like x, so it consumes the RNG
    exactly as ``drop(x)`` would: the fast pass sees the masks of the reference passes.
    """
    if not drop.training or drop.p == 0:
        return x, tx
    with torch.no_grad():
        mask = F.dropout(torch.ones_like(tx), drop.p, training=True)
        ty = tx * mask
    return x * mask, ty


def math_attention_jvp(q: Tensor, k: Tensor, v: Tensor, tq: Tensor, tk: Tensor, tv: Tensor):
    """y = P V, P = softmax(S), S = Q K^T / sqrt(d) (the same ops as ``math_attention``), and

    t_y = (P o t_S) V - rowsum(P o t_S) o y + P t_V,  t_S = (t_Q K^T + Q t_K^T) / sqrt(d).
    q, k, v and tangents: (B, heads, N, d) -> y, t_y (B, heads, N, d).
    """
    scale = q.shape[-1] ** -0.5
    p = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)  # (B, h, N, N)
    y = p @ v
    with torch.no_grad():
        qd, kd, vd, pd, yd = (a.detach() for a in (q, k, v, p, y))
        pts = (tq @ kd.transpose(-2, -1)).add_(qd @ tk.transpose(-2, -1)).mul_(scale).mul_(pd)
        ty = (pts @ vd).sub_(pts.sum(-1, keepdim=True) * yd).add_(pd @ tv)
    return y, ty


def generic_jvp(fn, primals: tuple[Tensor, ...], tangents: tuple[Tensor, ...]) -> Pair:
    """Any op: the primal with its graph, the tangent from ``torch.func.jvp`` (no graph).

    Costs one extra primal evaluation; used for attention ops without a closed-form rule.
    """
    with torch.no_grad():
        _, ty = torch.func.jvp(fn, tuple(p.detach() for p in primals), tangents)
    return fn(*primals), ty


def apply_linear_op(op, x: Tensor, tx: Tensor) -> Pair:
    """A parameter-free linear op (pooling, upsampling): the same op on the tangent."""
    with torch.no_grad():
        ty = op(tx)
    return op(x), ty

"""Layers whose weights differ per sample, run as one batched call.

A dynamic hypernetwork gives every image its own filters. Looping over the
batch would call the convolution B times; instead the batch is folded into the
channel axis and the filters into groups, so one grouped `F.conv2d` computes
all B convolutions (`per_sample_conv2d`). Linear layers use one `einsum`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def per_sample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      stride=1, padding=0, dilation=1) -> torch.Tensor:
    """Convolve sample b of x [B, C, H, W] with its own filters weight[b] [O, C, k, k] (+ bias[b] [O]).

    A weight without the batch axis ([O, C, k, k], bias [O]) is shared by the
    whole batch and falls back to a plain convolution.
    """
    if weight.dim() == 4:
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    if weight.dim() != 5 or weight.shape[0] != x.shape[0]:
        raise ValueError(f"per-sample weight must be [B, O, C, k, k] with B={x.shape[0]}, got {tuple(weight.shape)}")
    b, c, h, w = x.shape
    o = weight.shape[1]
    out = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * o, *weight.shape[2:]),
                   None if bias is None else bias.reshape(b * o),
                   stride=stride, padding=padding, dilation=dilation, groups=b)
    return out.reshape(b, o, *out.shape[-2:])


def per_sample_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, D] times its own weight[b] [M, D] (+ bias[b] [M]); a weight [M, D] is shared."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    out = torch.einsum("bmd,bd->bm", weight, x)
    return out if bias is None else out + bias


def looped_conv2d(x, weight, bias=None, stride=1, padding=0):
    """The naive reference: one convolution per sample in a Python loop (tests and benchmark only)."""
    return torch.cat([F.conv2d(x[i:i + 1], weight[i], None if bias is None else bias[i], stride=stride,
                               padding=padding) for i in range(x.shape[0])])

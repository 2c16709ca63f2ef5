"""Layers whose weights differ per sample, run as one batched call.

A dynamic hypernetwork gives every image its own filters. Looping over the
batch would call the convolution B times; instead `per_sample_conv2d` runs all
B convolutions in one call, in one of two equivalent ways:

- `grouped_conv2d`: the batch folded into the channel axis and the filters
  into groups, one grouped `F.conv2d`;
- `im2col_conv2d`: the kh * kw shifted views of the input stacked into
  columns, one batched matmul with each sample's [O, C * kh * kw] filter matrix.

Linear layers use one `einsum`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

# im2col copies the input kh * kw times, so it only pays when a patch is small. Measured on one CPU thread,
# forward + backward, batch 128, 16 output channels, ~27x27 maps: oneDNN's grouped kernel was 1.3-6x slower than
# im2col + bmm for C * kh * kw <= 9 (1 -> 16 channels, 2x2: 1.6 vs 4-10 ms), about even at 16 (C=4, 2x2), and
# 1.8-5.6x faster from 32 on (C=8 or 16, 2x2 or 3x3). A 1x1 kernel copies nothing and bmm always won (1.2-3.5x).
IM2COL_MAX_PATCH = 16


def per_sample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      stride=1, padding=0, dilation=1) -> torch.Tensor:
    """Convolve sample b of x [B, C, H, W] with its own filters weight[b] [O, C, kh, kw] (+ bias[b] [O]).

    A weight without the batch axis ([O, C, kh, kw], bias [O]) is shared by the
    whole batch and falls back to a plain convolution.
    """
    if weight.dim() == 4:
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    if x.dim() != 4 or weight.dim() != 5 or weight.shape[0] != x.shape[0] or weight.shape[2] != x.shape[1]:
        raise ValueError(f"per-sample weight must be [B, O, C, kh, kw] for x [B, C, H, W] = {tuple(x.shape)}, "
                         f"got {tuple(weight.shape)}")
    if bias is not None and bias.shape != weight.shape[:2]:
        raise ValueError(f"per-sample bias must be [B, O] = {tuple(weight.shape[:2])}, got {tuple(bias.shape)}")
    c, kh, kw = weight.shape[2:]
    small = kh * kw == 1 or c * kh * kw <= IM2COL_MAX_PATCH
    conv = im2col_conv2d if small and not isinstance(padding, str) else grouped_conv2d
    return conv(x, weight, bias, stride, padding, dilation)


def grouped_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """per_sample_conv2d as one grouped convolution (shapes already checked)."""
    b, c, h, w = x.shape
    o = weight.shape[1]
    out = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(b * o, *weight.shape[2:]),
                   None if bias is None else bias.reshape(b * o),
                   stride=stride, padding=padding, dilation=dilation, groups=b)
    return out.reshape(b, o, *out.shape[-2:])


def im2col_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """per_sample_conv2d as one batched matmul over stacked shifted views (shapes already checked).

    Strided slicing instead of F.unfold: its copy is cheaper forward, and its
    backward is a strided add rather than col2im (F.fold)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    b, o, c, kh, kw = weight.shape
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    ho, wo = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1, (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"kernel {kh}x{kw} (dilation {dh}, {dw}) is larger than the padded input {tuple(x.shape)}")
    views = [x[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
             for i in range(kh) for j in range(kw)]
    cols = (views[0] if len(views) == 1 else torch.stack(views, 2)).reshape(b, c * kh * kw, ho * wo)
    wmat = weight.reshape(b, o, c * kh * kw)      # column order (c, i, j) matches the stack above
    out = torch.bmm(wmat, cols) if bias is None else torch.baddbmm(bias.unsqueeze(-1), wmat, cols)
    return out.reshape(b, o, ho, wo)


def per_sample_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, D] times its own weight[b] [M, D] (+ bias[b] [M]); a weight [M, D] is shared."""
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    out = torch.einsum("bmd,bd->bm", weight, x)
    return out if bias is None else out + bias


def looped_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """The naive reference: one convolution per sample in a Python loop (tests and benchmark only)."""
    return torch.cat([F.conv2d(x[i:i + 1], weight[i], None if bias is None else bias[i], stride=stride,
                               padding=padding, dilation=dilation) for i in range(x.shape[0])])

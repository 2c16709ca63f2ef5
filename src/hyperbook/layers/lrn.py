"""Local response normalisation across channels as one matrix product.

torch's `LocalResponseNorm` sums the squares of `size` neighbouring channels through a padded
`avg_pool3d`, which on the CPU cost a fifth of an RFNN training step on MNIST. The same window sum is a
product with a banded C x C matrix of ones: channel c sums the squares of channels
c - size // 2 ... c + (size - 1) // 2 (those that exist; the zero padding adds nothing), and the
average divides by `size` whether or not the window is cut off at the ends, as torch's does.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def band_matrix(channels: int, size: int, dtype=None, device=None) -> torch.Tensor:
    """[C_out, C_in] ones where C_in lies in C_out's window of `size` channels (torch's LRN window)."""
    idx = torch.arange(channels, device=device)
    offset = idx.view(1, -1) - idx.view(-1, 1)            # c_in - c_out
    return ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).to(dtype or torch.get_default_dtype())


class BandedLRN(nn.LocalResponseNorm):
    """nn.LocalResponseNorm with the window sum as one banded matmul (same attributes, no parameters, so
    state dicts and checkpoints are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise ValueError(f"LocalResponseNorm needs an input of 3 or more dimensions, got {tuple(x.shape)}")
        if x.numel() == 0:
            return x
        band = band_matrix(x.shape[1], self.size, x.dtype, x.device)
        sums = torch.matmul(band, x.mul(x).flatten(2)).view(x.shape)
        return x / sums.mul_(self.alpha / self.size).add_(self.k).pow(self.beta)

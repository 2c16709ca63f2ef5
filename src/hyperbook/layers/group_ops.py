"""Rotations and reflections of feature maps and filters, P4 group convolutions, and the
equivariant combiner of HE-CNN.

Conventions. Images and filters are [..., H, W] with row 0 at the top.
`rot(x, k)` turns them by k * 90 degrees counter-clockwise on screen (the same
map as `hyperbook.data.transforms.rot90`), `flip` mirrors left-right. Because
cross-correlation without padding (or with symmetric padding) commutes with
turning image and filter together, conv(rot x, rot w) = rot conv(x, w) holds
exactly; every equivariance statement below rests on it.

P4 feature maps are [B, C * 4, H, W] with the rotation index fastest
(channel c * 4 + s); a rotation by r turns each map and shifts s -> s + r.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def rot(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Rotate the last two axes by k * 90 degrees counter-clockwise."""
    return torch.rot90(x, k % 4, dims=(-2, -1))


def flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror the last axis (left-right)."""
    return torch.flip(x, dims=(-1,))


def d4_act(x: torch.Tensor, r: int, m: int = 0) -> torch.Tensor:
    """The D4 element 'mirror m times, then rotate r times' acting on maps [..., H, W]."""
    return rot(flip(x) if m else x, r)


def rotate_p4(features: torch.Tensor, r: int) -> torch.Tensor:
    """Act with a rotation by r on P4 features [B, C * 4, H, W]: turn each map and shift the rotation index."""
    b, c4, h, w = features.shape
    f = features.reshape(b, c4 // 4, 4, h, w)
    return rot(torch.roll(f, shifts=r, dims=2), r).reshape(b, c4, h, w)


# ----------------------------------------------------------------------------- P4 group convolution
def lift_weight(w: torch.Tensor) -> torch.Tensor:
    """Z2 -> P4 filters: [..., O, C, k, k] -> [..., O * 4, C, k, k], output s uses the filter turned by s."""
    out = torch.stack([rot(w, s) for s in range(4)], dim=-4)   # [..., O, 4, C, k, k]
    return out.reshape(*w.shape[:-4], w.shape[-4] * 4, *w.shape[-3:])


def group_weight(w: torch.Tensor) -> torch.Tensor:
    """P4 -> P4 filters: [..., O, C, 4, k, k] -> [..., O * 4, C * 4, k, k].

    Output rotation s sees input rotation t through the base filter at t - s, turned by s.
    """
    out = torch.stack([rot(torch.roll(w, shifts=s, dims=-3), s) for s in range(4)], dim=-5)
    *lead, o, _, c, _, k1, k2 = out.shape
    return out.reshape(*lead, o * 4, c * 4, k1, k2)


class P4LiftConv(nn.Module):
    """Lifting convolution Z2 -> P4 (Cohen & Welling's first layer)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.stride, self.padding = stride, padding

    def forward(self, x):
        b = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.conv2d(x, lift_weight(self.weight), b, stride=self.stride, padding=self.padding)


class P4GroupConv(nn.Module):
    """Group convolution P4 -> P4."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, 4, k, k))
        nn.init.kaiming_uniform_(self.weight.view(cout, cin * 4, k, k), a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.stride, self.padding = stride, padding

    def forward(self, x):
        b = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.conv2d(x, group_weight(self.weight), b, stride=self.stride, padding=self.padding)


# ----------------------------------------------------------------------------- equivariant combiner
def piece_size(k: int) -> int:
    return (k + 1) // 2


def place_top_left(piece: torch.Tensor, size: int) -> torch.Tensor:
    """E: put a p x p piece in the top-left corner of a size x size zero filter."""
    p = piece.shape[-1]
    return F.pad(piece, (0, size - p, 0, size - p))


def merge_middle(filt: torch.Tensor) -> torch.Tensor:
    """Odd K: average the two middle rows and the two middle columns of a (K+1) x (K+1) filter into one."""
    n = filt.shape[-1]
    m = n // 2
    rows = torch.cat([filt[..., :m - 1, :], filt[..., m - 1:m + 1, :].mean(-2, keepdim=True), filt[..., m + 1:, :]], -2)
    return torch.cat([rows[..., :m - 1], rows[..., m - 1:m + 1].mean(-1, keepdim=True), rows[..., m + 1:]], -1)


def assemble_filter(pieces: torch.Tensor, k: int, reading: str = "formula") -> torch.Tensor:
    """The convolutional equi-combiner: pieces [4, ..., p, p] (piece g from the input turned by g) -> [..., k, k].

    reading='formula': w = sum_g g^{-1} E(a_g) (the document's equation): a_g is
    turned back by -g, so a0 sits top-left, a1 top-right, a2 bottom-right, a3
    bottom-left (clockwise). reading='prose' turns the pieces the other way
    (the text's 'counter-clockwise'); it is kept only to show in a test that it
    is not equivariant.
    """
    p = piece_size(k)
    size = 2 * p
    sign = -1 if reading == "formula" else 1
    if reading == "formula":
        full = sum(rot(place_top_left(pieces[g], size), -g) for g in range(4))
    elif reading == "prose":
        corners = [(0, 0), (0, p), (p, p), (p, 0)]   # top-left, top-right, bottom-right, bottom-left
        full = pieces.new_zeros(*pieces.shape[1:-2], size, size)
        for g, (r0, c0) in enumerate(corners):
            full = full.clone()
            full[..., r0:r0 + p, c0:c0 + p] = rot(pieces[g], sign * g)
    else:
        raise ValueError(f"unknown reading {reading!r}")
    return merge_middle(full) if k % 2 else full


def combine_mean(outputs: torch.Tensor) -> torch.Tensor:
    """Biases and later linear layers: the plain mean over the four turned inputs (axis 0)."""
    return outputs.mean(0)


def rotate_back_mean(full: torch.Tensor) -> torch.Tensor:
    """HE-CNN-N's naive combiner: full filters [4, ..., K, K] from the four turned inputs, turned back and averaged."""
    return sum(rot(full[g], -g) for g in range(4)) / 4


# ----------------------------------------------------------------------------- linear equi-combiner
def rotation_permutation(d: int) -> torch.Tensor:
    """P with (rho_lin(1) v)[P[n]] = v[n]: where entry n of a flattened d x d map goes under a quarter turn."""
    idx = torch.arange(d * d, device="cpu").reshape(d, d)   # index bookkeeping stays on the CPU (also under a
    moved = rot(idx, 1).flatten()          # (rot v)[m] = v[moved[m]]             meta / cuda default device)
    perm = torch.empty(d * d, dtype=torch.long, device="cpu")
    perm[moved] = torch.arange(d * d, device="cpu")
    return perm


def linear_orbits(d: int) -> torch.Tensor:
    """The length-4 permutations sigma = (i, P i, P^2 i, P^3 i), one row each, smallest index first.

    For odd d the centre is its own orbit (z, z, z, z). There are ceil(d^2 / 4) rows.
    """
    perm = rotation_permutation(d)
    seen, rows = set(), []
    for i in range(d * d):
        if i in seen:
            continue
        orbit = [i]
        for _ in range(3):
            orbit.append(int(perm[orbit[-1]]))
        seen.update(orbit)
        rows.append(orbit)
    return torch.tensor(rows, dtype=torch.long, device="cpu")


def linear_placement(d: int) -> torch.Tensor:
    """[4, n_orbits]: the column that receives c_g for each orbit: c0 -> i, c1 -> l, c2 -> k, c3 -> j."""
    orbits = linear_orbits(d)
    return torch.stack([orbits[:, (4 - g) % 4] for g in range(4)])


def assemble_linear(columns: torch.Tensor, d: int) -> torch.Tensor:
    """The linear equi-combiner: columns [4, ..., M, C, n_orbits] -> weight [..., M, C * d * d].

    Channel by channel the flattened d x d map is treated as in the document
    (section 4.3 and appendix D.2); the four columns of the centre orbit of an
    odd d are averaged.
    """
    place = linear_placement(d).to(columns.device)
    counts = torch.zeros(d * d, device=columns.device, dtype=columns.dtype)
    for g in range(4):
        counts.index_add_(0, place[g], torch.ones(place.shape[1], device=columns.device, dtype=columns.dtype))
    w = columns.new_zeros(*columns.shape[1:-1], d * d)
    for g in range(4):
        w = w.index_add(-1, place[g], columns[g])
    w = w / counts
    return w.reshape(*w.shape[:-2], -1)


def coset_transforms(n: int, reflections: bool = True) -> list[tuple[float, int]]:
    """Representatives of D4n / Z4: rotations by 90 i / n degrees (i < n), each with and without a mirror."""
    return [(90.0 * i / n, m) for m in ((0, 1) if reflections else (0,)) for i in range(n)]

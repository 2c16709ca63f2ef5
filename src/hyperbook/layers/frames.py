"""Frames (spanning sets) for 3x3 filters and frame-based convolution (thesis ch. 4, eq. 24, figure 9).

A convolution filter is usually a combination of the pixel basis (one delta per tap). Thesis ch. 4
replaces the pixel basis by a *frame* Phi = {phi_m}: a spanning set of the same 3x3 space that may be
non-orthogonal and overcomplete. A frame convolution learns coefficients w[o, i, m] and applies the
composed filter sum_m w[o, i, m] phi_m (eq. 24), so after training it is an ordinary convolution; the
frame only changes the parametrisation the optimiser sees.

The four frames of figure 9, all as tensors [n_atoms, 3, 3] indexed [atom, y, x] (y down):

* ``pixel``: the 9 deltas (orthonormal basis).
* ``gaussian``: Gaussian derivatives up to order 4 at sigma = 1 sampled on the 3x3 grid (15 atoms,
  overcomplete, rank 9), built with ``hyperbook.layers.gaussian_basis``. On 3 samples the 1-D
  third derivative is parallel to the first, so the first 9 atoms in order (what figure 9 draws)
  span only 8 dimensions; the full order-4 set spans all 9 -- a unit test checks both.
* ``framelet``: the tensor products of the three 1-D piecewise-linear B-spline framelet filters
  [1, 2, 1]/4, sqrt(2)[1, 0, -1]/4, [-1, 2, -1]/4 (9 atoms, non-orthogonal, not overcomplete, rank 9).
  The thesis cites a framelet paper whose reference list is not in our copy; this is the standard
  3x3 framelet system used in image restoration, our choice.
* ``naive``: the monomials x^p y^q, p, q in {0, 1, 2}, on the grid {-1, 0, 1}^2 (9 atoms, rank 9).

Unless ``normalise=False`` every atom is scaled to unit L2 norm (our choice; the thesis does not say how
its atoms were scaled, and without it the Gaussian frame's high orders would be orders of magnitude
smaller than its low orders).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnknownChoiceError
from .gaussian_basis import basis_orders, gaussian_derivative_basis

__all__ = ["FRAMES", "IMAGE_FRAME_ALTERNATION", "pixel_frame", "gaussian_frame", "gaussian_frame_orders", "framelet_frame", "naive_frame",
           "make_frame", "frame_rank", "FrameConv2d", "frame_for_layer"]

FRAMES = ("pixel", "gaussian", "framelet", "naive")
# "image frame" of table 6: Gaussian derivatives and framelets alternating from layer to layer
IMAGE_FRAME_ALTERNATION = ("gaussian", "framelet")


def _normalise(frame: torch.Tensor) -> torch.Tensor:
    norms = frame.flatten(1).norm(dim=1).clamp_min(1e-12)
    return frame / norms.view(-1, 1, 1)


def pixel_frame(size: int = 3) -> torch.Tensor:
    """The standard basis: [size*size, size, size] deltas, row-major."""
    return torch.eye(size * size).reshape(size * size, size, size)


def gaussian_frame(max_order: int = 4, sigma: float = 1.0, size: int = 3, n_atoms: int | None = None,
                   normalise: bool = True) -> torch.Tensor:
    """Gaussian derivatives up to `max_order` sampled on a size x size grid, in ``basis_orders`` order;
    `n_atoms` keeps only the first atoms (figure 9 shows the first 9)."""
    phi = gaussian_derivative_basis(max_order, sigma, size)
    if n_atoms is not None:
        phi = phi[:n_atoms]
    return _normalise(phi) if normalise else phi


def gaussian_frame_orders(max_order: int = 4, n_atoms: int | None = None) -> list[tuple[int, int]]:
    orders = basis_orders(max_order)
    return orders[:n_atoms] if n_atoms is not None else orders


FRAMELET_1D = (
    torch.tensor([1.0, 2.0, 1.0]) / 4.0,
    torch.tensor([1.0, 0.0, -1.0]) * math.sqrt(2.0) / 4.0,
    torch.tensor([-1.0, 2.0, -1.0]) / 4.0,
)


def framelet_frame(normalise: bool = True) -> torch.Tensor:
    """The 9 tensor products h_a(y) h_b(x) of the piecewise-linear B-spline framelet filters."""
    atoms = [torch.outer(hy, hx) for hy in FRAMELET_1D for hx in FRAMELET_1D]
    phi = torch.stack(atoms)
    return _normalise(phi) if normalise else phi


def naive_frame(max_power: int = 2, normalise: bool = True) -> torch.Tensor:
    """Monomials x^p y^q (p, q <= max_power) on the 3x3 grid {-1, 0, 1}^2, x to the right, y down."""
    g = torch.tensor([-1.0, 0.0, 1.0])
    y, x = torch.meshgrid(g, g, indexing="ij")
    atoms = [x ** p * y ** q for q in range(max_power + 1) for p in range(max_power + 1)]
    phi = torch.stack(atoms)
    return _normalise(phi) if normalise else phi


def make_frame(name: str, normalise: bool = True) -> torch.Tensor:
    """One of FRAMES as [n_atoms, 3, 3]."""
    if name == "pixel":
        return pixel_frame(3)
    if name == "gaussian":
        return gaussian_frame(4, 1.0, 3, normalise=normalise)
    if name == "framelet":
        return framelet_frame(normalise)
    if name == "naive":
        return naive_frame(2, normalise)
    raise UnknownChoiceError("frame", name, FRAMES)


def frame_for_layer(frame: str, layer_index: int) -> str:
    """Map a network-level frame choice to one layer's frame: 'image' alternates Gaussian derivatives
    and framelets (thesis 4.4.1); the other names are used in every layer."""
    if frame == "image":
        return IMAGE_FRAME_ALTERNATION[layer_index % len(IMAGE_FRAME_ALTERNATION)]
    if frame not in FRAMES:
        raise UnknownChoiceError("frame", frame, FRAMES + ("image",))
    return frame


def frame_rank(frame: torch.Tensor, tol: float = 1e-6) -> int:
    """Dimension of the filter space the atoms span."""
    return int(torch.linalg.matrix_rank(frame.flatten(1).double(), atol=tol).item())


class FrameConv2d(nn.Module):
    """Convolution whose filters are learned as coefficients over a frame (eq. 24).

    ``FrameConv2d(in_ch, out_ch, frame)`` is a drop-in for ``nn.Conv2d(in_ch, out_ch, k, stride,
    padding=k // 2)`` with k the frame's support; `frame` is a name from FRAMES or a tensor
    [n_atoms, k, k]. Only the coefficients w [out, in, n_atoms] (and an optional bias) are learned.
    The forward pass composes the filters once (``effective_filters``) and runs one convolution, so
    a frame network costs what the pixel network costs. Filters are applied as F.conv2d does
    (cross-correlation), exactly like nn.Conv2d with weight = effective_filters().

    Initialisation: w ~ N(0, s^2) with s^2 = 2 / (in_ch * ||Phi||_F^2), which gives the composed
    filters the He variance 2 / (in_ch k^2) on average over the taps for any frame.
    """

    def __init__(self, in_ch: int, out_ch: int, frame="pixel", stride: int = 1, padding: int | None = None,
                 bias: bool = False):
        super().__init__()
        if isinstance(frame, str):
            self.frame_name = frame
            frame = make_frame(frame)
        else:
            self.frame_name = "custom"
            frame = torch.as_tensor(frame, dtype=torch.float32)
        if frame.ndim != 3 or frame.shape[1] != frame.shape[2]:
            raise ValueError(f"frame must be [n_atoms, k, k], got {tuple(frame.shape)}")
        self.register_buffer("frame", frame.clone())
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.k = frame.shape[-1]
        self.padding = self.k // 2 if padding is None else padding
        self.n_atoms = frame.shape[0]
        std = math.sqrt(2.0 / (in_ch * float((frame ** 2).sum())))
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, self.n_atoms) * std)
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def effective_filters(self) -> torch.Tensor:
        """[out, in, k, k]: sum_m w[o, i, m] phi_m, the filters in the pixel basis."""
        return torch.einsum("oim,myx->oiyx", self.weight, self.frame)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_filters(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, frame={self.frame_name}, n_atoms={self.n_atoms}, k={self.k}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")

"""Gaussian-derivative filter bases and the structured receptive field layer (thesis ch. 3).

Conventions used throughout
---------------------------
* A 2-D filter tensor is indexed ``[row, column] = [y, x]``; ``x`` grows to the
  right and ``y`` grows *downwards* (array order), the grid is centred on the
  middle pixel.
* ``basis_orders(M)`` lists the derivative orders ``(i, j)`` = ``d^i/dx^i d^j/dy^j``
  with ``i + j <= M``, grouped by total order and, within one order, from the
  pure x-derivative to the pure y-derivative:
  ``(0,0), (1,0), (0,1), (2,0), (1,1), (0,2), ...`` -- 3, 6, 10, 15 filters for
  orders 1..4.
* Each 1-D factor is the Hermite construction of thesis eq. 20 (physicists'
  Hermite polynomials times a Gaussian envelope), multiplied by ``sigma**n`` so
  that all orders have comparable magnitude; the sampled Gaussian is normalised
  to sum 1 (per axis, so the 2-D and 3-D Gaussians also sum to 1).
* The layers apply the basis as a true convolution (kernel flipped before
  ``F.conv2d``'s cross-correlation), so the response of filter ``(i, j)`` is the
  Gaussian-smoothed image derivative ``sigma^(i+j) d^{i+j}(G*f)/dx^i dy^j``.
* Steering: ``steering_matrix(M, theta)`` returns ``S`` with
  ``rotate(basis, theta) = S @ basis`` where rotate turns a filter
  counter-clockwise *as displayed* (y down). With this convention the second and
  third order rows are exactly thesis eq. 22.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnknownChoiceError

__all__ = [
    "basis_orders", "basis_orders_3d", "default_size", "hermite", "gaussian_derivative_1d",
    "gaussian_derivative_basis", "gaussian_derivative_basis_3d", "gaussian_derivative_at",
    "steering_matrix", "steer", "steer_first_order", "directional_derivative_coefficients",
    "RFConv2d", "RFConv3d", "multiscale_sigmas",
]


# ----------------------------------------------------------------------------- orders
def basis_orders(max_order: int) -> list[tuple[int, int]]:
    """All (i, j) with i + j <= max_order: order 0 first, within an order i descending."""
    if max_order < 0:
        raise ValueError(f"max_order must be >= 0, got {max_order}")
    return [(n - j, j) for n in range(max_order + 1) for j in range(n + 1)]


def basis_orders_3d(max_order: int) -> list[tuple[int, int, int]]:
    """All (i, j, k) = d/dx^i d/dy^j d/dz^k with i + j + k <= max_order, grouped by total order."""
    if max_order < 0:
        raise ValueError(f"max_order must be >= 0, got {max_order}")
    out = []
    for n in range(max_order + 1):
        for i in range(n, -1, -1):
            for j in range(n - i, -1, -1):
                out.append((i, j, n - i - j))
    return out


def default_size(sigma: float) -> int:
    """Odd support covering +-3 sigma: 2 * ceil(3 sigma) + 1."""
    return 2 * int(math.ceil(3.0 * float(sigma))) + 1


def multiscale_sigmas(n_scales: int, layer: int = 0, base: float = 1.0) -> tuple[float, ...]:
    """Scales of the `layer`-th spatial layer of a network with one 2x pooling per layer (thesis 3.3.4,
    table 1): sigma = base * 2^s, s = 0..n_scales-1-layer, in that layer's own pixels -- e.g.
    (1, 2, 4, 8), (1, 2, 4), (1, 2), (1,). Measured in input pixels this is 2^layer * (...): each
    layer drops the lowest input-pixel scale, which the pooling already covers."""
    sig = tuple(base * 2.0 ** s for s in range(n_scales - layer))
    if not sig:
        raise ValueError(f"layer {layer} drops all {n_scales} scales")
    return sig


# ----------------------------------------------------------------------------- 1-D pieces
def hermite(n: int, t: np.ndarray) -> np.ndarray:
    """Physicists' Hermite polynomial H_n(t) by the three-term recurrence."""
    t = np.asarray(t, dtype=np.float64)
    h_prev, h = np.ones_like(t), 2.0 * t
    if n == 0:
        return h_prev
    for k in range(1, n):
        h_prev, h = h, 2.0 * t * h - 2.0 * k * h_prev
    return h


def gaussian_derivative_1d(n: int, x: np.ndarray, sigma: float) -> np.ndarray:
    """sigma^n d^n/dx^n exp(-x^2 / 2 sigma^2) (unnormalised envelope), thesis eq. 20.

    d^n/dx^n exp(-t^2) with t = x / (sigma sqrt 2) gives (-1)^n (sigma sqrt 2)^-n H_n(t) exp(-t^2);
    times sigma^n leaves (-1)^n 2^(-n/2) H_n(t) exp(-t^2).
    """
    x = np.asarray(x, dtype=np.float64)
    t = x / (sigma * math.sqrt(2.0))
    return (-1.0) ** n * 2.0 ** (-n / 2.0) * hermite(n, t) * np.exp(-t * t)


def _grid(size: int) -> np.ndarray:
    return np.arange(size, dtype=np.float64) - (size - 1) / 2.0


def _check(max_order: int, sigma: float, size: int | None) -> int:
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    size = default_size(sigma) if size is None else int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return size


def _norm_1d(sigma: float, size: int) -> float:
    """Sum of the sampled Gaussian on the grid: dividing by it makes the 1-D Gaussian sum to 1."""
    return float(gaussian_derivative_1d(0, _grid(size), sigma).sum())


# ----------------------------------------------------------------------------- 2-D / 3-D bases
@lru_cache(maxsize=64)
def _basis_2d_np(max_order: int, sigma: float, size: int) -> np.ndarray:
    g = _grid(size)
    norm = _norm_1d(sigma, size)
    d = [gaussian_derivative_1d(n, g, sigma) / norm for n in range(max_order + 1)]
    return np.stack([np.outer(d[j], d[i]) for i, j in basis_orders(max_order)])  # [y, x]


def gaussian_derivative_basis(max_order: int, sigma: float, size: int | None = None,
                              dtype=torch.float32) -> torch.Tensor:
    """[n_basis, size, size]: all d^{i+j}/dx^i dy^j G (i + j <= max_order) in `basis_orders` order."""
    size = _check(max_order, sigma, size)
    return torch.as_tensor(_basis_2d_np(int(max_order), float(sigma), size).copy(), dtype=dtype)


def gaussian_derivative_basis_3d(max_order: int, sigma: float, size: int | None = None,
                                 dtype=torch.float32) -> torch.Tensor:
    """[n_basis, size, size, size] indexed [z, y, x], orders as `basis_orders_3d`."""
    size = _check(max_order, sigma, size)
    g = _grid(size)
    norm = _norm_1d(sigma, size)
    d = [gaussian_derivative_1d(n, g, sigma) / norm for n in range(max_order + 1)]
    out = [np.einsum("z,y,x->zyx", d[k], d[j], d[i]) for i, j, k in basis_orders_3d(max_order)]
    return torch.as_tensor(np.stack(out), dtype=dtype)


def gaussian_derivative_at(i: int, j: int, x, y, sigma: float, size: int | None = None) -> np.ndarray:
    """The continuous filter (i, j) evaluated at arbitrary points (x, y), with the same
    normalisation as `gaussian_derivative_basis(.., sigma, size)` -- used to check steering
    against an analytically rotated filter."""
    size = _check(max(i + j, 0), sigma, size)
    norm = _norm_1d(sigma, size)
    return (gaussian_derivative_1d(i, x, sigma) * gaussian_derivative_1d(j, y, sigma)) / norm ** 2


# ----------------------------------------------------------------------------- steering
def _poly_mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for (i1, j1), c1 in a.items():
        for (i2, j2), c2 in b.items():
            key = (i1 + i2, j1 + j2)
            out[key] = out.get(key, 0.0) + c1 * c2
    return out


def steering_matrix(max_order: int, theta: float, dtype=torch.float64) -> torch.Tensor:
    """S [n_basis, n_basis] with rotate_ccw(phi_k, theta) = sum_l S[k, l] phi_l.

    Rotating G_{x^i y^j} counter-clockwise on screen (y down) by theta turns the
    derivative operators into d_x -> c d_x - s d_y, d_y -> s d_x + c d_y (the
    Gaussian is isotropic), so row (i, j) is the expansion of
    (c d_x - s d_y)^i (s d_x + c d_y)^j. Block diagonal by total order.
    """
    c, s = math.cos(theta), math.sin(theta)
    orders = basis_orders(max_order)
    index = {o: k for k, o in enumerate(orders)}
    dx_rot = {(1, 0): c, (0, 1): -s}
    dy_rot = {(1, 0): s, (0, 1): c}
    S = torch.zeros(len(orders), len(orders), dtype=torch.float64)
    for k, (i, j) in enumerate(orders):
        poly = {(0, 0): 1.0}
        for _ in range(i):
            poly = _poly_mul(poly, dx_rot)
        for _ in range(j):
            poly = _poly_mul(poly, dy_rot)
        for key, coef in poly.items():
            S[k, index[key]] += coef
    return S.to(dtype)


def directional_derivative_coefficients(order: int, theta: float) -> dict:
    """Coefficients of the n-th derivative along the direction at angle theta (eq. 22 form):
    G^{(n)}_theta = sum_k C(n, k) c^(n-k) (-s)^k G_{x^(n-k) y^k}; returns {(i, j): coef}."""
    c, s = math.cos(theta), math.sin(theta)
    return {(order - k, k): math.comb(order, k) * c ** (order - k) * (-s) ** k for k in range(order + 1)}


def steer(basis: torch.Tensor, max_order: int, theta: float) -> torch.Tensor:
    """The basis rotated counter-clockwise by theta, built from the unrotated basis only.

    `basis` is [n_scales * n_basis, ...] or [n_basis, ...] in `basis_orders` order (per scale).
    """
    S = steering_matrix(max_order, theta, dtype=basis.dtype).to(basis.device)
    n = S.shape[0]
    flat = basis.reshape(-1, n, *basis.shape[1:])
    return torch.einsum("kl,sl...->sk...", S, flat).reshape(basis.shape)


def steer_first_order(gx: torch.Tensor, gy: torch.Tensor, theta: float) -> torch.Tensor:
    """First-order derivative rotated counter-clockwise by theta: cos(theta) G_x - sin(theta) G_y."""
    return math.cos(theta) * gx - math.sin(theta) * gy


# ----------------------------------------------------------------------------- layers
def _pair_padding(padding, size: int, dims: int):
    if padding == "same":
        return size // 2
    if padding == "valid":
        return 0
    if isinstance(padding, int):
        return padding
    raise UnknownChoiceError("padding", padding, ("same", "valid", "<int>"))


class _RFConvNd(nn.Module):
    dims = 2

    def __init__(self, in_ch: int, out_ch: int, max_order: int, sigmas=(1.0,), size: int | None = None,
                 stride: int = 1, padding="same", bias: bool = False, *, basis: str = "gaussian",
                 alpha_init: str = "kaiming", mode: str = "auto"):
        super().__init__()
        if isinstance(sigmas, (int, float)):
            sigmas = (float(sigmas),)
        sigmas = tuple(float(s) for s in sigmas)
        if not sigmas:
            raise ValueError("sigmas must hold at least one scale")
        size = default_size(max(sigmas)) if size is None else int(size)
        if basis not in ("gaussian", "free"):
            raise UnknownChoiceError("basis", basis, ("gaussian", "free"))
        if mode not in ("auto", "factored", "effective"):
            raise UnknownChoiceError("mode", mode, ("auto", "factored", "effective"))
        if alpha_init not in ("kaiming", "uniform"):
            raise UnknownChoiceError("alpha_init", alpha_init, ("kaiming", "uniform"))
        make = gaussian_derivative_basis if self.dims == 2 else gaussian_derivative_basis_3d
        phi = torch.cat([make(max_order, s, size) for s in sigmas])           # [B, k, k(, k)]
        # true convolution: flip every spatial axis so F.convNd's correlation applies phi itself
        phi = torch.flip(phi, dims=tuple(range(1, self.dims + 1)))
        self.in_ch, self.out_ch, self.max_order, self.sigmas = in_ch, out_ch, max_order, sigmas
        self.size, self.stride, self.padding = size, stride, _pair_padding(padding, size, self.dims)
        self.mode, self.basis_kind = mode, basis
        self.n_basis = phi.shape[0]
        if basis == "gaussian":
            self.register_buffer("phi", phi)
        else:  # the "refactorised NiN": same factorisation, freely learned basis (thesis table 2)
            free = torch.randn_like(phi) / size ** (self.dims / 2)
            self.phi = nn.Parameter(free)
        self.alpha = nn.Parameter(torch.empty(out_ch, in_ch, self.n_basis))
        if alpha_init == "uniform":      # the official MNIST code: alpha ~ U(-1, 1)
            nn.init.uniform_(self.alpha, -1.0, 1.0)
        else:                            # He init of the effective filters' fan-in
            nn.init.normal_(self.alpha, 0.0, math.sqrt(2.0 / (in_ch * self.n_basis)))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    # -- helpers
    def _conv(self):
        return F.conv2d if self.dims == 2 else F.conv3d

    def effective_filters(self) -> torch.Tensor:
        """[out, in, k, k(, k)]: the composed filters, in F.convNd's (correlation) convention."""
        return torch.einsum("oib,b...->oi...", self.alpha, self.phi)

    def basis_responses(self, x: torch.Tensor) -> torch.Tensor:
        """[N, in * n_basis, ...]: every input channel convolved with every basis filter (channel-major)."""
        w = self.phi.unsqueeze(1).repeat(self.in_ch, *([1] * (self.dims + 1)))  # [in*B, 1, k..]
        return self._conv()(x, w, None, self.stride, self.padding, 1, self.in_ch)

    def _use_factored(self) -> bool:
        if self.mode != "auto":
            return self.mode == "factored"
        k = self.size ** self.dims
        return self.in_ch * self.n_basis * (k + self.out_ch) <= self.in_ch * self.out_ch * k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_factored():   # algorithm 1: fixed basis convolution, then a 1x1 recombination
            z = self.basis_responses(x)
            w = self.alpha.reshape(self.out_ch, self.in_ch * self.n_basis, *([1] * self.dims))
            return self._conv()(z, w, self.bias)
        return self._conv()(x, self.effective_filters(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, max_order={self.max_order}, sigmas={self.sigmas}, "
                f"size={self.size}, stride={self.stride}, padding={self.padding}, basis={self.basis_kind}, "
                f"n_basis={self.n_basis}, bias={self.bias is not None}")


class RFConv2d(_RFConvNd):
    """Structured receptive field convolution (thesis ch. 3, eq. 23, algorithm 1, figure 4).

    A drop-in replacement for ``nn.Conv2d(in_ch, out_ch, size, stride, padding)``:
    every input channel is convolved with the fixed Gaussian-derivative basis up to
    `max_order` at every scale in `sigmas` (one grouped convolution), and a learned
    1x1 convolution ``alpha [out, in, n_basis]`` recombines the responses into
    `out_ch` maps. Only ``alpha`` (and the optional bias) is learned.

    Keyword-only extras: ``basis='free'`` learns the basis instead (the
    refactorised NiN of thesis table 2); ``alpha_init='uniform'`` is the official
    MNIST code's U(-1, 1); ``mode`` picks the factored (basis then 1x1) or the
    composed-filter computation, 'auto' whichever has fewer multiply-adds (both
    are the same function).
    """
    dims = 2


class RFConv3d(_RFConvNd):
    """The 3-D structured receptive field convolution (thesis 3.4.4), for volumes [N, C, D, H, W]."""
    dims = 3

"""Frames for 3x3 filters and frame convolution (thesis ch. 4, eq. 24, figure 9)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hyperbook.errors import UnknownChoiceError
from hyperbook.layers.frames import (FRAMES, FrameConv2d, frame_for_layer, frame_rank, framelet_frame,
                                     gaussian_frame, make_frame, naive_frame, pixel_frame)
from hyperbook.layers.gaussian_basis import gaussian_derivative_at


@pytest.mark.parametrize("name,atoms", [("pixel", 9), ("gaussian", 15), ("framelet", 9), ("naive", 9)])
def test_every_frame_spans_the_3x3_space(name, atoms):
    phi = make_frame(name)
    assert phi.shape == (atoms, 3, 3)
    assert frame_rank(phi) == 9
    # any 3x3 filter is a combination of the atoms (least squares reconstructs it exactly)
    target = torch.randn(5, 9, dtype=torch.float64)
    A = phi.flatten(1).double().T                                 # [9, atoms]
    coef = torch.linalg.lstsq(A, target.T).solution
    assert torch.allclose(A @ coef, target.T, atol=1e-9)


def test_first_nine_gaussian_atoms_do_not_span_on_three_samples():
    # on 3 samples the 1-D third derivative is parallel to the first one: (3, 0) duplicates (1, 0)
    assert frame_rank(gaussian_frame(4, 1.0, 3, n_atoms=9)) == 8
    g = gaussian_frame(4, 1.0, 3, normalise=False)
    a, b = g[1].flatten(), g[6].flatten()                         # (1, 0) and (3, 0)
    assert abs(abs(torch.dot(a, b)) / (a.norm() * b.norm()) - 1) < 1e-6


def test_frame_properties():
    P = pixel_frame().flatten(1)
    assert torch.equal(P @ P.T, torch.eye(9))                      # orthonormal
    Fr = framelet_frame(normalise=False).flatten(1)
    gram = Fr @ Fr.T
    assert (gram - torch.diag(torch.diag(gram))).abs().max() > 1e-3   # non-orthogonal
    for name in FRAMES:                                            # unit-norm atoms
        assert torch.allclose(make_frame(name).flatten(1).norm(dim=1), torch.ones(len(make_frame(name))))
    # naive atom x^1 y^0: the column coordinate -1, 0, 1 (x to the right)
    n = naive_frame(normalise=False)
    assert torch.equal(n[1][0], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(n[3][:, 0], torch.tensor([-1.0, 0.0, 1.0]))  # x^0 y^1: y grows downwards


@pytest.mark.parametrize("name", FRAMES)
def test_frame_conv_equals_pixel_conv_with_the_composed_filter(name):
    torch.manual_seed(0)
    layer = FrameConv2d(3, 4, name, stride=1, bias=True)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 9, 11)
    # compose the filter atom by atom, by hand
    w = torch.zeros(4, 3, 3, 3)
    for m in range(layer.n_atoms):
        w += layer.weight[:, :, m, None, None].detach() * layer.frame[m]
    ref = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        ref.weight.copy_(w), ref.bias.copy_(layer.bias)
    assert torch.allclose(layer(x), ref(x), atol=1e-5)
    strided = FrameConv2d(3, 4, name, stride=2)
    assert strided(x).shape == (2, 4, 5, 6)


def test_pixel_frame_conv_is_an_ordinary_conv():
    layer = FrameConv2d(2, 3, "pixel")
    assert torch.equal(layer.effective_filters(), layer.weight.detach().reshape(3, 2, 3, 3))


@pytest.mark.parametrize("name", FRAMES)
def test_initial_filters_have_he_variance_for_every_frame(name):
    torch.manual_seed(1)
    layer = FrameConv2d(64, 64, name)
    var = layer.effective_filters().detach().var().item()
    assert abs(var / (2.0 / (64 * 9)) - 1) < 0.15


def test_image_frame_alternates_and_bad_names_fail():
    assert [frame_for_layer("image", k) for k in range(4)] == ["gaussian", "framelet", "gaussian", "framelet"]
    assert frame_for_layer("naive", 3) == "naive"
    with pytest.raises(UnknownChoiceError):
        make_frame("wavelet")
    with pytest.raises(UnknownChoiceError):
        frame_for_layer("wavelet", 0)


def test_steering_the_gaussian_frame_rotates_the_filter():
    """A filter over the Gaussian-derivative frame, with steered coefficients, equals the analytically
    rotated filter (counter-clockwise on screen, y down: f_rot(x, y) = f(x c - y s, x s + y c))."""
    from hyperbook.layers.gaussian_basis import basis_orders, gaussian_derivative_basis
    from hyperbook.models.steerable import steering_field
    sigma, size, order = 1.5, 11, 3
    basis = gaussian_derivative_basis(order, sigma, size, dtype=torch.float64)
    torch.manual_seed(2)
    w = torch.randn(len(basis), dtype=torch.float64)
    g = np.arange(size) - size // 2
    y, x = np.meshgrid(g, g, indexing="ij")
    for theta in (0.4, 1.3, -2.2):
        S = steering_field(order, torch.tensor(theta, dtype=torch.float64))
        steered = torch.einsum("k,kl,lyx->yx", w, S, basis).numpy()
        c, s = math.cos(theta), math.sin(theta)
        xr, yr = x * c - y * s, x * s + y * c
        analytic = sum(w[k].item() * gaussian_derivative_at(i, j, xr, yr, sigma, size)
                       for k, (i, j) in enumerate(basis_orders(order)))
        assert np.abs(steered - analytic).max() < 1e-6 * max(1.0, np.abs(analytic).max())

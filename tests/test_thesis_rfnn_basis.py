"""Gaussian-derivative basis, steering (thesis eq. 20, 22) and the RF layers (algorithm 1)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hyperbook.data.transforms import rot90, rotate
from hyperbook.layers.gaussian_basis import (
    RFConv2d, RFConv3d, basis_orders, basis_orders_3d, default_size, directional_derivative_coefficients,
    gaussian_derivative_at, gaussian_derivative_basis, gaussian_derivative_basis_3d, hermite,
    multiscale_sigmas, steer, steer_first_order, steering_matrix)


@pytest.mark.parametrize("order,count", [(0, 1), (1, 3), (2, 6), (3, 10), (4, 15)])
def test_counts_and_shapes(order, count):
    assert len(basis_orders(order)) == count
    b = gaussian_derivative_basis(order, 1.5)
    assert b.shape == (count, 11, 11)          # 2 * ceil(4.5) + 1: the official 11x11 at sigma 1.5
    assert gaussian_derivative_basis(order, 1.0).shape[-1] == 7   # official 7x7 at sigma 1
    assert len(basis_orders_3d(order)) == math.comb(order + 3, 3)
    assert gaussian_derivative_basis_3d(order, 1.0).shape == (math.comb(order + 3, 3), 7, 7, 7)


def test_order_list_and_sizes():
    assert basis_orders(2) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    assert default_size(2.0) == 13 and default_size(1.5) == 11
    assert multiscale_sigmas(4) == (1.0, 2.0, 4.0, 8.0)
    assert multiscale_sigmas(4, layer=2) == (1.0, 2.0)   # table 1: 1,2,4,8 / 1,2,4 / 1,2 / 1
    with pytest.raises(ValueError):
        multiscale_sigmas(2, layer=2)


def test_hermite_matches_numpy():
    t = np.linspace(-3, 3, 41)
    for n in range(6):
        ref = np.polynomial.hermite.hermval(t, [0] * n + [1])
        np.testing.assert_allclose(hermite(n, t), ref, rtol=1e-12, atol=1e-9)


def test_normalisation_and_parity():
    b = gaussian_derivative_basis(4, 2.0, size=21, dtype=torch.float64)   # +-5 sigma support
    orders = basis_orders(4)
    assert abs(b[0].sum().item() - 1.0) < 1e-12           # Gaussian sums to 1
    for k, (i, j) in enumerate(orders):
        if i % 2 or j % 2:                                 # odd filters: exactly zero mean
            assert abs(b[k].sum().item()) < 1e-12
        else:                                              # even derivatives: integral of G^(n) is 0
            if i + j > 0:
                assert abs(b[k].sum().item()) < 1e-4   # (the default +-3 sigma cut leaks up to ~0.1 at order 4)
    gram = torch.einsum("kyx,lyx->kl", b, b)
    for k, (i, j) in enumerate(orders):                    # different parity in x or y: orthogonal
        for l, (p, q) in enumerate(orders):
            if (i + p) % 2 or (j + q) % 2:
                assert abs(gram[k, l].item()) < 1e-14
    eig = torch.linalg.eigvalsh(gram)
    assert eig.min() > 1e-6 * eig.max()                    # linearly independent (a basis)


def test_derivative_orders_on_polynomials():
    """Convolving x^a y^b / (a! b!) with filter (i, j), a + b <= i + j, gives sigma^(i+j) iff (a,b)=(i,j)."""
    sigma, order = 2.0, 4
    size = 2 * math.ceil(7 * sigma) + 1   # high moments need a wide support
    layer = RFConv2d(1, 1, order, (sigma,), size=size, padding="valid").double()
    g = torch.arange(size, dtype=torch.float64) - size // 2
    Y, X = torch.meshgrid(g, g, indexing="ij")
    for a, b in basis_orders(order):
        img = (X ** a * Y ** b / (math.factorial(a) * math.factorial(b)))[None, None]
        resp = layer.basis_responses(img)[0, :, 0, 0]       # one valid position = centre
        for k, (i, j) in enumerate(basis_orders(order)):
            if a + b > i + j:
                continue
            want = sigma ** (i + j) if (a, b) == (i, j) else 0.0
            assert abs(resp[k].item() - want) < 1e-3 * sigma ** (i + j), (a, b, i, j, resp[k].item())


@pytest.mark.parametrize("theta", [0.3, 1.1, -2.0])
def test_steering_equals_rotated_filter(theta):
    """S(theta) @ basis equals each filter evaluated at counter-clockwise rotated coordinates."""
    sigma, order = 1.5, 4
    basis = gaussian_derivative_basis(order, sigma, dtype=torch.float64)
    steered = steer(basis, order, theta)
    size = basis.shape[-1]
    g = np.arange(size) - (size - 1) / 2
    X, Y = np.meshgrid(g, g)
    c, s = math.cos(theta), math.sin(theta)
    for k, (i, j) in enumerate(basis_orders(order)):
        ref = gaussian_derivative_at(i, j, c * X - s * Y, s * X + c * Y, sigma, size)
        np.testing.assert_allclose(steered[k].numpy(), ref, atol=1e-12)


def test_steering_eq22_and_group_law():
    th = 0.4
    c, s = math.cos(th), math.sin(th)
    S = steering_matrix(3, th)
    o = {v: k for k, v in enumerate(basis_orders(3))}
    row = S[o[(2, 0)]]   # eq. 22: Gxx_theta = c^2 Gxx - 2 c s Gxy + s^2 Gyy
    assert torch.allclose(row[[o[(2, 0)], o[(1, 1)], o[(0, 2)]]], torch.tensor([c * c, -2 * c * s, s * s], dtype=row.dtype))
    row = S[o[(3, 0)]]   # Gxxx_theta = c^3 Gxxx - 3c^2 s Gxxy + 3 c s^2 Gxyy - s^3 Gyyy
    want = torch.tensor([c ** 3, -3 * c * c * s, 3 * c * s * s, -s ** 3], dtype=row.dtype)
    assert torch.allclose(row[[o[(3, 0)], o[(2, 1)], o[(1, 2)], o[(0, 3)]]], want)
    assert directional_derivative_coefficients(2, th) == pytest.approx({(2, 0): c * c, (1, 1): -2 * c * s, (0, 2): s * s})
    # rotations compose: S(a) S(b) = S(a + b); S(2 pi) = I
    assert torch.allclose(steering_matrix(4, 0.3) @ steering_matrix(4, 0.5), steering_matrix(4, 0.8), atol=1e-12)
    assert torch.allclose(steering_matrix(4, 2 * math.pi), torch.eye(15, dtype=torch.float64), atol=1e-12)
    b = gaussian_derivative_basis(1, 2.0)
    assert torch.allclose(steer_first_order(b[1], b[2], th), steer(b, 1, th)[1])


def test_steered_derivative_is_derivative_of_rotated_gaussian_numerically():
    """Finite differences of the continuous Gaussian along the direction theta vs the steered sum."""
    sigma, theta, h = 2.0, 0.9, 1e-2
    size = default_size(sigma)
    g = np.arange(size) - (size - 1) / 2
    X, Y = np.meshgrid(g, g)
    u = np.array([math.cos(theta), -math.sin(theta)])          # direction at theta, ccw on screen (y down)
    gauss = lambda x, y: gaussian_derivative_at(0, 0, x, y, sigma, size)
    d2 = (gauss(X + h * u[0], Y + h * u[1]) - 2 * gauss(X, Y) + gauss(X - h * u[0], Y - h * u[1])) / h ** 2
    basis = gaussian_derivative_basis(2, sigma, dtype=torch.float64)
    coef = directional_derivative_coefficients(2, theta)
    o = {v: k for k, v in enumerate(basis_orders(2))}
    steered = sum(c * basis[o[key]] for key, c in coef.items()).numpy() / sigma ** 2
    np.testing.assert_allclose(steered, d2, atol=1e-4 * np.abs(d2).max())


def test_steering_vs_image_rotation():
    """Bilinearly rotating a wide first/second order filter image matches steering (interpolation tolerance)."""
    basis = gaussian_derivative_basis(2, 4.0, size=41)
    for deg in (30.0, 90.0):
        rotated = rotate(basis[:, None], torch.full((basis.shape[0],), deg))[:, 0]
        steered = steer(basis, 2, math.radians(deg))
        err = (rotated - steered)[:, 8:-8, 8:-8].abs().max() / basis.abs().max()
        assert err < 0.04, (deg, err)   # bilinear interpolation error
    # exact rot90 of the image equals steering by 90 degrees
    assert torch.allclose(rot90(basis[:, None], 1)[:, 0], steer(basis, 2, math.pi / 2), atol=1e-7)


def _layer_vs_explicit(layer, x, conv):
    y = layer(x)
    w = layer.effective_filters()
    ref = conv(x, w, layer.bias, layer.stride, layer.padding)
    return (y - ref).abs().max().item() / ref.abs().max().item()


@pytest.mark.parametrize("mode", ["factored", "effective", "auto"])
@pytest.mark.parametrize("stride", [1, 2])
def test_rfconv2d_equals_explicit_effective_filter_conv(mode, stride):
    torch.manual_seed(0)
    layer = RFConv2d(3, 5, 3, (1.0, 2.0), stride=stride, bias=True, mode=mode)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 17, 17)
    assert _layer_vs_explicit(layer, x, F.conv2d) < 1e-5
    assert layer(x).shape == (2, 5, 17 // stride + (17 % stride > 0), 17 // stride + (17 % stride > 0))
    # hand-built effective filter for one (out, in): sum_b alpha[o, i, b] * flipped basis
    basis = torch.cat([gaussian_derivative_basis(3, s, layer.size) for s in (1.0, 2.0)])
    eff = torch.einsum("b,byx->yx", layer.alpha[1, 2].detach(), basis).flip(0, 1)
    assert torch.allclose(eff, layer.effective_filters()[1, 2].detach(), atol=1e-6)


def test_rfconv2d_learns_only_alpha_and_replaces_conv2d():
    layer = RFConv2d(4, 6, 2, (1.0,))
    names = {n for n, p in layer.named_parameters()}
    assert names == {"alpha"} and layer.alpha.numel() == 6 * 4 * 6
    conv = torch.nn.Conv2d(4, 6, layer.size, padding=layer.size // 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(layer.effective_filters())
    x = torch.randn(1, 4, 12, 12)
    assert torch.allclose(conv(x), layer(x), atol=1e-5)
    layer(x).square().mean().backward()
    assert layer.alpha.grad is not None and layer.phi.grad is None
    free = RFConv2d(4, 6, 2, (1.0,), basis="free")
    assert {n for n, _ in free.named_parameters()} == {"alpha", "phi"}
    free(x).sum().backward()
    assert free.phi.grad.abs().sum() > 0
    with pytest.raises(Exception):
        RFConv2d(4, 6, 2, (1.0,), basis="pixels")


def test_rfconv3d_on_synthetic_volume():
    torch.manual_seed(0)
    # a smooth synthetic volume: two Gaussian blobs plus a linear ramp in z
    g = torch.arange(15, dtype=torch.float64) - 7
    Z, Y, X = torch.meshgrid(g, g, g, indexing="ij")
    vol = torch.exp(-((X - 2) ** 2 + Y ** 2 + (Z + 1) ** 2) / 8) - 0.5 * torch.exp(-((X + 3) ** 2 + (Y - 2) ** 2 + Z ** 2) / 4)
    vol = torch.stack([vol, 0.3 * Z])[None]                               # [1, 2, 15, 15, 15]
    layer = RFConv3d(2, 4, 2, (1.0,), bias=False).double()
    assert _layer_vs_explicit(layer, vol, F.conv3d) < 1e-10
    layer.mode = "factored"
    assert _layer_vs_explicit(layer, vol, F.conv3d) < 1e-10
    assert layer(vol).shape == (1, 4, 15, 15, 15)
    # the first-order z filter measures sigma * slope of the ramp away from the border
    resp = layer.basis_responses(vol)
    kz = basis_orders_3d(2).index((0, 0, 1))
    inner = resp[0, layer.n_basis + kz, 4:-4, 4:-4, 4:-4]
    assert torch.allclose(inner, torch.full_like(inner, 0.3), atol=3e-3)   # +-3 sigma cut: 0.4% low
    # rotating the volume by 90 degrees in the x-y plane swaps the x and y derivative responses
    rot = torch.rot90(vol, 1, dims=(3, 4))
    rx, ry = basis_orders_3d(2).index((1, 0, 0)), basis_orders_3d(2).index((0, 1, 0))
    r0 = layer.basis_responses(vol)[0, :layer.n_basis]
    r1 = layer.basis_responses(rot)[0, :layer.n_basis]
    # f_rot(x, y) = f(-y, x) (ccw on screen, y down): d_x f_rot = rot(d_y f), d_y f_rot = -rot(d_x f)
    assert torch.allclose(torch.rot90(r0[ry], 1, dims=(1, 2)), r1[rx], atol=1e-10)
    assert torch.allclose(torch.rot90(r0[rx], 1, dims=(1, 2)), -r1[ry], atol=1e-10)

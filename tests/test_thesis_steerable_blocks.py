"""Dynamic steerable two-factor blocks (eq. 29) and the frame networks of thesis ch. 4."""
import math

import pytest
import torch
import torch.nn.functional as F

from hyperbook.errors import UnknownChoiceError
from hyperbook.layers.gaussian_basis import gaussian_derivative_basis, steering_matrix
from hyperbook.models.steerable import (POSES, ContourNet, DynamicSteerableBlock, PixelFCN, build_cifar_model,
                                        count_parameters, scale_interpolation_weights, steering_field)


def composed_conv(x, block, S=None, sigma_index=0):
    """The block as one ordinary convolution: filters sum_k W[o, c, k] (S phi)_k, true convolution."""
    phi = gaussian_derivative_basis(block.frame.max_order, block.frame.sigmas[sigma_index], block.frame.size)
    phi = phi[block.frame.keep].double()
    if S is not None:
        phi = torch.einsum("kl,lyx->kyx", S, phi)
    W = block.combine.weight.detach().double().reshape(block.out_ch, block.in_ch, -1)
    filt = torch.einsum("ock,kyx->ocyx", W, phi).flip(-2, -1)
    return F.conv2d(x.double(), filt, block.combine.bias.detach().double(), padding=block.frame.size // 2)


def test_tensor_steering_matches_the_basis_steering_matrix():
    thetas = torch.tensor([[0.0, 0.7], [-1.9, 3.0]], dtype=torch.float64)
    S = steering_field(4, thetas)
    assert S.shape == (2, 2, 15, 15)
    for idx in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        assert torch.allclose(S[idx], steering_matrix(4, float(thetas[idx])), atol=1e-12)


@pytest.mark.parametrize("pose", POSES)
def test_zero_pose_is_the_static_block(pose):
    torch.manual_seed(0)
    block = DynamicSteerableBlock(2, 3, max_order=2, sigmas=(1.0,), pose=pose).double()
    x = torch.randn(2, 2, 17, 15, dtype=torch.float64)
    # the pose network's last layer starts at zero: zero pose, so the block is the static frame convolution
    assert torch.allclose(block(x), composed_conv(x, block), atol=1e-10)


def test_zero_pose_with_scales_uses_the_middle_scale():
    torch.manual_seed(0)
    block = DynamicSteerableBlock(1, 2, max_order=2, sigmas=(0.8, 1.1, 1.5), pose="rotation_scale").double()
    x = torch.randn(1, 1, 21, 21, dtype=torch.float64)
    assert torch.allclose(block(x), composed_conv(x, block, sigma_index=1), atol=1e-10)


@pytest.mark.parametrize("theta", [0.5, -2.0, 3.0])
def test_constant_pose_equals_convolution_with_the_rotated_filter(theta):
    torch.manual_seed(1)
    block = DynamicSteerableBlock(2, 3, max_order=3, sigmas=(1.2,), pose="rotation").double()
    last = block.pose_net[-1]
    with torch.no_grad():      # constant pose: (cos, sin) = (1 + b0, b1) / norm = (cos theta, sin theta)
        last.bias.copy_(torch.tensor([math.cos(theta) - 1.0, math.sin(theta)]))
    x = torch.randn(2, 2, 19, 19, dtype=torch.float64)
    out, z = block(x, return_pose=True)
    assert torch.allclose(block.angle(z), torch.full_like(block.angle(z), theta), atol=1e-6)
    S = steering_matrix(3, theta)
    assert torch.allclose(out, composed_conv(x, block, S), atol=1e-6)   # the 1e-8 guard in the norm
    # and not the unrotated one
    assert not torch.allclose(out, composed_conv(x, block), atol=1e-3)


def test_tanh_angle_parametrisation():
    block = DynamicSteerableBlock(1, 1, max_order=1, pose="rotation", angle="tanh").double()
    theta = 1.1
    with torch.no_grad():
        block.pose_net[-1].bias.fill_(math.atanh(theta / math.pi))
    x = torch.randn(1, 1, 15, 15, dtype=torch.float64)
    assert torch.allclose(block(x), composed_conv(x, block, steering_matrix(1, theta)), atol=1e-9)
    with pytest.raises(UnknownChoiceError):
        DynamicSteerableBlock(1, 1, angle="quaternion")


def test_pose_varies_per_location():
    """Left half steered by one angle, right half by another: each half is its own rotated convolution."""
    torch.manual_seed(2)
    block = DynamicSteerableBlock(1, 2, max_order=2, sigmas=(1.0,), pose="rotation").double()
    x = torch.randn(1, 1, 16, 24, dtype=torch.float64)
    phi = block.frame(x.double())
    t1, t2 = 0.3, 2.4
    z = torch.zeros(1, 1, 2, 16, 24, dtype=torch.float64)
    z[..., 0, :, :12], z[..., 1, :, :12] = math.cos(t1) - 1, math.sin(t1)
    z[..., 0, :, 12:], z[..., 1, :, 12:] = math.cos(t2) - 1, math.sin(t2)
    steered = block.steer(phi, z)
    out = block.combine(steered.reshape(1, -1, 16, 24))
    left = composed_conv(x, block, steering_matrix(2, t1))
    right = composed_conv(x, block, steering_matrix(2, t2))
    assert torch.allclose(out[..., :12], left[..., :12], atol=1e-6)
    assert torch.allclose(out[..., 12:], right[..., 12:], atol=1e-6)


@pytest.mark.parametrize("pose,n_pose", [("rotation", 2), ("rotation_scale", 3), ("free", 36)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_pose_network_output_shapes(pose, n_pose, per_channel):
    block = DynamicSteerableBlock(3, 5, max_order=2, sigmas=(0.8, 1.5), pose=pose, pose_per_channel=per_channel)
    x = torch.randn(2, 3, 12, 10)
    out, z = block(x, return_pose=True)
    assert out.shape == (2, 5, 12, 10)
    assert z.shape == (2, 3 if per_channel else 1, n_pose, 12, 10)
    if pose != "free":
        assert block.angle(z).shape == (2, 3 if per_channel else 1, 12, 10)
    # the pose network is trainable through the steering functions
    out.square().mean().backward()
    assert block.pose_net[-1].weight.grad.abs().sum() > 0


def test_pose_network_has_tanh_units_and_three_layers():
    block = DynamicSteerableBlock(1, 1, max_order=1, min_order=1, pose_hidden=8, pose_layers=3)
    convs = [m for m in block.pose_net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and sum(isinstance(m, torch.nn.Tanh) for m in block.pose_net) == 2
    assert block.frame.n_atoms == 2                       # only the two gradient filters G_x, G_y
    with pytest.raises(UnknownChoiceError):
        DynamicSteerableBlock(1, 1, pose="affine")


def test_scale_interpolation_weights():
    grid = (0.8, 1.1, 1.5)
    s = torch.tensor([0.5, 0.8, 0.95, 1.1, 1.3, 1.5, 2.0])
    w = scale_interpolation_weights(s, grid)
    assert torch.allclose(w.sum(-1), torch.ones(7))
    assert torch.allclose(w[1], torch.tensor([1.0, 0, 0])) and torch.allclose(w[3], torch.tensor([0, 1.0, 0]))
    assert torch.allclose(w[2], torch.tensor([0.5, 0.5, 0])) and torch.allclose(w[4], torch.tensor([0, 0.5, 0.5]))
    assert torch.allclose(w[0], w[1]) and torch.allclose(w[6], w[5])     # clamped to the sampled range


def test_cifar_frame_networks():
    x = torch.randn(2, 3, 32, 32)
    counts = {}
    for frame in ("pixel", "image", "naive"):
        m = build_cifar_model("resnet8", frame, width=4)
        assert m(x).shape == (2, 10)
        counts[frame] = count_parameters(m)
    assert counts["naive"] == counts["pixel"] < counts["image"]            # 9 vs 15 / 9 alternating atoms
    # published sizes: ResNet-110 1.7M, DenseNet (L=40, k=12) 1.0M parameters
    assert 1.6e6 < count_parameters(build_cifar_model("resnet110", "pixel")) < 1.8e6
    assert 0.95e6 < count_parameters(build_cifar_model("densenet40k12", "pixel")) < 1.1e6
    assert build_cifar_model("densenet10k4", "image")(x[:1]).shape == (1, 10)
    with pytest.raises(UnknownChoiceError):
        build_cifar_model("vgg16", "pixel")
    with pytest.raises(ValueError):
        build_cifar_model("resnet21", "pixel")


def test_contour_net_and_fcn_shapes():
    x = torch.randn(1, 3, 10, 12)
    for dynamic in (True, False):
        assert ContourNet(dynamic, (4, 4, 8), pose_hidden=4)(x).shape == (1, 1, 10, 12)
    assert PixelFCN(1, 1, 11, 3, 7, 3)(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)

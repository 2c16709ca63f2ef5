"""Thesis 4.3.1: the pose network outputs a pose per location and per input/output channel pair."""
import math

import pytest
import torch
import torch.nn.functional as F

from hyperbook.errors import UnknownChoiceError
from hyperbook.layers.gaussian_basis import gaussian_derivative_basis, steering_matrix
from hyperbook.models.steerable import ContourNet, DynamicSteerableBlock


def _pair_reference(x, block, thetas):
    """H_o = sum_i conv(x_i, sum_k W[o, i, k] (S(theta_io) phi)_k): each pair with its own rotated filter."""
    phi = gaussian_derivative_basis(block.frame.max_order, block.frame.sigmas[0], block.frame.size).double()
    phi = phi[block.frame.keep]
    W = block.combine.weight.detach().double().reshape(block.out_ch, block.in_ch, -1)
    filt = torch.zeros(block.out_ch, block.in_ch, *phi.shape[1:], dtype=torch.float64)
    for i in range(block.in_ch):
        for o in range(block.out_ch):
            rot = torch.einsum("kl,lyx->kyx", steering_matrix(block.frame.max_order, thetas[i][o]), phi)
            filt[o, i] = torch.einsum("k,kyx->yx", W[o, i], rot)
    return F.conv2d(x, filt.flip(-2, -1), block.combine.bias.detach().double(), padding=block.frame.size // 2)


def test_a_pose_per_channel_pair_steers_every_pair_on_its_own():
    torch.manual_seed(0)
    block = DynamicSteerableBlock(2, 3, max_order=2, sigmas=(1.0,), pose="rotation",
                                  pose_sharing="channel_pair").double()
    thetas = [[0.3, -1.1, 2.0], [0.9, 0.0, -2.6]]
    bias = torch.tensor([[math.cos(t) - 1, math.sin(t)] for row in thetas for t in row], dtype=torch.float64)
    with torch.no_grad():
        block.pose_net[-1].bias.copy_(bias.reshape(-1))      # constant pose; pair (i, o) at i * out + o
    x = torch.randn(2, 2, 19, 17, dtype=torch.float64)
    out, z = block(x, return_pose=True)
    assert z.shape == (2, 6, 2, 19, 17)
    assert torch.allclose(out, _pair_reference(x, block, thetas), atol=1e-9)
    # a shared pose cannot do this: the same block with one pose per location differs
    shared = DynamicSteerableBlock(2, 3, max_order=2, sigmas=(1.0,), pose="rotation").double()
    shared.combine.load_state_dict(block.combine.state_dict())
    with torch.no_grad():
        shared.pose_net[-1].bias.copy_(bias[0])
    assert not torch.allclose(shared(x), out, atol=1e-3)


def test_pair_poses_at_zero_are_the_static_block_and_names_are_checked():
    torch.manual_seed(1)
    pair = DynamicSteerableBlock(3, 2, max_order=1, sigmas=(0.8, 1.1, 1.5), pose="rotation_scale",
                                 pose_sharing="channel_pair")
    static = DynamicSteerableBlock(3, 2, max_order=1, sigmas=(0.8, 1.1, 1.5), pose="none")
    static.combine.load_state_dict(pair.combine.state_dict())
    x = torch.randn(1, 3, 12, 12)
    assert torch.allclose(pair(x), static(x), atol=1e-5)
    with pytest.raises(UnknownChoiceError, match="pose sharing"):
        DynamicSteerableBlock(1, 1, pose_sharing="per_pixel")
    net = ContourNet(True, (4, 4, 8), pose_sharing="channel_pair")
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)

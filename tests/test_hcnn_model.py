"""Hierarchical Attribute CNN: shapes, covariance along attributes, parameter counts, factorisation."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperbook.models.hcnn import HCNN, AttrLayer, HCNNSpec, attribute_array, placement

torch.set_num_threads(1)


def test_shapes_through_the_cascade():
    """J = 12, K = 16: x_j is (K/4, K/2, K) along (v_{j-2}, v_{j-1}, v_j); space halves at j = 5, 9."""
    model = HCNN(HCNNSpec(K=16, Q=32)).eval()
    with torch.no_grad():
        logits, layers = model(torch.randn(2, 3, 32, 32), return_layers=True)
    shapes = [tuple(x.shape) for x in layers]
    assert shapes[0] == (2, 16, 32, 32)                 # x_1 (v_1, u)
    assert shapes[1] == (2, 16, 8, 32, 32)              # x_2 (v_2, v_1, u): v_1 sub-sampled
    for j in range(3, 11):
        side = 32 if j < 5 else (16 if j < 9 else 8)
        assert shapes[j - 1] == (2, 16, 4, 8, side, side), j
    assert shapes[10] == (2, 10, 4, 8, 8, 8)            # x_11: v_11 is the class index
    assert tuple(logits.shape) == (2, 10)
    assert len(layers) == 11                            # W_1 .. W_11, then the sum x_12


@pytest.mark.parametrize("plus", [False, True])
@pytest.mark.parametrize("classes", [10, 100])
def test_parameter_counts_as_the_document_counts(plus, classes):
    """Section 4.2: w_{v_j} (original) or h and g (+) for j >= 3, plus the W_1, W_2 filters."""
    spec = HCNNSpec.for_dataset(classes, K=16, Q=32, plus=plus)
    model = HCNN(spec)
    total = sum(model.document_parameters().values())
    document = {(10, False): 0.098, (10, True): 0.34, (100, False): 0.25, (100, True): 0.89}[(classes, plus)]
    digits = 3 if document < 0.1 else 2
    assert round(total / 1e6, digits) == document
    pinned = {(10, False): 97_650, (10, True): 344_640, (100, False): 250_308, (100, True): 887_424}
    assert total == pinned[(classes, plus)]
    # what the optimiser sees: the factors h, g (more than w for the original), biases, batch norms
    trainable = {(10, False): 345_098, (10, True): 345_674, (100, False): 887_972, (100, True): 888_548}
    assert model.trainable_parameters() == trainable[(classes, plus)]


def _small(circular=True, plus=False, impl=None):
    torch.manual_seed(0)
    spec = HCNNSpec(K=8, Q=6, circular=circular, plus=plus, impl=impl or "")
    model = HCNN(spec).double().eval()
    with torch.no_grad():       # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("plus", [False, True])
def test_covariance_along_attributes_and_invariance_of_the_sum(plus):
    """Prop. 3.1 with periodic attribute convolutions: shifting x_j along v_{j-1} by 2 (or v_j by 4)
    shifts x_{j+1} by half as much along the same attribute (stride 2); shifting along v_{j-2} leaves
    it unchanged (summed out); the output x_J is invariant in every case."""
    model = _small(circular=True, plus=plus)
    x = torch.randn(2, 3, 16, 16, dtype=torch.double)
    with torch.no_grad():
        logits, layers = model(x, return_layers=True)
        j = 4
        xj = layers[j - 1]                                    # (N, v_j, v_{j-2}, v_{j-1}, H, W)
        nxt = layers[j]                                       # (N, v_{j+1}, v_{j-1}, v_j, H, W)
        # (axis of x_j, shift, axis of x_{j+1}); every sub-sampling by 2 halves a shift, so a shift
        # along v_j must be a multiple of 4 to stay a shift until v_j is summed out two layers later
        cases = [(3, 2, 2), (1, 4, 3), (2, 1, None)]
        for axis, shift, axis_next in cases:
            moved_logits, rest = model.forward_from(j, torch.roll(xj, shift, dims=axis), collect=True)
            expected = nxt if axis_next is None else torch.roll(nxt, shift // 2, dims=axis_next)
            assert torch.allclose(rest[0], expected, atol=1e-10), (axis, shift)
            assert torch.allclose(moved_logits, logits, atol=1e-10), (axis, shift)


def test_plain_cnn_layer_is_not_covariant_along_channels():
    """The contrast of figure 1: a plain layer mixes channels with arbitrary weights, so shifting its
    input along the channel index neither shifts its output nor leaves the summed output unchanged."""
    torch.manual_seed(0)
    layer = nn.Conv2d(8, 8, 3, padding=1).double()
    x = torch.randn(2, 8, 16, 16, dtype=torch.double)
    with torch.no_grad():
        out, moved = F.elu(layer(x)), F.elu(layer(torch.roll(x, 2, dims=1)))
    shifted_error = (moved - torch.roll(out, 2, dims=1)).norm() / out.norm()
    sum_error = (moved.sum((1, 2, 3)) - out.sum((1, 2, 3))).abs().max() / out.sum((1, 2, 3)).abs().max()
    assert shifted_error > 0.3
    assert sum_error > 1e-2


def test_zero_padding_breaks_exact_covariance_at_the_attribute_borders():
    """Why the translation figures use periodic convolutions: with zero padding the shift is only
    approximate (the same check as above fails)."""
    model = _small(circular=False)
    x = torch.randn(2, 3, 16, 16, dtype=torch.double)
    with torch.no_grad():
        _, layers = model(x, return_layers=True)
        _, rest = model.forward_from(4, torch.roll(layers[3], 2, dims=3), collect=True)
    err = (rest[0] - torch.roll(layers[4], 1, dims=2)).norm() / layers[4].norm()
    assert err > 1e-3


@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_folded_and_factorised_layers_agree_with_gradients(circular, stride):
    """The fast folded layer (equivalent filter, one matmul) computes the literal h -> BN -> g cascade:
    same outputs, same gradients, same running statistics, in train and eval mode."""
    torch.manual_seed(1)
    folded = AttrLayer(8, 12, (7, 11), stride, circular=circular).double()
    with torch.no_grad():
        folded.g.bias.normal_()
    literal = copy.deepcopy(folded)
    literal.impl = "factorised"
    y = torch.randn(3, 4, 8, 10, 10, dtype=torch.double, requires_grad=True)
    for train in (True, False):
        folded.train(train), literal.train(train)
        a, b = folded(y), literal(y)
        assert torch.allclose(a, b, atol=1e-10)
        ga = torch.autograd.grad(a.pow(2).sum(), [y, folded.h.weight, folded.g.weight])
        gb = torch.autograd.grad(b.pow(2).sum(), [y, literal.h.weight, literal.g.weight])
        for u, v in zip(ga, gb):
            assert torch.allclose(u, v, rtol=1e-8, atol=1e-8)
    assert torch.allclose(folded.bn.running_var, literal.bn.running_var, atol=1e-12)
    assert torch.allclose(folded.bn.running_mean, literal.bn.running_mean, atol=1e-12)


def _direct_reference(y, w, support, stride_u=1):
    """Direct 4-D convolution along (u, a, b) with filters w [K, 3, 3, ka, kb], zero padding,
    stride 2 along a and b: an explicit sum over the filter taps (slow, independent of the model)."""
    n, A, B, H, W = y.shape
    ka, kb = support
    pa, pb = ka // 2, kb // 2
    yp = F.pad(y, (1, 1, 1, 1, pb, pb, pa, pa))
    out = torch.zeros(n, w.shape[0], A // 2, B // 2, H, W, dtype=y.dtype)
    for du in range(3):
        for dv in range(3):
            for da in range(ka):
                for db in range(kb):
                    patch = yp[:, da:da + A:2, db:db + B:2, du:du + H, dv:dv + W]     # (n, A/2, B/2, H, W)
                    out += w[:, du, dv, da, db].view(1, -1, 1, 1, 1, 1) * patch.unsqueeze(1)
    return out


def test_factorised_filters_reach_any_direct_operator_when_q_is_at_least_9():
    """Rank argument of section 4.2: sum_q h_q(u) g_q(v) with Q >= 9 = 3x3 spatial taps reaches every
    4-D filter w(u, v); with Q = 8 a generic w is out of reach."""
    torch.manual_seed(2)
    K, support = 4, (7, 11)
    target = torch.randn(K, 3, 3, *support, dtype=torch.double)
    layer = AttrLayer(K, 9, support, post_bn=False, last=True).double().eval()
    with torch.no_grad():
        layer.bn.running_mean.zero_()
        layer.bn.running_var.fill_(1.0 - layer.bn.eps)      # BN is the identity
        layer.g.bias.zero_()
        H = torch.randn(9, 9, dtype=torch.double)           # any invertible set of spatial filters
        layer.h.weight.copy_(H.view(9, 1, 1, 3, 3))
        G = torch.linalg.solve(H.T, target.reshape(K, 9, -1))   # per v_j: H^T g = w
        layer.g.weight.copy_(G.view(K, 9, *support, 1))
        y = torch.randn(2, 4, 8, 6, 6, dtype=torch.double)
        ours = layer(y)
    assert torch.allclose(ours, _direct_reference(y, target, support), atol=1e-10)
    # Q = 8: the best rank-8 approximation of the (9 x K*77) filter matrix leaves a residual
    s = torch.linalg.svdvals(target.permute(1, 2, 0, 3, 4).reshape(9, -1))
    assert s[-1] / s.norm() > 0.05


def test_placement_counts_taps():
    zero = placement(4, 8, (7, 11), circular=False)
    circ = placement(4, 8, (7, 11), circular=True)
    assert zero.shape == circ.shape == (2 * 4, 4 * 8, 77)
    assert torch.all(circ.sum(dim=(1,)) == 1)              # each tap of each output reads one input
    assert zero.sum() < circ.sum()                         # zero padding drops the taps that fall outside


def test_attribute_array_is_invariant_along_v_j_minus_2_and_covariant_along_v_j_minus_1():
    """Eq. 9's properties, not its formula: the array forgets the order along v_{j-2} and everything away from
    the central position, is linear, and a shift along v_{j-1} shifts the array along its first axis."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 4, 8, 9, 9)               # (N, v_j, v_{j-2}, v_{j-1}, H, W)
    a = attribute_array(x)
    assert a.shape == (2, 8, 16)
    assert torch.allclose(attribute_array(x[:, :, torch.randperm(4)]), a, atol=1e-5)   # any order of v_{j-2}
    off_centre = x.clone()
    off_centre[..., 0, :] += 5.0
    off_centre[..., :, -1] -= 3.0
    assert torch.allclose(attribute_array(off_centre), a)                              # only u_0 matters
    assert torch.allclose(attribute_array(torch.roll(x, 3, dims=3)), torch.roll(a, 3, dims=1))
    y = torch.randn_like(x)
    assert torch.allclose(attribute_array(2 * x - y), 2 * a - attribute_array(y), atol=1e-5)
    # collapsing v_{j-2} to one slice: the array is that slice at the centre, up to the axis order
    one = x[:, :, :1]
    assert torch.allclose(attribute_array(one)[0, :, 5], one[0, 5, 0, :, 4, 4])


@pytest.mark.parametrize("circular", [False, True])
def test_layer_two_matches_a_strided_3d_convolution(circular):
    """W_2 (Toeplitz conv2d) = conv3d along (v_1, u) with stride 2 along v_1, values and gradients."""
    from hyperbook.models.hcnn import AttrConv1
    torch.manual_seed(3)
    layer = AttrConv1(16, 11, circular).double()
    x = torch.randn(2, 16, 6, 6, dtype=torch.double, requires_grad=True)
    z = x.unsqueeze(1)
    z = F.pad(z, (0, 0, 0, 0, 5, 5), mode="circular") if circular else z
    ref = F.conv3d(z, layer.weight, stride=(2, 1, 1), padding=(0 if circular else 5, 1, 1))
    ours = layer(x)
    assert torch.allclose(ours, ref, atol=1e-12)
    for u, v in zip(torch.autograd.grad(ours.pow(2).sum(), [x, layer.weight]),
                    torch.autograd.grad(ref.pow(2).sum(), [x, layer.weight])):
        assert torch.allclose(u, v, atol=1e-9)

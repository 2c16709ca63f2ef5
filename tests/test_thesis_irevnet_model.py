"""i-RevNet (thesis ch. 6): invertibility of every piece, the memory-saving backward, parameter counts."""
from dataclasses import replace

import pytest
import torch

from hyperbook.errors import BookError
from hyperbook.models.irevnet import (BASELINES, SPECS, IRevBlock, IRevNet, IRevNetSpec, RevBlock, SpaceToDepth,
                                      Splitter, build, depth_to_space, parameter_count, parameter_count_of,
                                      relative_error, space_to_depth)

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
DTYPES = (torch.float64, torch.float32)


def _scramble_bn(model, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters, so eval-mode inverses are tested for real."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


# ----------------------------------------------------------------------------- S, S^-1, S~
@pytest.mark.parametrize("block", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 6, 12), (1, 1, 6, 6), (3, 5, 12, 6)])
def test_space_to_depth_is_a_permutation(block, shape):
    n = torch.tensor(shape).prod().item()
    x = torch.randperm(n).reshape(shape).double()           # distinct values: a permutation test
    y = space_to_depth(x, block)
    assert y.shape == (shape[0], shape[1] * block * block, shape[2] // block, shape[3] // block)
    # every coefficient of every sample appears exactly once: nothing lost, nothing duplicated
    assert torch.equal(y.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
    assert torch.equal(depth_to_space(y, block), x)         # bit-exact, no arithmetic
    assert torch.equal(space_to_depth(depth_to_space(y, block), block), y)


def test_space_to_depth_keeps_neighbourhoods():
    """Fig. 17: the b x b patch at output position (h, w) is the input's patch (b*h.., b*w..)."""
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = SpaceToDepth(2)(x)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert y[0, :, 1, 1].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_space_to_depth_rejects_indivisible_shapes():
    with pytest.raises(BookError, match="divisible"):
        space_to_depth(torch.zeros(1, 1, 5, 6), 2)


def test_bijective_splitter_is_exactly_invertible():
    s = Splitter(3, 2, 12)
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    pair = s(x)
    assert [p.shape[1] for p in pair] == [6, 6] and not s.injective_only
    assert torch.equal(s.inverse(pair), x)
    z = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    assert torch.equal(torch.cat(s(s.inverse((z[:, :6], z[:, 6:]))), 1), z)     # two-sided inverse


def test_injective_splitter_left_inverse():
    s = Splitter(3, 1, 32)                                   # the authors' CIFAR: 3 channels + 29 zeros
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    pair = s(x)
    assert s.injective_only and s.pad == 29
    assert torch.equal(s.inverse(pair), x)                   # S~+ S~ = identity
    assert torch.count_nonzero(s.padded_part(pair)) == 0     # the range of S~: zero padded channels
    z = torch.randn(2, 32, 7, 9, dtype=torch.float64)
    back = torch.cat(s(s.inverse((z[:, :16], z[:, 16:]))), 1)
    assert not torch.allclose(back, z)                       # S~ S~+ is a projection, not the identity
    assert torch.equal(back[:, :3], z[:, :3])


def test_splitter_rejects_shrinking():
    with pytest.raises(BookError):
        Splitter(3, 1, 2)


# ----------------------------------------------------------------------------- blocks
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,in_half,hw", [(1, 3, (7, 9)), (1, 4, (6, 10)), (2, 3, (6, 10)), (2, 2, (8, 8))])
@pytest.mark.parametrize("train", [False, True])
def test_block_inverse(dtype, stride, in_half, hw, train):
    torch.manual_seed(0)
    block = _scramble_bn(IRevBlock(in_half, in_half * stride * stride, stride, mult=1, dropout=0.0)).to(dtype)
    block.train(train)
    x = torch.randn(3, in_half, *hw, dtype=dtype)
    xt = torch.randn(3, in_half, *hw, dtype=dtype)
    with torch.no_grad():
        a, b = block((x, xt))
        rx, rxt = block.inverse((a, b))
    assert a.shape == b.shape == (3, in_half * stride ** 2, hw[0] // stride, hw[1] // stride)
    assert relative_error(torch.cat([x, xt], 1), torch.cat([rx, rxt], 1)).max() < TOL[dtype]


def test_block_rejects_wrong_channels():
    with pytest.raises(BookError):
        IRevBlock(4, 8, 2)


# ----------------------------------------------------------------------------- whole networks
SMALL = {
    "a_even": IRevNetSpec(3, 1, (2, 2), (1, 2), (8, 32), mult=4, n_classes=5),           # injective, 3 -> 16
    "b_even": IRevNetSpec(3, 2, (2, 2), (1, 2), (6, 24), mult=2, n_classes=5),           # bijective
    "b_first_strided": IRevNetSpec(3, 2, (1, 2), (2, 2), (24, 96), mult=4, n_classes=5, kernels=(1, 3, 1)),
    "a_odd": IRevNetSpec(1, 1, (3,), (1,), (5,), mult=2, n_classes=5),                  # odd size, 1 -> 10
}
SHAPES = {"a_even": (8, 8), "b_even": (8, 12), "b_first_strided": (16, 16), "a_odd": (7, 9)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("train", [False, True])
def test_network_inverse(name, dtype, train):
    torch.manual_seed(1)
    model = _scramble_bn(IRevNet(SMALL[name])).to(dtype).train(train)
    x = torch.randn(3, SMALL[name].in_channels, *SHAPES[name], dtype=dtype)
    with torch.no_grad():
        phi = model.features(x)
        back = model.inverse(phi)
        logits = model(x)
    assert logits.shape == (3, 5)
    assert back.shape == x.shape
    assert relative_error(x, back).max() < TOL[dtype]
    # dimension of Phi x: equal to the input's for bijective models, larger for injective ones
    if model.injective_only:
        assert phi[0].numel() > x[0].numel()
    else:
        assert phi[0].numel() == x[0].numel()


@pytest.mark.parametrize("name", ["mnist_a", "mnist_b"])
def test_mnist_standins_invert(name):
    torch.manual_seed(0)
    model = _scramble_bn(build(name)).double().eval()
    x = torch.rand(4, 1, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        depths = model.features_at_depths(x)
        assert relative_error(x, model.inverse(depths[-1])).max() < 1e-10
    assert len(depths) == len(model.blocks) + 1
    assert all(d.shape[2:] in {(16, 16), (8, 8), (4, 4)} for d in depths)


def test_injective_left_inverse_ignores_nothing_it_needs():
    """Phi+ Phi x = x for the injective model; perturbing only Phi x's zero-padded part at S~ is dropped by S~+."""
    torch.manual_seed(2)
    model = _scramble_bn(IRevNet(SMALL["a_even"])).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        pair = model.splitter(x)
        assert torch.count_nonzero(model.splitter.padded_part(pair)) == 0
        assert relative_error(x, model.inverse(model.features(x))).max() < 1e-10


def test_cifar_configs_invert():
    torch.manual_seed(0)
    for name in ("cifar_a", "cifar_b"):
        model = build(name).eval()
        x = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            assert relative_error(x, model.inverse(model.features(x))).max() < 1e-5
            assert model.head(model.features(x)).shape == (1, 10)


@pytest.mark.parametrize("name", ["imagenet_b", "imagenet_a"])
def test_imagenet_configs_build_and_invert_on_a_small_input(name):
    torch.manual_seed(0)
    model = build(name).eval()
    x = torch.rand(1, 3, 32, 32)                           # 32 = the product of all down-samplings
    with torch.no_grad():
        phi = model.features(x)
        assert relative_error(x, model.inverse(phi)).max() < 1e-5
        assert model.head(phi).shape == (1, 1000)
    if name == "imagenet_b":
        assert phi.shape == (1, 3072, 1, 1)                # 3 x 32^2 coefficients: bijective
    else:
        assert phi.shape == (1, 6144, 1, 1)                # twice the input's: injective


# ----------------------------------------------------------------------------- parameter counts
def _expected_params(spec: IRevNetSpec) -> int:
    """Count from the architecture's description, independently of the module code."""
    k1, k2, k3 = spec.kernels
    total, in_half, first = 0, spec.start_channels // 2, True
    for n, stride, ch in zip(spec.blocks, spec.strides, spec.channels):
        for _ in range(n):
            h = max(1, int(ch / spec.mult))
            total += k1 * k1 * in_half * h + k2 * k2 * h * h + k3 * k3 * h * ch     # three convolutions
            total += 2 * h + 2 * h + (0 if first else 2 * in_half)                   # BatchNorm scales, shifts
            in_half, first = ch, False
    c = 2 * in_half
    return total + 2 * c + c * spec.n_classes + spec.n_classes


@pytest.mark.parametrize("name", list(SPECS))
def test_parameter_counts(name):
    assert parameter_count_of(name) == _expected_params(SPECS[name])


def test_parameter_counts_against_the_thesis():
    # One kernel reading for (a) and (b): the thesis's text, 1x1, 3x3, 1x1 (sec. 6.3.2).
    # Table 9: (b) 29M -> ours 29,201,092 (agrees). (a) 181M -> ours 48,352,360 exactly: the text's (a)
    # (S~ 4x4 + zero padding to 96, 4-4-6-4 blocks, 48-192-768-3072 channels per half) with 1-3-1 kernels;
    # the thesis's 181M matches neither 1-3-1 nor the authors' 3-3-3 (199,033,960).
    from hyperbook.models.irevnet import IMAGENET_A_PARAMETERS, IMAGENET_B_PARAMETERS, KERNELS
    assert KERNELS == (1, 3, 1)
    assert all(spec.kernels == (1, 3, 1) for spec in SPECS.values())
    assert all(spec.kernels == (1, 3, 1) for spec in BASELINES.values())
    assert parameter_count_of("imagenet_b") == IMAGENET_B_PARAMETERS == 29_201_092
    assert parameter_count_of("imagenet_a") == IMAGENET_A_PARAMETERS == 48_352_360
    assert round(parameter_count_of("imagenet_b") / 1e6) == 29


def test_baselines_shapes_and_revblock_inverse():
    torch.manual_seed(0)
    for name, spec in BASELINES.items():
        x = torch.randn(2, spec.in_channels, 32, 32)
        model = build(name).eval()
        with torch.no_grad():
            assert model(x).shape == (2, 10)
            depths = model.features_at_depths(x)
        side = 32 // (spec.stem_stride * 4)              # stem, then two stride-2 stages
        assert depths[-1].shape[2:] == (side, side)
    rb = _scramble_bn(RevBlock(4, mult=1)).double().eval()
    y = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        assert relative_error(y, rb.inverse(rb(y))).max() < 1e-10


def test_unknown_model_is_a_clear_error():
    from hyperbook.errors import UnknownChoiceError
    with pytest.raises(UnknownChoiceError):
        build("imagenet_c")


# ----------------------------------------------------------------------------- memory-saving backward
def _grads(model, x, y):
    model.zero_grad()
    xin = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(xin), y)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()], xin.grad.clone(), loss.item()


@pytest.mark.parametrize("spec_name", ["a_even", "b_even", "b_first_strided"])
def test_memory_saving_backward_matches_plain_backward(spec_name):
    spec = replace(SMALL[spec_name], dropout=0.3)            # dropout: the recomputation must replay its mask
    torch.manual_seed(3)
    plain = _scramble_bn(IRevNet(spec)).double().train()
    saving = IRevNet(spec, memory_saving=True).double().train()
    saving.load_state_dict(plain.state_dict())
    x = torch.randn(4, spec.in_channels, *SHAPES[spec_name], dtype=torch.float64)
    y = torch.randint(0, 5, (4,))
    torch.manual_seed(7)
    g_plain, gx_plain, l_plain = _grads(plain, x, y)
    torch.manual_seed(7)
    g_saving, gx_saving, l_saving = _grads(saving, x, y)
    assert l_plain == pytest.approx(l_saving, rel=1e-12)
    for a, b in zip(g_plain, g_saving):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)
    assert torch.allclose(gx_plain, gx_saving, rtol=1e-8, atol=1e-10)
    # BatchNorm running statistics updated once, as in the plain model
    for (na, a), (nb, b) in zip(plain.named_buffers(), saving.named_buffers()):
        assert torch.allclose(a.double(), b.double(), rtol=1e-10, atol=1e-12), na


def test_memory_saving_keeps_fewer_tensors_for_backward():
    from hyperbook.experiments.thesis_irevnet import saved_activation_bytes
    spec = SMALL["b_even"]
    x = torch.randn(8, 3, 16, 16)
    plain = saved_activation_bytes(IRevNet(spec), x)
    saving = saved_activation_bytes(IRevNet(spec, memory_saving=True), x)
    assert saving < plain / 2

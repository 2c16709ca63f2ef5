"""e2cnn G-CNN baselines (hyperbook.models.hecnn_gcnn) and a cross-check of our P4 layers against e2cnn."""
import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperbook.errors import UnknownChoiceError
from hyperbook.layers.group_ops import P4GroupConv, P4LiftConv, group_weight, lift_weight
from hyperbook.models.hecnn_gcnn import build_gcnn, count_parameters, make_gspace

from e2cnn import nn as enn  # noqa: E402  (after hecnn_gcnn, which makes e2cnn work under NumPy 2)

# The example main network of the brief (the real CIFAR / STL-10 architectures are defined elsewhere):
# identity shortcut, max pooling, a strided-pool shortcut with a 1x1 conv, invariant pooling, linear head.
SPEC = (("conv", 3, 32, 3, 1, 1, False), ("bn", 32), ("relu",), ("save",),
        ("conv", 32, 32, 3, 1, 1, False), ("bn", 32), ("relu",), ("conv", 32, 32, 3, 1, 1, False), ("add",),
        ("maxpool", 2), ("bn", 32), ("relu",), ("save",), ("conv", 32, 64, 3, 1, 1, False), ("avgpool", 2),
        ("shortcut", 32, 64, 2), ("gpool",), ("linear", 64, 10))
# The remaining entries: leaky ReLU, dropout, a biased even-kernel strided conv (16 + 2 - 4 divisible by 2, so
# the sampling grid stays symmetric), ('pool', 1) + flatten, and layers after the pool.
SPEC2 = (("conv", 3, 16, 3, 1, 1, True), ("lrelu", 0.1), ("dropout", 0.2), ("maxpool", 2),
         ("conv", 16, 32, 4, 2, 1, True), ("bn", 32), ("relu",), ("pool", 1), ("flatten",),
         ("linear", 32, 20), ("relu",), ("dropout", 0.5), ("linear", 20, 10))


class PlainCNN(nn.Module):
    """The same spec with ordinary torch layers: the control that must fail the invariance check."""

    def __init__(self, spec):
        super().__init__()
        self.spec, mods, flat = spec, [], False
        for kind, *a in spec:
            if kind == "conv":
                mods.append(nn.Conv2d(a[0], a[1], a[2], stride=a[3], padding=a[4], bias=a[5]))
            elif kind == "bn":
                mods.append(nn.BatchNorm2d(a[0]))
            elif kind == "shortcut":
                mods.append(nn.Sequential(nn.Conv2d(a[0], a[1], 1, bias=False), nn.AvgPool2d(a[2])))
            elif kind == "linear":
                mods.append(nn.Linear(a[0], a[1]))
            else:
                mods.append(nn.Identity())
        self.mods = nn.ModuleList(mods)

    def forward(self, x):
        stack = []
        for (kind, *a), m in zip(self.spec, self.mods):
            if kind in ("conv", "bn", "linear"):
                x = m(x)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "lrelu":
                x = F.leaky_relu(x, a[0])
            elif kind == "dropout":
                x = F.dropout(x, a[0], self.training)
            elif kind in ("maxpool", "avgpool"):
                x = (F.max_pool2d if kind == "maxpool" else F.avg_pool2d)(x, a[0])
            elif kind == "save":
                stack.append(x)
            elif kind == "add":
                x = x + stack.pop()
            elif kind == "shortcut":
                x = x + m(stack.pop())
            elif kind in ("gpool", "pool"):
                x = x.mean(dim=(-2, -1))
        return x


def rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


def quarter_turns_and_flips(group):
    """The pixel-exact group elements: rotations by 1, 2, 3 quarter turns, and (D8) the mirror with 0..3 turns."""
    ts = [lambda x, k=k: torch.rot90(x, k, dims=(-2, -1)) for k in (1, 2, 3)]
    if group == "D8":
        ts += [lambda x, k=k: torch.rot90(torch.flip(x, dims=(-1,)), k, dims=(-2, -1)) for k in range(4)]
    return ts


def trained_stats(model, x):
    """A few train-mode passes so the batch norms' running statistics are not the identity, then eval."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


# ----------------------------------------------------------------------------- a) invariance
@pytest.mark.parametrize("spec", [SPEC, SPEC2], ids=["example", "other_entries"])
@pytest.mark.parametrize("group", ["C4", "D8"])
def test_gcnn_logits_invariant(group, spec):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    model = trained_stats(build_gcnn(spec, group, dtype=torch.float64), x)
    with torch.no_grad():
        y = model(x, mode="sample")
        assert y.shape == (4, 10) and y.dtype == torch.float64
        assert rel(model(torch.randn_like(x)), y) > 1e-3          # not trivially constant
        for t in quarter_turns_and_flips(group):
            assert rel(model(t(x)), y) < 1e-9
        if group == "C4":                                         # rotations only: the mirror changes the logits
            assert rel(model(torch.flip(x, dims=(-1,))), y) > 1e-3


@pytest.mark.parametrize("spec", [SPEC, SPEC2], ids=["example", "other_entries"])
def test_plain_cnn_fails_the_same_check(spec):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    model = trained_stats(PlainCNN(spec).double(), x)
    with torch.no_grad():
        y = model(x)
        for t in quarter_turns_and_flips("D8"):
            assert rel(model(t(x)), y) > 1e-3


def test_gcnn_trains_in_float32():
    """Default dtype, a gradient step runs and reaches every parameter."""
    torch.manual_seed(0)
    model = build_gcnn(SPEC, "C4")
    loss = F.cross_entropy(model(torch.randn(2, 3, 16, 16)), torch.tensor([1, 2]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_spec_errors():
    with pytest.raises(UnknownChoiceError):
        make_gspace("trivial")      # e2cnn 0.2.3 cannot build 1x1 convs of a one-element group under this torch
    with pytest.raises(ValueError, match="field types differ"):
        build_gcnn((("conv", 3, 8, 3, 1, 1, False), ("save",), ("conv", 8, 16, 3, 1, 1, False), ("add",),
                    ("gpool",), ("linear", 16, 10)), "C4")
    with pytest.raises(ValueError, match="not invariant"):
        build_gcnn((("conv", 3, 8, 3, 1, 1, False), ("pool", 2), ("flatten",), ("linear", 32, 10)), "C4")
    with pytest.raises(ValueError, match="single element"):
        build_gcnn((("conv", 3, 8, 1, 1, 0, False), ("gpool",), ("linear", 8, 10)), "C4")


# ----------------------------------------------------------------------------- b) our P4 layers vs e2cnn
# e2cnn's C4 regular field orders its channels by the rotation s (0, 90, 180, 270 degrees) and its rotation
# acts on the pixel grid as torch.rot90(., s) does (counter-clockwise on screen). So the mapping is the
# identity: e2cnn channel c * 4 + s is our channel c * 4 + s, no s -> -s. (For a group conv only the relative
# order matters: any cyclic shift of s also fits; the reflection s -> -s does not, checked below.)
# kernel size -> R2Conv options: e2cnn's default basis is empty for 2x2, so that case samples one ring
# through the four pixels (radius sqrt(1/2)) with a higher frequency cutoff.
CASES = {2: dict(rings=[math.sqrt(0.5)], frequencies_cutoff=3.0), 3: {}, 4: {}}
O, C = 3, 2      # output / input fields


def e2cnn_conv(k, lifting, **kw):
    g = make_gspace("C4")
    cin = enn.FieldType(g, [g.trivial_repr if lifting else g.regular_repr] * C)
    conv = enn.R2Conv(cin, enn.FieldType(g, [g.regular_repr] * O), k, bias=False, recompute=True,
                      **{**CASES[k], **kw})
    with torch.no_grad():
        conv.weights.normal_()
    return conv, cin


def reverse_rotations(w, dim):
    """Reorder a rotation index s -> -s (mod 4) inside channel blocks of 4 along `dim`."""
    idx = torch.arange(w.shape[dim]).reshape(-1, 4)[:, [0, 3, 2, 1]].flatten()
    return w.index_select(dim, idx)


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)   # the e2cnn bases are sampled in the default dtype
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="indexing with dtype torch.uint8")   # inside e2cnn, harmless
        yield
    torch.set_default_dtype(old)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("k", sorted(CASES))
def test_e2cnn_lifting_conv_is_our_lift_weight(k):
    torch.manual_seed(k)
    conv, cin = e2cnn_conv(k, lifting=True, padding=1)
    w = conv.expand_parameters()[0].detach()               # [O * 4, C, k, k]
    base = w[0::4]                                         # the filters of output rotation 0
    assert float((lift_weight(base) - w).abs().max()) < 1e-12 * float(w.abs().max())
    assert rel(reverse_rotations(lift_weight(base), 0), w) > 1e-3      # the opposite turn does not fit
    ours = P4LiftConv(C, O, k, padding=1)
    with torch.no_grad():
        ours.weight.copy_(base)
    x = torch.randn(2, C, 9, 9)
    expected = conv(enn.GeometricTensor(x, cin)).tensor
    plain = conv.eval().export()                           # torch.nn.Conv2d with the expanded filter
    assert rel(ours(x), expected) < 1e-10
    assert rel(plain(x), expected) < 1e-10


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("k", sorted(CASES))
def test_e2cnn_group_conv_is_our_group_weight(k):
    torch.manual_seed(k)
    conv, cin = e2cnn_conv(k, lifting=False)
    w = conv.expand_parameters()[0].detach()               # [O * 4, C * 4, k, k]
    base = w.reshape(O, 4, C, 4, k, k)[:, 0]               # output rotation 0, all input rotations t
    assert float((group_weight(base) - w).abs().max()) < 1e-12 * float(w.abs().max())
    flipped = reverse_rotations(reverse_rotations(w, 0), 1)                 # s -> -s on both sides
    assert rel(group_weight(flipped.reshape(O, 4, C, 4, k, k)[:, 0]), flipped) > 1e-3
    ours = P4GroupConv(C, O, k)
    with torch.no_grad():
        ours.weight.copy_(base)
    x = torch.randn(2, C * 4, 9, 9)
    assert rel(ours(x), conv(enn.GeometricTensor(x, cin)).tensor) < 1e-10


def basis_matrix(conv):
    """Rows: the expanded filters of e2cnn's basis elements (the expansion is linear in the weights)."""
    d = conv.basisexpansion.dimension()
    return torch.stack([conv.basisexpansion(torch.eye(d)[i]).flatten() for i in range(d)]), d


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("k, kw, full", [
    (3, {}, False),                                                        # default: band-limited
    (4, {}, False),
    (2, {}, True),                                                         # (CASES[2]) one ring, every filter
    (3, dict(rings=[0.0, 1.0, math.sqrt(2.0)], frequencies_cutoff=10.0), True),   # a ring through each pixel orbit
])
def test_which_p4_filters_e2cnn_spans(k, kw, full):
    """e2cnn's default basis covers only part of the P4 group-conv filters (dimension below 4 k^2 per field
    pair), so a P4GroupConv is in general not an R2Conv; with a ring through every orbit of pixels it spans
    them all and then reproduces a random P4GroupConv exactly."""
    torch.manual_seed(0)
    g = make_gspace("C4")
    reg = enn.FieldType(g, [g.regular_repr])
    conv = enn.R2Conv(reg, reg, k, bias=False, recompute=True, **{**CASES[k], **kw})
    B, d = basis_matrix(conv)
    rank = int(torch.linalg.matrix_rank(B))
    target = group_weight(torch.randn(1, 1, 4, k, k))                    # a random P4 group-conv filter
    coef = torch.linalg.lstsq(B.T, target.flatten()[:, None]).solution[:, 0]
    residual = rel(coef @ B, target.flatten())
    print(f"k={k} {({**CASES[k], **kw}) or 'default'}: basis size {d}, rank {rank} of {4 * k * k}, residual {residual:.1e}")
    assert (rank == 4 * k * k) == full and (residual < 1e-10) == full
    if full:
        with torch.no_grad():
            conv.weights.copy_(coef)
        ours = P4GroupConv(1, 1, k)
        with torch.no_grad():
            ours.weight.copy_(target.reshape(1, 4, 1, 4, k, k)[:, 0])
        x = torch.randn(2, 4, 9, 9)
        assert rel(ours(x), conv(enn.GeometricTensor(x, reg)).tensor) < 1e-10
    else:
        assert rank < 4 * k * k and residual > 1e-3


# ----------------------------------------------------------------------------- c) parameter counts
def test_parameter_counts():
    counts = {g: count_parameters(build_gcnn(SPEC, g)) for g in ("C4", "D8")}
    counts["plain"] = count_parameters(PlainCNN(SPEC))
    print("parameters of the example spec:", counts)
    assert counts == {"C4": 27338, "D8": 26986, "plain": 40618}   # measured with e2cnn 0.2.3

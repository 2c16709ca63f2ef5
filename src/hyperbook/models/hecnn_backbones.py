"""The HE-CNN document's colour-image models: CIFAR-10/100 (Table 3) and STL-10 (Table 4).

Three main networks, written as `hecnn.MainNet` layer specs so that one
description serves the plain CNN, the hypernetwork models (HE-CNN, HE-CNN-L;
the D8 versions average over D8 / Z4 with `D4nHECNN`) and the G-CNN baselines
(the same spec run by e2cnn, `hecnn_gcnn.build_gcnn`):

- `residual_net`: appendix C.3's "2 residual blocks of 32 channels, filter
  size 3, with additional pooling and batch normalisation". The document gives
  no more; our reading: a 3x3 stem, then two post-activation residual blocks
  (conv-BN-ReLU-conv-BN, identity shortcut, ReLU), each followed by 2x2 max
  pooling, global average pooling and one linear layer.
- `laine_aila_13`: the 13-layer CNN of Laine & Aila (2017): 3x(128 3x3), pool,
  dropout, 3x(256 3x3), pool, dropout, 512 3x3 valid, 256 1x1, 128 1x1, global
  average pooling, linear; leaky ReLU 0.1. Batch norm after every convolution
  stands in for their weight normalisation (both are normalisations the
  hypernetwork does not generate), and their input Gaussian noise is left out.
- `wide_resnet`: WRN-d-k of Zagoruyko & Komodakis (pre-activation basic
  blocks; WRN16/8 = 2 blocks per stage, widths 128, 256, 512).

One choice differs from the usual networks and holds for all three: a 2x
down-sampling is a stride-1 convolution followed by 2x2 average pooling, not a
stride-2 convolution. A stride-2 3x3 convolution on an even map samples a grid
that a quarter turn does not map onto itself, so no network containing one can
be exactly Z4-equivariant; 2x2 pooling of an even map can.

The last adaptive average pool is to 1x1 in the plain and G-CNN networks and
to 2x2 in the hypernetwork models' main networks (C.3: pool to 2 "to demonstrate
our parameter generation for linear layers"; the linear combiner then has a
map to permute), with a linear layer of 4x the inputs.

`width` scales every hidden channel count, the NEP generator's too (smoke
runs use small widths; 1 is the document's size).
"""
from __future__ import annotations

import math

from ..errors import UnknownChoiceError
from .hecnn import D4nHECNN, HyperCNN, StaticNet


def _c(channels: int, width: float) -> int:
    return max(2, int(round(channels * width)))


def _conv(cin, cout, k=3, pad=1):
    return ("conv", cin, cout, k, 1, pad, False)    # no bias: batch norm follows every convolution


def residual_net(classes: int = 10, width: float = 1.0, in_channels: int = 3, pool: int = 1):
    c = _c(32, width)
    spec = [_conv(in_channels, c), ("bn", c), ("relu",)]
    for _ in range(2):
        spec += [("save",), _conv(c, c), ("bn", c), ("relu",), _conv(c, c), ("bn", c), ("add",), ("relu",),
                 ("maxpool", 2)]
    return tuple(spec + [("pool", pool), ("flatten",), ("linear", c * pool * pool, classes)])


def laine_aila_13(classes: int = 10, width: float = 1.0, in_channels: int = 3, dropout: float = 0.5,
                  pool: int = 1):
    a, b, c5, c6, c7 = (_c(n, width) for n in (128, 256, 512, 256, 128))

    def block(cin, cout, k=3, pad=1):
        return [_conv(cin, cout, k, pad), ("bn", cout), ("lrelu", 0.1)]

    spec = block(in_channels, a) + block(a, a) + block(a, a) + [("maxpool", 2), ("dropout", dropout)]
    spec += block(a, b) + block(b, b) + block(b, b) + [("maxpool", 2), ("dropout", dropout)]
    spec += block(b, c5, 3, 0) + block(c5, c6, 1, 0) + block(c6, c7, 1, 0)
    return tuple(spec + [("pool", pool), ("flatten",), ("linear", c7 * pool * pool, classes)])


def wide_resnet(depth: int = 16, widen: int = 8, classes: int = 10, width: float = 1.0, in_channels: int = 3,
                pool: int = 1):
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6 n + 4, got {depth}")
    n = (depth - 4) // 6
    stem = _c(16, width)
    spec = [_conv(in_channels, stem)]
    cin = stem
    for stage, base in enumerate((16, 32, 64)):
        cout = _c(base * widen, width)
        for i in range(n):
            step = 2 if (i == 0 and stage > 0) else 1
            down = [("avgpool", 2)] if step > 1 else []
            if cin == cout:     # identity shortcut around BN-ReLU-conv-BN-ReLU-conv
                spec += [("save",), ("bn", cin), ("relu",), _conv(cin, cout)] + down + \
                        [("bn", cout), ("relu",), _conv(cout, cout), ("add",)]
            else:               # projection shortcut from the pre-activated input
                spec += [("bn", cin), ("relu",), ("save",), _conv(cin, cout)] + down + \
                        [("bn", cout), ("relu",), _conv(cout, cout), ("shortcut", cin, cout, step)]
            cin = cout
    return tuple(spec + [("bn", cin), ("relu",), ("pool", pool), ("flatten",), ("linear", cin * pool * pool, classes)])


# ----------------------------------------------------------------------------- NEP generators (appendix C.3)
# (cin, cout, k, stride) per convolution; batch norm and ReLU after each, 2x2 max pooling after the first
# `maxpool_after` convolutions; rank r of the light heads
GENERATORS = {
    "cifar": dict(convs=((3, 32, 3, 1), (32, 64, 3, 1), (64, 64, 3, 2)), maxpool_after=2, rank=14),
    "stl10": dict(convs=((3, 64, 3, 1), (64, 128, 3, 1), (128, 128, 3, 1), (128, 64, 3, 2)), maxpool_after=3,
                  rank=20),
}

ARCHS = {"residual": ("cifar", 32), "laine13": ("cifar", 32), "wrn16_8": ("stl10", 96)}
VARIANTS = ("cnn", "z4_gcnn", "d8_gcnn", "z4_hecnn", "z4_hecnn_l", "d8_hecnn", "d8_hecnn_l")


HYPER_POOL = 2     # C.3: the hypernetwork models' main networks pool to 2x2, not 1x1


def spec_for(arch: str, classes: int, width: float = 1.0, pool: int = 1):
    if arch == "residual":
        return residual_net(classes, width, pool=pool)
    if arch == "laine13":
        return laine_aila_13(classes, width, pool=pool)
    if arch == "wrn16_8":
        return wide_resnet(16, 8, classes, width, pool=pool)
    raise UnknownChoiceError("colour-image architecture", arch, ARCHS)


def build_backbone(arch: str, variant: str, classes: int = 10, width: float = 1.0):
    """One model of Table 3 / Table 4: `arch` in ARCHS, `variant` in VARIANTS.

    G-CNN variants come from e2cnn (regular fields; see `hecnn_gcnn`). The D8
    hypernetwork models average the Z4 model's logits over D8 / Z4 (45-degree
    turns and mirrors, section 4.4); bilinear 45-degree turns fill with 0, the
    dataset mean after normalisation.
    """
    if variant not in VARIANTS:
        raise UnknownChoiceError("Table 3/4 model variant", variant, VARIANTS)
    data, size = ARCHS[arch] if arch in ARCHS else (None, None)
    spec = spec_for(arch, classes, width, pool=HYPER_POOL if "hecnn" in variant else 1)
    if variant == "cnn":
        return StaticNet(spec, in_size=size)
    if variant.endswith("gcnn"):
        from .hecnn_gcnn import build_gcnn
        return build_gcnn(spec, "C4" if variant.startswith("z4") else "D8", in_channels=3)
    gen = GENERATORS[data]
    convs = tuple((cin if j == 0 else _c(cin, width), _c(cout, width), k, stride)
                  for j, (cin, cout, k, stride) in enumerate(gen["convs"]))
    light = variant.endswith("_l")
    model = HyperCNN(spec, convs, "pieces", light=light, rank=gen["rank"], gen_pool=1, head_bias=not light,
                     in_size=size, gen_batch_norm=True, gen_maxpool_after=gen["maxpool_after"])
    return D4nHECNN(model, n=2, fill=0.0) if variant.startswith("d8") else model


def generated_numbers(model) -> int:
    """How many numbers the hypernetwork generates per image (all layers' pieces and biases)."""
    inner = model.model if isinstance(model, D4nHECNN) else model
    return sum(math.prod(part) + nb for _, _, part, nb in inner.layout)

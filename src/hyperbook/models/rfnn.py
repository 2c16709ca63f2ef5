"""Structured receptive field networks (thesis ch. 3): the MNIST RFNN, Network in Network and RFNiN.

Every model takes ``conv=`` one of

* ``'rf'``    -- RFConv2d: fixed Gaussian-derivative basis then a learned 1x1 recombination,
* ``'pixel'`` -- the plain CNN with the same kernel sizes and channel counts (nn.Conv2d),
* ``'free'``  -- the "refactorised" network of thesis table 2: the same factorisation with a
  freely learned basis of the same size.

so that a comparison changes the spatial filter parameterisation and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import UnknownChoiceError
from ..layers.gaussian_basis import RFConv2d, basis_orders, default_size, multiscale_sigmas
from ..layers.lrn import BandedLRN

CONVS = ("rf", "pixel", "free")


def spatial_conv(conv: str, in_ch: int, out_ch: int, *, order: int, sigmas, size: int | None = None,
                 stride: int = 1, padding: int | str = "same", alpha_init: str = "kaiming") -> nn.Module:
    """One spatial layer in the chosen parameterisation; 'pixel' uses the RF layer's kernel size."""
    sigmas = (sigmas,) if isinstance(sigmas, (int, float)) else tuple(sigmas)
    size = default_size(max(sigmas)) if size is None else size
    pad = size // 2 if padding == "same" else padding
    if conv == "pixel":
        return nn.Conv2d(in_ch, out_ch, size, stride=stride, padding=pad, bias=False)
    if conv in ("rf", "free"):
        return RFConv2d(in_ch, out_ch, order, sigmas, size=size, stride=stride, padding=pad,
                        basis="gaussian" if conv == "rf" else "free", alpha_init=alpha_init)
    raise UnknownChoiceError("conv", conv, CONVS)


# ----------------------------------------------------------------------------- MNIST RFNN
class RFNN(nn.Module):
    """The RFNN of thesis section 3.4.2 as the official code (jhjacobsen/RFNN) builds it:

    three spatial layers of 64 effective filters -- layer 1: basis up to order 3 (10 filters),
    sigma 1.5, 11x11; layers 2 and 3: order 2 (6 filters), sigma 1, 7x7; no biases --
    each followed by ReLU, max-pool 3/2, LRN(n 9, alpha 1e-4, beta 0.75, k 2) and dropout 0.2,
    then dropout 0.7 and a 3136 -> 10 linear layer. 3136 = 64 x 7 x 7 fixes two poolings on a
    28x28 input, so the third layer is not pooled (the facts do not say which one is skipped).
    ``conv='pixel'`` is the same architecture as a plain CNN (the thesis's comparison).
    The LRN is `BandedLRN` (the same function as nn.LocalResponseNorm, faster on the CPU);
    ``banded_lrn=False`` builds torch's, the reference for tests and timings.
    """

    def __init__(self, conv: str = "rf", width: int = 64, n_classes: int = 10, alpha_init: str = "uniform",
                 orders=(3, 2, 2), sigmas=(1.5, 1.0, 1.0), sizes=(11, 7, 7), pools=(True, True, False),
                 dropout=(0.2, 0.7), in_ch: int = 1, in_size: int = 28, banded_lrn: bool = True):
        super().__init__()
        layers, c = [], in_ch
        for order, sigma, size, pool in zip(orders, sigmas, sizes, pools):
            layers += [spatial_conv(conv, c, width, order=order, sigmas=sigma, size=size, alpha_init=alpha_init),
                       nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(3, 2, padding=1))
            lrn = BandedLRN if banded_lrn else nn.LocalResponseNorm
            layers += [lrn(9, alpha=1e-4, beta=0.75, k=2.0), nn.Dropout(dropout[0])]
            c = width
        self.features = nn.Sequential(*layers)
        side = in_size
        for pool in pools:
            side = (side + 1) // 2 if pool else side
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout[1]), nn.Linear(width * side * side, n_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


# ----------------------------------------------------------------------------- Network in Network
@dataclass(frozen=True)
class NiNStage:
    """One NiN stage: a spatial layer (kernel, stride, channels) then 1x1 'cccp' layers, then pooling."""
    size: int
    channels: int
    cccp: tuple
    stride: int = 1
    pool: str = "max"          # 'max' | 'avg' | 'none' | 'global'
    dropout: float = 0.0


# Caffe model-zoo Network in Network for ImageNet (Lin et al.): the thesis's baseline of tables 1, 2, 4.
NIN_IMAGENET = (NiNStage(11, 96, (96, 96), stride=4), NiNStage(5, 256, (256, 256)),
                NiNStage(3, 384, (384, 384), dropout=0.5), NiNStage(3, 1024, (1024, -1), pool="global"))
# The RFNiN-v2 of table 4: one stage deeper and wider, [128/128/384/512/1000].
RFNIN_V2_IMAGENET = (NiNStage(11, 128, (128, 128), stride=4), NiNStage(5, 128, (128, 128)),
                     NiNStage(3, 384, (384, 384)), NiNStage(3, 512, (512, 512), dropout=0.5),
                     NiNStage(3, 1000, (1000, -1), pool="global"))
# NiN for CIFAR (Lin et al.): 192-160-96 / 192-192-192 / 192-192-classes.
NIN_CIFAR = (NiNStage(5, 192, (160, 96), dropout=0.5), NiNStage(5, 192, (192, 192), pool="avg", dropout=0.5),
             NiNStage(3, 192, (192, -1), pool="global"))
# The RFNiN for CIFAR (thesis 3.4.2): "one basis layer, two 1x1 layers and one pooling layer less"
# than the ImageNet model (4 basis layers, 8 1x1 layers, 3 max-poolings + global pooling), so 3 basis
# layers, 6 1x1 layers (the last one maps to the classes), 2 max-poolings + global pooling; 192 units
# in every other 1x1 layer.
RFNIN_CIFAR = (NiNStage(5, 192, (192, 192), dropout=0.5), NiNStage(5, 192, (192, 192), dropout=0.5),
               NiNStage(3, 192, (192, -1), pool="global"))
# A small NiN for 28x28 stand-in experiments (same pattern, fewer channels).
NIN_SMALL = (NiNStage(5, 48, (48,), dropout=0.25), NiNStage(5, 64, (64,), dropout=0.25),
             NiNStage(3, 96, (-1,), pool="global"))


class NiN(nn.Module):
    """Network in Network with a chosen spatial parameterisation per stage.

    conv: 'pixel' (NiN), 'rf' (RFNiN) or 'free' (refactorised NiN), or a tuple of one per stage
    (e.g. ('free', 'pixel', 'pixel', 'pixel') = "NiN-refactor layer 1").
    order: the basis order of every RF stage. n_scales: 1 gives sigma = 1 everywhere (table 1
    rows 1-4); n > 1 gives sigma = 2^s, s = 0..n-1 in the first stage, dropping the lowest scale
    in each later stage (section 3.3.4; at least the top scale is kept). RF kernels use the
    stage's size or the basis's +-3 sigma support, whichever is larger... unless `rf_size`
    is 'stage', which keeps the pixel kernel size (then wide scales are cut off).
    A -1 in a stage's cccp means "the number of classes".
    """

    def __init__(self, n_classes: int, stages=NIN_IMAGENET, conv="pixel", order: int = 3, n_scales: int = 1,
                 in_ch: int = 3, rf_size: str = "stage", alpha_init: str = "kaiming"):
        super().__init__()
        convs = (conv,) * len(stages) if isinstance(conv, str) else tuple(conv)
        if len(convs) != len(stages):
            raise ValueError(f"{len(convs)} conv kinds for {len(stages)} stages")
        blocks, c = [], in_ch
        self.stage_sigmas = []
        for k, (st, kind) in enumerate(zip(stages, convs)):
            sigmas = multiscale_sigmas(n_scales, min(k, n_scales - 1)) if n_scales > 1 else (1.0,)
            self.stage_sigmas.append(sigmas)
            size = st.size if rf_size == "stage" or kind == "pixel" else max(st.size, default_size(max(sigmas)))
            blocks += [spatial_conv(kind, c, st.channels, order=order, sigmas=sigmas, size=size, stride=st.stride,
                                    alpha_init=alpha_init), nn.ReLU()]
            c = st.channels
            for out in st.cccp:
                out = n_classes if out == -1 else out
                blocks += [nn.Conv2d(c, out, 1), nn.ReLU()]
                c = out
            if st.pool == "max":
                blocks.append(nn.MaxPool2d(3, 2, padding=1))
            elif st.pool == "avg":
                blocks.append(nn.AvgPool2d(3, 2, padding=1))
            elif st.pool == "global":
                blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            if st.dropout:
                blocks.append(nn.Dropout(st.dropout))
        if c != n_classes:
            raise ValueError(f"the last 1x1 layer has {c} channels, not n_classes={n_classes}")
        # the final ReLU before global pooling is NiN's (Caffe) choice; keep it
        self.body = nn.Sequential(*blocks)

    def forward(self, x):
        return self.body(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_counts(model: nn.Module) -> dict:
    """{'spatial': k x k (or RF basis) layers, 'one_by_one': 1x1 convolutions, 'pool': pooling layers}."""
    spatial = sum(isinstance(m, RFConv2d) or (isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)
                                              and not _inside_rf(model, m)) for m in model.modules())
    one = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and not _inside_rf(model, m)
              for m in model.modules())
    pool = sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for m in model.modules())
    return {"spatial": spatial, "one_by_one": one, "pool": pool}


def _inside_rf(model: nn.Module, module: nn.Module) -> bool:
    return any(module is sub for rf in model.modules() if isinstance(rf, RFConv2d) for sub in rf.modules())


def spatial_filter_count(model: nn.Module) -> int:
    """The thesis's '2D filters' column: basis filters of RF layers, k x k kernels of pixel layers."""
    n = 0
    for m in model.modules():
        if isinstance(m, RFConv2d):
            n += m.n_basis
        elif isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1):
            n += m.in_channels * m.out_channels // m.groups
    return n


def n_basis(order: int, n_scales: int = 1) -> int:
    return len(basis_orders(order)) * n_scales

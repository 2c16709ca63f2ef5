"""i-RevNet (thesis ch. 6): an invertible network that discards no information until the classifier.

Pieces, in the thesis's notation (eq. 39, Fig. 16, 17):

* ``SpaceToDepth`` (Psi, the operators S_j): an invertible spatial down-sampling
  that moves each b x b patch into b^2 channels (the inverse of the sub-pixel
  "pixel shuffle"); a pure permutation of the coefficients.
* ``Splitter`` (S~): an initial space-to-depth, then (injective variant) zero
  channels appended, then a split of the channels into the pair (x_0, x~_0).
  Its left inverse S~+ drops the padded channels; for the bijective variant it
  is the exact inverse.
* ``IRevBlock``: x_{j+1} = S x~_j, x~_{j+1} = S x_j + F(x~_j), and its inverse
  x~_j = S^-1 x_{j+1}, x_j = S^-1 (x~_{j+1} - F(x~_j)). As in the authors' code
  the bottleneck F carries the block's stride (its first convolution is
  strided) and S is applied to both halves, so shapes agree; eq. 39 writes the
  stride-1 case.
* ``IRevNet``: S~, the blocks, the merge M~ (channel concatenation), then the
  classifier head (BN, ReLU, spatial mean, linear) on Phi x.

``memory_saving=True`` trains without keeping the blocks' activations: the
forward pass of the block stack runs without a graph, and the backward pass
rebuilds each block's input from its output with the block's inverse, then
recomputes that one block with a graph (as RevNets do).

Baselines of matching depth: ``ResNet`` (pre-activation bottleneck residual
blocks with strided convolutions and projection shortcuts) and ``RevNet``
(reversible two-function blocks y1 = x1 + F(x2), y2 = x2 + G(y1) inside each
stage; the down-sampling blocks between stages are ordinary, non-invertible
residual blocks, as in Gomez et al. 2017).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import BookError, UnknownChoiceError


# ----------------------------------------------------------------------------- operators
def space_to_depth(x: torch.Tensor, block: int) -> torch.Tensor:
    """[N, C, H, W] -> [N, C*b*b, H/b, W/b]; channel c*b*b + i*b + j holds pixel (b*h + i, b*w + j) of c."""
    if block == 1:
        return x
    h, w = x.shape[-2:]
    if h % block or w % block:
        raise BookError(f"space-to-depth with block {block} needs height and width divisible by {block}, "
                        f"got {h}x{w}; pad or crop the input")
    return F.pixel_unshuffle(x, block)


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """The inverse of `space_to_depth` (the sub-pixel shuffle)."""
    if block == 1:
        return x
    if x.shape[1] % (block * block):
        raise BookError(f"depth-to-space with block {block} needs channels divisible by {block * block}")
    return F.pixel_shuffle(x, block)


class SpaceToDepth(nn.Module):
    """Psi: invertible down-sampling by `block` in each spatial direction (Fig. 17)."""

    def __init__(self, block: int = 2):
        super().__init__()
        self.block = int(block)

    def forward(self, x):
        return space_to_depth(x, self.block)

    def inverse(self, y):
        return depth_to_space(y, self.block)

    def extra_repr(self):
        return f"block={self.block}"


def split(x: torch.Tensor):
    """Channels in two equal halves (the pair (x_j, x~_j))."""
    c = x.shape[1]
    if c % 2:
        raise BookError(f"cannot split {c} channels into two equal halves")
    return x[:, : c // 2], x[:, c // 2:]


def merge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """M~: concatenate the pair along channels."""
    return torch.cat([a, b], dim=1)


class Splitter(nn.Module):
    """S~: space-to-depth by `block`, zero channels appended up to `out_channels`, split into halves.

    With out_channels == in_channels * block^2 it is a bijection (variant b);
    with more it is an injective embedding (variant a) whose left inverse
    `inverse` drops the appended channels.
    """

    def __init__(self, in_channels: int, block: int, out_channels: int):
        super().__init__()
        self.in_channels, self.block, self.out_channels = in_channels, block, out_channels
        self.pad = out_channels - in_channels * block * block
        if self.pad < 0 or out_channels % 2:
            raise BookError(f"S~ needs an even out_channels >= in_channels * block^2 = "
                            f"{in_channels * block * block}, got {out_channels}")
        self.psi = SpaceToDepth(block)

    @property
    def injective_only(self) -> bool:
        return self.pad > 0

    def forward(self, x):
        y = self.psi(x)
        if self.pad:
            y = torch.cat([y, y.new_zeros(y.shape[0], self.pad, *y.shape[2:])], dim=1)
        return split(y)

    def inverse(self, pair):
        """S~+ (the left inverse; the inverse when bijective)."""
        y = merge(*pair)
        if self.pad:
            y = y[:, : y.shape[1] - self.pad]
        return self.psi.inverse(y)

    def padded_part(self, pair) -> torch.Tensor:
        """The coefficients S~+ ignores (zero on the range of S~)."""
        y = merge(*pair)
        return y[:, y.shape[1] - self.pad:]

    def extra_repr(self):
        return f"in={self.in_channels}, block={self.block}, out={self.out_channels}, zero channels={self.pad}"


# ----------------------------------------------------------------------------- blocks
# One reading of the bottleneck kernels for every i-RevNet (and baseline) here: the thesis's text,
# "kernel sizes ... respectively 1 x 1, 3 x 3, 1 x 1" (sec. 6.3.2). The authors' public code uses 3 x 3
# three times; with it (b) would have 125M parameters instead of the thesis's 29M.
KERNELS = (1, 3, 1)


def bottleneck(in_ch: int, hidden: int, out_ch: int, stride: int, first: bool, dropout: float,
               kernels=KERNELS) -> nn.Sequential:
    """F: [BN-ReLU] conv(in -> hidden, stride) BN-ReLU conv(hidden) dropout BN-ReLU conv(-> out); no biases."""
    k1, k2, k3 = kernels
    layers = [] if first else [nn.BatchNorm2d(in_ch), nn.ReLU()]
    layers += [nn.Conv2d(in_ch, hidden, k1, stride=stride, padding=k1 // 2, bias=False),
               nn.BatchNorm2d(hidden), nn.ReLU(),
               nn.Conv2d(hidden, hidden, k2, padding=k2 // 2, bias=False)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers += [nn.BatchNorm2d(hidden), nn.ReLU(),
               nn.Conv2d(hidden, out_ch, k3, padding=k3 // 2, bias=False)]
    return nn.Sequential(*layers)


class IRevBlock(nn.Module):
    """One i-RevNet block on the pair (x, x~): (x, x~) -> (S x~, S x + F x~); `inverse` undoes it exactly."""

    def __init__(self, in_half: int, out_half: int, stride: int, first: bool = False, mult: float = 4,
                 dropout: float = 0.0, kernels=KERNELS):
        super().__init__()
        if out_half != in_half * stride * stride:
            raise BookError(f"an i-RevNet block with stride {stride} maps {in_half} channels per half to "
                            f"{in_half * stride * stride}, not {out_half}")
        hidden = max(1, int(out_half / mult))
        self.stride = stride
        self.psi = SpaceToDepth(stride)
        self.F = bottleneck(in_half, hidden, out_half, stride, first, dropout, kernels)

    def forward(self, pair):
        x, xt = pair
        return self.psi(xt), self.psi(x) + self.F(xt)

    def inverse(self, pair):
        a, b = pair
        xt = self.psi.inverse(a)
        return self.psi.inverse(b - self.F(xt)), xt


# ----------------------------------------------------------------------------- memory-saving backward
@contextlib.contextmanager
def _bn_stats_frozen(module: nn.Module):
    """Recomputing a block in training mode must not update BatchNorm running statistics a second time."""
    saved = [(m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    try:
        yield
    finally:
        for m, mean, var, count in saved:
            m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)


def _rng_devices(t: torch.Tensor):
    return [t.device] if t.is_cuda else []


class _ReversibleStack(torch.autograd.Function):
    """Forward through invertible blocks keeping no activations; backward rebuilds them from the outputs."""

    @staticmethod
    def forward(ctx, x, xt, blocks, n_params, *params):
        ctx.blocks, ctx.n_params = blocks, n_params
        ctx.rng = []
        with torch.no_grad():
            for block in blocks:
                ctx.rng.append((torch.get_rng_state(),
                                torch.cuda.get_rng_state(x.device) if x.is_cuda else None))
                x, xt = block((x, xt))
        x, xt = x.detach(), xt.detach()
        ctx.save_for_backward(x, xt)
        return x, xt

    @staticmethod
    def backward(ctx, ga, gb):
        a, b = ctx.saved_tensors
        blocks = ctx.blocks
        for block, (cpu_state, cuda_state) in zip(reversed(blocks), reversed(ctx.rng)):
            params = [p for p in block.parameters() if p.requires_grad]
            with torch.random.fork_rng(devices=_rng_devices(a)), _bn_stats_frozen(block):
                torch.set_rng_state(cpu_state)
                if cuda_state is not None:
                    torch.cuda.set_rng_state(cuda_state, a.device)
                xt = block.psi.inverse(a).detach().requires_grad_(True)
                with torch.enable_grad():
                    f = block.F(xt)                  # same mask, same batch statistics as in forward
                x = block.psi.inverse(b - f.detach())    # the block's input, rebuilt
                grads = torch.autograd.grad(f, [xt] + params, gb, allow_unused=True)
                del f
            g_xt = grads[0] + block.psi.inverse(ga)  # S is a permutation: its adjoint is its inverse
            g_x = block.psi.inverse(gb)
            # accumulate into .grad block by block, so no more than one block's gradients are held
            # here at a time (returning them all at the end would keep every block's at once)
            for p, g in zip(params, grads[1:]):
                if g is not None:
                    if p.grad is None:
                        p.grad = g.detach()
                    else:
                        p.grad.add_(g)
            del grads
            a, b, ga, gb = x.detach(), xt.detach(), g_x, g_xt
        return (ga, gb, None, None, *([None] * ctx.n_params))


# ----------------------------------------------------------------------------- the network
@dataclass(frozen=True)
class IRevNetSpec:
    """One i-RevNet configuration (channels are per half, as in the authors' code)."""
    in_channels: int
    init_block: int                 # space-to-depth factor of S~
    blocks: tuple                   # blocks per stage
    strides: tuple                  # stride of each stage's first block (1 or 2)
    channels: tuple                 # channels per half in each stage
    mult: float = 4.0               # bottleneck width = channels / mult
    dropout: float = 0.0
    n_classes: int = 1000
    kernels: tuple = KERNELS
    note: str = ""

    @property
    def start_channels(self) -> int:
        """Channels of S~'s output (both halves)."""
        return 2 * self.channels[0] // (self.strides[0] ** 2)


class IRevNet(nn.Module):
    def __init__(self, spec: IRevNetSpec, memory_saving: bool = False):
        super().__init__()
        self.spec = spec
        self.memory_saving = memory_saving
        self.splitter = Splitter(spec.in_channels, spec.init_block, spec.start_channels)
        blocks, in_half, first = [], spec.start_channels // 2, True
        for n, stride, ch in zip(spec.blocks, spec.strides, spec.channels):
            for k in range(n):
                s = stride if k == 0 else 1
                blocks.append(IRevBlock(in_half, ch, s, first=first, mult=spec.mult, dropout=spec.dropout,
                                        kernels=spec.kernels))
                in_half, first = ch, False
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = 2 * in_half
        self.bn = nn.BatchNorm2d(self.out_channels)
        self.linear = nn.Linear(self.out_channels, spec.n_classes)

    @property
    def injective_only(self) -> bool:
        return self.splitter.injective_only

    def _stack(self, pair):
        if self.memory_saving and self.training and torch.is_grad_enabled():
            params = [p for b in self.blocks for p in b.parameters() if p.requires_grad]
            return _ReversibleStack.apply(pair[0], pair[1], list(self.blocks), len(params), *params)
        for block in self.blocks:
            pair = block(pair)
        return pair

    def features(self, x):
        """Phi x: the merged output of the last block (same number of coefficients as S~ x)."""
        return merge(*self._stack(self.splitter(x)))

    def features_at_depths(self, x):
        """[Phi_0 x, Phi_1 x, ..., Phi_J x]: the merged pair after S~ and after every block."""
        pair = self.splitter(x)
        out = [merge(*pair)]
        for block in self.blocks:
            pair = block(pair)
            out.append(merge(*pair))
        return out

    def head(self, phi):
        return self.linear(F.relu(self.bn(phi)).mean(dim=(2, 3)))

    def forward(self, x):
        return self.head(self.features(x))

    def inverse(self, phi):
        """Phi^-1 (Phi^+ for the injective variant): run the blocks backwards with (S^-1, -F), then S~+."""
        pair = split(phi)
        for block in reversed(self.blocks):
            pair = block.inverse(pair)
        return self.splitter.inverse(pair)


# ----------------------------------------------------------------------------- baselines
class PreActBottleneck(nn.Module):
    """ResNet block: x + F(x) with F as in the i-RevNet; strided/widening blocks use a 1x1 projection."""

    def __init__(self, in_ch, out_ch, stride, mult=4.0, dropout=0.0, kernels=KERNELS):
        super().__init__()
        self.F = bottleneck(in_ch, max(1, int(out_ch / mult)), out_ch, stride, False, dropout, kernels)
        self.shortcut = (nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
                         if (stride != 1 or in_ch != out_ch) else nn.Identity())

    def forward(self, x):
        return self.shortcut(x) + self.F(x)


class RevBlock(nn.Module):
    """RevNet block (Gomez et al. 2017): y1 = x1 + F(x2), y2 = x2 + G(y1); invertible, keeps its shape."""

    def __init__(self, ch_half, mult=4.0, dropout=0.0, kernels=KERNELS):
        super().__init__()
        hidden = max(1, int(ch_half / mult))
        self.F = bottleneck(ch_half, hidden, ch_half, 1, False, dropout, kernels)
        self.G = bottleneck(ch_half, hidden, ch_half, 1, False, dropout, kernels)

    def forward(self, x):
        x1, x2 = split(x)
        y1 = x1 + self.F(x2)
        return merge(y1, x2 + self.G(y1))

    def inverse(self, y):
        y1, y2 = split(y)
        x2 = y2 - self.G(y1)
        return merge(y1 - self.F(x2), x2)


@dataclass(frozen=True)
class BaselineSpec:
    kind: str                       # 'resnet' | 'revnet'
    in_channels: int
    stem_stride: int
    blocks: tuple                   # residual functions per stage (a RevNet block holds two: F and G)
    strides: tuple
    channels: tuple                 # total channels per stage
    mult: float = 4.0
    dropout: float = 0.0
    n_classes: int = 10
    kernels: tuple = KERNELS


class Baseline(nn.Module):
    """ResNet or RevNet: stem conv, stages, BN-ReLU, spatial mean, linear."""

    def __init__(self, spec: BaselineSpec):
        super().__init__()
        if spec.kind not in ("resnet", "revnet"):
            raise UnknownChoiceError("baseline", spec.kind, ("resnet", "revnet"))
        self.spec = spec
        c0 = spec.channels[0] // (spec.strides[0] if spec.kind == "resnet" else 1)
        self.stem = nn.Conv2d(spec.in_channels, c0, 3, stride=spec.stem_stride, padding=1, bias=False)
        layers, in_ch = [], c0
        for n, stride, ch in zip(spec.blocks, spec.strides, spec.channels):
            if spec.kind == "resnet":
                for k in range(n):
                    layers.append(PreActBottleneck(in_ch, ch, stride if k == 0 else 1, spec.mult, spec.dropout,
                                                   spec.kernels))
                    in_ch = ch
            else:
                remaining = n
                if stride != 1 or in_ch != ch:      # a non-invertible down-sampling block, as in RevNets
                    layers.append(PreActBottleneck(in_ch, ch, stride, spec.mult, spec.dropout, spec.kernels))
                    in_ch, remaining = ch, n - 1
                for _ in range((max(0, remaining) + 1) // 2):   # two residual functions per block
                    layers.append(RevBlock(ch // 2, spec.mult, spec.dropout, spec.kernels))
        self.layers = nn.Sequential(*layers)
        self.out_channels = in_ch
        self.bn = nn.BatchNorm2d(in_ch)
        self.linear = nn.Linear(in_ch, spec.n_classes)

    def features_at_depths(self, x):
        out = [self.stem(x)]
        for layer in self.layers:
            out.append(layer(out[-1]))
        return out

    def forward(self, x):
        return self.linear(F.relu(self.bn(self.layers(self.stem(x)))).mean(dim=(2, 3)))


# ----------------------------------------------------------------------------- configurations
SPECS = {
    # The authors' CIFAR example (injective): 3 channels padded with zeros to 2 x 16, blocks 18-18-18,
    # strides 1-2-2, channels per half 16-64-256, bottleneck width / 4, dropout 0.1 (kernels: the thesis's 1-3-1).
    "cifar_a": IRevNetSpec(3, 1, (18, 18, 18), (1, 2, 2), (16, 64, 256), mult=4, dropout=0.1, n_classes=10,
                           note="authors' CIFAR example: injective, 3 -> 32 channels by zero padding"),
    # A bijective CIFAR model of ours: S~ = 2x2 space-to-depth (3 -> 12 channels), dimension 3072 throughout.
    "cifar_b": IRevNetSpec(3, 2, (6, 16, 6), (1, 2, 2), (6, 24, 96), mult=1, dropout=0.1, n_classes=10,
                           note="ours: bijective, 12 x 16 x 16 -> 48 x 8 x 8 -> 192 x 4 x 4"),
    # Thesis (a): S~ down-samples 4x4 (3 -> 48 channels) and pads to 96; down-sampling at blocks 5, 9, 15
    # (layers 15, 27, 45); channels per half 48, 192, 768, 3072; 18 blocks. With the text's 1-3-1 kernels this
    # has 48.35M parameters (IMAGENET_A_PARAMETERS), not the thesis's 181M: no reading of the text
    # reproduces 181M (3-3-3 kernels give 199M), and we keep the one reading used for (b).
    "imagenet_a": IRevNetSpec(3, 4, (4, 4, 6, 4), (1, 2, 2, 2), (48, 192, 768, 3072), mult=4, n_classes=1000,
                              note="thesis (a): injective, 18 blocks, about 0.3M coefficients per layer"),
    # Thesis (b) / the authors' ImageNet command: blocks 6-16-72-6, strides 2-2-2-2, channels 24-96-384-1536,
    # S~ = 2x2 space-to-depth (3 -> 12 channels); bijective, 3 x 224^2 coefficients in every layer.
    # 1-3-1 kernels: 29.2M parameters, the thesis's 29M.
    "imagenet_b": IRevNetSpec(3, 2, (6, 16, 72, 6), (2, 2, 2, 2), (24, 96, 384, 1536), mult=4, n_classes=1000,
                              note="thesis (b): bijective, 100 blocks (300 layers)"),
    # MNIST models (inputs padded to 1 x 32 x 32), kept for the unit tests and memory probes.
    "mnist_a": IRevNetSpec(1, 2, (3, 3, 3), (1, 2, 2), (16, 64, 256), mult=4, n_classes=10,
                           note="stand-in (a): 4 -> 32 channels by zero padding at 16 x 16"),
    "mnist_b": IRevNetSpec(1, 2, (3, 3, 3), (1, 2, 2), (2, 8, 32), mult=1 / 3, n_classes=10,
                           note="stand-in (b): bijective, 4 x 16 x 16 -> 16 x 8 x 8 -> 64 x 4 x 4"),
}

# Our exact counts of the thesis's ImageNet configurations (tests pin them; Table 9: 181M and 29M)
IMAGENET_A_PARAMETERS = 48_352_360   # thesis 181M: 1-3-1 kernels in two of three convolutions cut (a) 4x
IMAGENET_B_PARAMETERS = 29_201_092   # thesis 29M

BASELINES = {
    "mnist_resnet": BaselineSpec("resnet", 1, 2, (3, 3, 3), (1, 2, 2), (16, 64, 256), mult=8),
    "mnist_revnet": BaselineSpec("revnet", 1, 2, (3, 3, 3), (1, 2, 2), (16, 64, 256), mult=4),
    # CIFAR baselines for the CIFAR-10 stand-in: the depth and widths of the authors' CIFAR i-RevNet (a)
    # (18-18-18 residual functions, 32-128-512 channels, the i-RevNet's total), stem 3x3 stride 1.
    "cifar_resnet": BaselineSpec("resnet", 3, 1, (18, 18, 18), (1, 2, 2), (32, 128, 512), mult=4),
    "cifar_revnet": BaselineSpec("revnet", 3, 1, (18, 18, 18), (1, 2, 2), (32, 128, 512), mult=4),
    # ImageNet-scale baselines are not built here: the thesis compares with the published
    # ResNet-50 (26M) and RevNet-56 (28M) and reports their numbers only.
}

MODELS = tuple(SPECS) + tuple(BASELINES)


def build(name: str, *, n_classes: int | None = None, memory_saving: bool = False,
          blocks: tuple | None = None) -> nn.Module:
    """An i-RevNet configuration or a baseline by name (see SPECS, BASELINES).

    `blocks` replaces the blocks per stage (a shallower copy with the same widths and strides, for
    CPU-sized runs); it must give one count per stage.
    """
    changes = {} if n_classes is None else {"n_classes": n_classes}
    if blocks:
        base = SPECS.get(name) or BASELINES.get(name)
        if base is not None and len(tuple(blocks)) != len(base.blocks):
            raise ValueError(f"blocks={tuple(blocks)} for {name!r} must give one count per stage "
                             f"({len(base.blocks)} stages, the document's {base.blocks})")
        changes["blocks"] = tuple(int(b) for b in blocks)
    if name in SPECS:
        spec = IRevNetSpec(**{**SPECS[name].__dict__, **changes})
        return IRevNet(spec, memory_saving=memory_saving)
    if name in BASELINES:
        spec = BaselineSpec(**{**BASELINES[name].__dict__, **changes})
        return Baseline(spec)
    raise UnknownChoiceError("i-RevNet chapter model", name, MODELS)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_count_of(name: str) -> int:
    """Parameters of a configuration without allocating it (built on the meta device)."""
    with torch.device("meta"):
        return parameter_count(build(name))


def relative_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ||x - y|| / ||x||."""
    return (x - y).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)

"""Group-equivariant CNN (G-CNN) baselines built with e2cnn, for the HE-CNN chapter's CIFAR / STL-10 tables.

`build_gcnn(spec, group)` reads the same kind of layer spec as the chapter's
plain main networks (a tuple of tuples, see `build_gcnn`) and builds it with
e2cnn's steerable layers over regular feature fields of C4 (rotations by 90
degrees, `gspaces.Rot2dOnR2(4)`) or D8 (8 rotations and reflections, 16
elements, `gspaces.FlipRot2dOnR2(8)`). The input is `in_channels` trivial fields (an ordinary
image); the features are group-pooled and averaged over space before the
linear head, so the logits are invariant (exactly, on the pixel grid, to the
quarter turns and mirrors in the group).

Three things about e2cnn 0.2.3 (with NumPy 2 and this torch) matter here:

* it predates NumPy 2: dihedral bases call `np.array(x, copy=False)` on Python
  scalars (now an error) and hash with `ndarray.tostring` (removed).
  `_patch_e2cnn_for_numpy2` gives that one function 1-d arrays and those
  `__hash__` methods `tobytes` (identical filters; only on NumPy 2).
* sampled bases are built with `torch.Tensor(ndarray)`, i.e. in the default
  dtype, and shared between layers and models through a global cache keyed
  without the dtype: `.double()` on one model converts the basis of every other
  model, which then fails in float32. We build every conv with
  `recompute=True` (its own basis) and under the requested dtype (a float64
  model gets a float64 basis rather than a float32 one cast up).
* under this torch, building a conv whose sampled basis has a single element
  fails inside e2cnn (uint8 mask assignment); that rules out the trivial group
  (a plain CNN) and 1x1 lifting convs. `_conv` turns the crash into a clear error.
"""
from __future__ import annotations

import contextlib
import math
import re
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnknownChoiceError

from e2cnn import gspaces
from e2cnn import nn as enn

GROUPS = ("C4", "D8")   # any 'C<n>' (n >= 2) / 'D<n>' is accepted; exact grid symmetry only for subgroups of D4


def _patch_e2cnn_for_numpy2():
    """Make e2cnn 0.2.3's kernel bases work under NumPy 2 (see module docstring)."""
    from e2cnn.kernels import irreps_basis
    if hasattr(np.ndarray, "tostring") or getattr(irreps_basis.psichi, "_numpy2_safe", False):
        return                                   # NumPy 1, or patched already
    original = irreps_basis.psichi

    def psichi(theta, s, k=1, gamma=0.0, out=None):
        # the original reshapes s, k, gamma with np.array(..., copy=False); 1-d arrays need no copy
        return original(theta, s=np.atleast_1d(s), k=np.atleast_1d(k), gamma=np.atleast_1d(gamma), out=out)

    def basis_hash(self):
        # as the original, with tobytes for tostring (equal bases still hash equally)
        return (hash(self.in_irrep) + hash(self.out_irrep) + hash(np.asarray(self.mu).tobytes())
                + hash(np.asarray(self.gamma).tobytes()))

    psichi._numpy2_safe = True
    irreps_basis.psichi = psichi
    for name in ("R2FlipsSolution", "R2ContinuousRotationsSolution", "R2FlipsDiscreteRotationsSolution",
                 "R2FlipsContinuousRotationsSolution"):
        getattr(irreps_basis, name).__hash__ = basis_hash


_patch_e2cnn_for_numpy2()


@contextlib.contextmanager
def _default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def _quiet_e2cnn():
    # e2cnn indexes with a uint8 mask while sampling bases (torch deprecation warning); harmless
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="indexing with dtype torch.uint8")
        yield


def make_gspace(group: str):
    """'C<n>' -> Rot2dOnR2(n) (n >= 2), 'D<n>' -> FlipRot2dOnR2(n) (2n elements)."""
    m = re.fullmatch(r"([CD])(\d+)", group)
    if m and int(m.group(2)) >= (2 if m.group(1) == "C" else 1):
        n = int(m.group(2))
        return gspaces.Rot2dOnR2(N=n) if m.group(1) == "C" else gspaces.FlipRot2dOnR2(N=n)
    raise UnknownChoiceError("G-CNN group", group, GROUPS)


def n_fields(channels: int, group_order: int) -> int:
    """Regular fields standing in for `channels` plain channels: max(1, round(c / sqrt(|G|))).

    A regular field has |G| channels, so the layer is sqrt(|G|) times wider than the
    plain one, while a regular -> regular conv has about |G| times fewer free
    parameters per channel pair than a plain conv of that width: the parameter
    count stays near the plain CNN's (the usual choice, e.g. Weiler & Cesa 2019).
    """
    return max(1, round(channels / math.sqrt(group_order)))


def _conv(in_type, out_type, k, **kw):
    """R2Conv with its own basis (recompute=True, see the module docstring)."""
    try:
        counting = not _INITIALIZE[-1]     # counting only: share cached bases too (no forward, no dtype issue)
        return enn.R2Conv(in_type, out_type, k, recompute=not counting, initialize=not counting, **kw)
    except RuntimeError as e:
        if "masked_fill_ only supports boolean masks" not in str(e):
            raise
        raise ValueError(f"e2cnn 0.2.3 cannot build this {k}x{k} conv under torch {torch.__version__}: its "
                         "steerable basis has a single element (trivial group, 1x1 lifting conv)") from e


class PointwiseLeakyReLU(enn.EquivariantModule):
    """Leaky ReLU applied channel by channel; e2cnn's PointwiseNonLinearity offers relu/elu/sigmoid/tanh only.

    A pointwise map commutes with permutation representations (regular fields), so it is equivariant.
    """

    def __init__(self, in_type, negative_slope: float = 0.01):
        super().__init__()
        for r in in_type.representations:
            if "pointwise" not in r.supported_nonlinearities:
                raise ValueError(f"representation {r.name!r} does not support pointwise non-linearities")
        self.in_type = self.out_type = in_type
        self.negative_slope = negative_slope

    def forward(self, x):
        assert x.type == self.in_type
        return enn.GeometricTensor(F.leaky_relu(x.tensor, self.negative_slope), self.out_type)

    def evaluate_output_shape(self, input_shape):
        return input_shape


def group_pool(x: torch.Tensor, field_size: int) -> torch.Tensor:
    """Max over each regular field's channels ([B, F * |G|, H, W] -> [B, F, H, W]).

    The same operation as e2cnn's GroupPooling, which however writes into a
    float32 buffer whatever the input dtype (it would spoil float64 checks).
    """
    b, c, h, w = x.shape
    return x.reshape(b, c // field_size, field_size, h, w).amax(2)


class GCNN(nn.Module):
    """A layer spec run with e2cnn modules; call it on plain tensors [B, C, H, W], get logits [B, n_classes]."""

    def __init__(self, spec, group: str = "C4", in_channels: int = 3, dtype: torch.dtype | None = None):
        super().__init__()
        self.spec, self.group = tuple(spec), group
        self.gspace = make_gspace(group)
        self.order = self.gspace.fibergroup.order()
        self.in_type = enn.FieldType(self.gspace, [self.gspace.trivial_repr] * in_channels)
        dtype = dtype or torch.get_default_dtype()
        with _default_dtype(dtype), _quiet_e2cnn():
            self.layers = nn.ModuleList(self._build(in_channels))
        self.to(dtype)

    def _regular(self, channels):
        return enn.FieldType(self.gspace, [self.gspace.regular_repr] * n_fields(channels, self.order))

    def _build(self, in_channels):
        """One module per spec entry (nn.Identity where the entry has none); checks the types as it goes."""
        mods = []
        ftype, flat, stack, first_conv = self.in_type, None, [], True   # flat: feature size once pooled
        for i, layer in enumerate(self.spec):
            kind = layer[0]
            if flat is not None and kind in ("conv", "maxpool", "avgpool", "save", "add", "shortcut", "gpool", "pool"):
                raise ValueError(f"spec entry {i} {layer!r} comes after the invariant pooling")
            if kind == "conv":
                _, cin, cout, k, stride, pad, bias = layer
                if first_conv and cin != in_channels:
                    raise ValueError(f"first conv takes {cin} channels, the input has {in_channels}")
                first_conv = False
                out = self._regular(cout)
                mods.append(_conv(ftype, out, k, padding=pad, stride=stride, bias=bias))
                ftype = out
            elif kind == "bn":
                mods.append(nn.BatchNorm1d(flat) if flat is not None else enn.InnerBatchNorm(ftype))
            elif kind == "relu":
                mods.append(nn.ReLU() if flat is not None else enn.ReLU(ftype))
            elif kind == "lrelu":
                mods.append(nn.LeakyReLU(layer[1]) if flat is not None else PointwiseLeakyReLU(ftype, layer[1]))
            elif kind == "dropout":
                mods.append(nn.Dropout(layer[1]) if flat is not None else enn.PointwiseDropout(ftype, layer[1]))
            elif kind == "maxpool":
                mods.append(enn.PointwiseMaxPool(ftype, layer[1], layer[1]))
            elif kind == "avgpool":
                mods.append(enn.PointwiseAvgPool(ftype, layer[1], layer[1]))
            elif kind == "save":
                stack.append(ftype)
                mods.append(nn.Identity())
            elif kind == "add":
                if not stack or stack.pop() != ftype:
                    raise ValueError(f"spec entry {i} 'add': nothing saved or field types differ")
                mods.append(nn.Identity())
            elif kind == "shortcut":
                _, cin, cout, pool = layer
                if not stack:
                    raise ValueError(f"spec entry {i} 'shortcut': nothing saved")
                src, out = stack.pop(), self._regular(cout)
                if out != ftype:
                    raise ValueError(f"spec entry {i} 'shortcut' gives {out.size} channels, the main path {ftype.size}")
                parts = [_conv(src, out, 1, bias=False)]
                if pool > 1:
                    parts.append(enn.PointwiseAvgPool(out, pool, pool))
                mods.append(enn.SequentialModule(*parts))
            elif kind in ("gpool", "pool"):
                if kind == "pool" and layer[1] != 1:
                    raise ValueError("a G-CNN pools to 1 x 1 (('pool', 1) or ('gpool',)); a larger map is not invariant")
                sizes = {r.size for r in ftype.representations}
                if len(sizes) != 1:
                    raise ValueError("group pooling needs fields of one size")
                flat = len(ftype)
                mods.append(nn.Identity())
            elif kind == "flatten":
                if flat is None:
                    raise ValueError(f"spec entry {i} 'flatten' before a global pool would break invariance")
                mods.append(nn.Identity())
            elif kind == "linear":
                if flat is None:
                    raise ValueError(f"spec entry {i} 'linear' before a global pool")
                mods.append(nn.Linear(flat, layer[2]))   # the spec's n_in counts plain channels; use the real size
                flat = layer[2]
            else:
                raise UnknownChoiceError("G-CNN spec entry", kind,
                                         ("conv", "bn", "relu", "lrelu", "maxpool", "avgpool", "dropout", "save",
                                          "add", "shortcut", "gpool", "pool", "flatten", "linear"))
        if stack:
            raise ValueError(f"{len(stack)} saved tensor(s) never used")
        return mods

    def forward(self, x: torch.Tensor, mode: str = "sample") -> torch.Tensor:   # mode: same call as other models
        h = enn.GeometricTensor(x, self.in_type)
        stack = []
        for layer, mod in zip(self.spec, self.layers):
            kind = layer[0]
            if kind == "save":
                stack.append(h)
            elif kind == "add":
                h = h + stack.pop()                    # GeometricTensor checks that the types agree
            elif kind == "shortcut":
                h = h + mod(stack.pop())
            elif kind in ("gpool", "pool"):
                size = h.type.representations[0].size
                h = group_pool(h.tensor, size).mean(dim=(-2, -1))   # max over G, then mean over space
            elif kind == "flatten":
                pass
            else:
                h = mod(h)
        if isinstance(h, enn.GeometricTensor):
            raise ValueError("the spec never pools to invariant features")
        return h


_INITIALIZE = [True]     # False only while counting parameters (see `count_only`)


@contextlib.contextmanager
def count_only():
    """Build G-CNNs only to count their parameters: without e2cnn's He initialisation and with its shared basis
    cache, which cut WRN16/8's build from about 47 s to a few seconds; the weights are meaningless, the count exact.
    Do not run such a model (its bases may be shared with models of another dtype)."""
    _INITIALIZE.append(False)
    try:
        yield
    finally:
        _INITIALIZE.pop()


def build_gcnn(spec, group: str = "C4", in_channels: int = 3, dtype: torch.dtype | None = None) -> GCNN:
    """A G-CNN for `spec` over regular fields of `group` ('C4', 'D8'; also 'C<n>', 'D<n>').

    Spec entries (channel counts are the plain network's; each conv's output
    c becomes max(1, round(c / sqrt(|G|))) regular fields, which keeps the
    parameter count near the plain CNN's):

    ("conv", cin, cout, k, stride, padding, bias)  R2Conv (the first one reads the trivial input field);
        with stride > 1 keep (size + 2 padding - k) divisible by the stride, or the grid is not symmetric
    ("bn", c)             InnerBatchNorm (one mean / variance / affine pair per field)
    ("relu",), ("lrelu", slope)     pointwise ReLU / leaky ReLU
    ("maxpool", s), ("avgpool", s)  PointwiseMaxPool / PointwiseAvgPool, kernel = stride = s
    ("dropout", p)        PointwiseDropout
    ("save",), ("add",)   push the current features; pop and add (identity shortcut, same field type)
    ("shortcut", cin, cout, pool)   pop, 1x1 R2Conv without bias, PointwiseAvgPool(pool) if pool > 1, add
    ("gpool",) / ("pool", 1)        max over each field's group channels, then mean over space -> [B, n_fields]
    ("flatten",)          no-op after the pool
    ("linear", n_in, n_out)         nn.Linear(actual feature size, n_out)
    After the pool, relu / lrelu / dropout / bn act on the flat features.

    dtype: the parameters' and the sampled bases' dtype (default: torch's default).
    """
    return GCNN(spec, group, in_channels, dtype)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

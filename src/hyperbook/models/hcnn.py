"""Hierarchical Attribute CNNs (document 004 = thesis chapter 5).

Every layer x_j(u, v_{j-2}, v_{j-1}, v_j) is a 5-D array (2 spatial axes, 3
attribute axes; 6-D with the batch). Layer j (j >= 3):

1. sums x_{j-1} over its oldest attribute v_{j-3} (eq. 6: the filter does not
   depend on it), giving y(u, a=v_{j-2}, b=v_{j-1});
2. W_j^h: Q spatial 3x3 filters h_{j,q}(u), the same for every attribute
   position, (stride 2 in space at j in `spatial_down`);
3. batch normalisation per q (statistics shared over batch, space and
   attributes, so translations along attributes commute with it);
4. W_j^g: convolution along (a, b) with filters g_{v_j,q}(a, b), summed over q,
   stride 2 along a and b (zero or periodic padding);
5. the ELU non-linearity with a bias per v_j.

The equivalent 4-D filter is w_{v_j}(u, a, b) = sum_q h_{j,q}(u) g_{v_j,q}(a, b)
(eq. 8). The (+) variant puts batch norm + ELU between W^h and W^g, so no such
w exists. Layer 1 is a plain 3x3 convolution (v_0 = colour), layer 2 a 3-D
convolution along (v_1, u) with stride 2 along v_1. The last conv layer J-1 has
as many filters as classes, and x_J is the average over u, v_{J-3}, v_{J-2}
(eq. 7; an average instead of a sum: the same up to a constant, and the logits
stay of order one).

Primitives: each step is one conv3d on a contiguous tensor laid out as
(N, channels, a, b, space). W^h is conv3d with kernel (1, 3, 3) over
(N, 1, a*b, H, W): the attribute positions ride along as a depth axis, so its
output is already (N, Q, a*b, H, W) = (N, Q, a, b, H*W). W^g is conv3d with
kernel (ka, kb, 1) on that view: space is folded into the last axis and never
convolved. No permutation of the large Q-channel intermediate is needed; the
only copy per layer is the transpose of the small summed output. (A conv2d
version needs two permutes of the Q*a*b*H*W intermediate; it measured slower
here, see `primitive_benchmark`.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnknownChoiceError


@dataclass(frozen=True)
class HCNNSpec:
    num_classes: int = 10
    K: int = 16                       # attribute size (v_j takes K values)
    Q: int = 32                       # separable filters per layer
    J: int = 12                       # depth; conv layers are j = 1 .. J-1
    attr_support: tuple = (7, 11)     # support of g along (v_{j-2}, v_{j-1}); (11, 11) for CIFAR-100
    v1_support: int = 11              # support along v_1 of the layer-2 filter
    spatial_down: tuple = (5, 9)      # depths with spatial sub-sampling by 2
    plus: bool = False                # the (+) variant
    circular: bool = False            # periodic convolutions along the attributes
    impl: str = ""                     # '' = folded for the original, factorised for (+)
    post_bn: bool = True              # batch norm after W^g (authors' code); False = the document's eq. literally
    in_channels: int = 3

    @classmethod
    def for_dataset(cls, num_classes: int, **kw) -> "HCNNSpec":
        if num_classes not in (10, 100):
            kw.setdefault("attr_support", (7, 11))
        elif num_classes == 100:
            kw.setdefault("attr_support", (11, 11))
        return cls(num_classes=num_classes, **kw)


def _pad_attr(x: torch.Tensor, pads: tuple, circular: bool) -> torch.Tensor:
    """Pad a 5-D tensor (N, C, a, b, s) along a and b; pads = (pa, pb)."""
    pa, pb = pads
    if not circular or (pa == 0 and pb == 0):
        return x
    return F.pad(x, (0, 0, pb, pb, pa, pa), mode="circular")


def placement(a: int, b: int, support: tuple, circular: bool) -> torch.Tensor:
    """0/1 (or counts) tensor [a'*b', a*b, ka*kb]: which input position each tap of a stride-2
    attribute convolution reads for each output position (zero or periodic padding)."""
    ka, kb = support
    pa, pb = ka // 2, kb // 2
    ao, bo = (a + 1) // 2, (b + 1) // 2
    oa = torch.arange(ao).view(ao, 1, 1, 1)
    ob = torch.arange(bo).view(1, bo, 1, 1)
    ta = torch.arange(ka).view(1, 1, ka, 1)
    tb = torch.arange(kb).view(1, 1, 1, kb)
    ia = (2 * oa + ta - pa).expand(ao, bo, ka, kb)
    ib = (2 * ob + tb - pb).expand(ao, bo, ka, kb)
    if circular:
        valid = torch.ones_like(ia, dtype=torch.bool)
        ia, ib = ia % a, ib % b
    else:
        valid = (ia >= 0) & (ia < a) & (ib >= 0) & (ib < b)
    out = torch.zeros(ao * bo, a * b, ka * kb)
    p_idx = (oa * bo + ob).expand(ao, bo, ka, kb)[valid]
    c_idx = (ia * b + ib)[valid]
    t_idx = (ta * kb + tb).expand(ao, bo, ka, kb)[valid]
    out.index_put_((p_idx, c_idx, t_idx), torch.ones(len(p_idx)), accumulate=True)
    return out


IMPLS = ("folded", "factorised")


class AttrLayer(nn.Module):
    """One HCNN layer j >= 3: y (N, a, b, H, W) -> x_j (N, K_out, a/2, b/2, H', W').

    Parameters are always the factors h [Q, 3, 3], g [K, Q, ka, kb] (+ BN buffers, bias).
    impl='factorised' computes h, BN, g literally (conv3d, Q-channel intermediate);
    impl='folded' (the original variant only) computes the same function and the same
    gradients through the equivalent filter w = sum_q h_q g_q / sigma_q, with BN's batch
    statistics taken from the 9x9 moments of the spatial patches, and one matmul with
    w laid out as a Toeplitz matrix along the attributes. Its cost does not grow with Q.
    """

    def __init__(self, k_out: int, Q: int, support: tuple, spatial_stride: int = 1,
                 plus: bool = False, circular: bool = False, impl: str | None = None,
                 post_bn: bool = True, last: bool = False):
        super().__init__()
        self.last = last
        self.k_out, self.Q, self.support = k_out, Q, tuple(support)
        self.spatial_stride, self.plus, self.circular = spatial_stride, plus, circular
        self.impl = impl or ("factorised" if plus else "folded")
        if self.impl not in IMPLS:
            raise UnknownChoiceError("HCNN layer implementation", self.impl, IMPLS)
        if plus and self.impl == "folded":
            raise ValueError("the (+) variant has a non-linearity between h and g; it cannot be folded")
        self.h = nn.Conv3d(1, Q, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                           padding=(0, 1, 1), bias=False)
        # the original only standardises (m_q, sigma_q); (+) keeps the affine part as the ELU's bias
        self.bn = nn.BatchNorm3d(Q, affine=plus)
        ka, kb = self.support
        self.pads = (ka // 2, kb // 2)
        self.g = nn.Conv3d(Q, k_out, (ka, kb, 1), stride=(2, 2, 1),
                           padding=(0, 0, 0) if circular else (ka // 2, kb // 2, 0), bias=True)
        # batch norm per v_j after W^g (the authors' code normalises after every convolution);
        # statistics are shared over u and the attribute axes, so covariance is kept
        self.post_bn = nn.BatchNorm3d(k_out) if (post_bn and not last) else None
        self._placement = {}

    def _finish(self, out: torch.Tensor) -> torch.Tensor:
        """out (N, K, a', b', L): post batch norm and ELU; neither after the last layer (its mean is the logits)."""
        if self.post_bn is not None:
            out = self.post_bn(out)
        return out if self.last else F.elu(out)

    # ---- literal form: h -> BN -> (ELU) -> g -> ELU ------------------------------------
    def forward_factorised(self, y: torch.Tensor) -> torch.Tensor:
        n, a, b, H, W = y.shape
        z = self.h(y.reshape(n, 1, a * b, H, W))             # (N, Q, a*b, H', W')
        Ho, Wo = z.shape[-2:]
        z = self.bn(z)
        if self.plus:
            z = F.elu(z)
        z = z.view(n, self.Q, a, b, Ho * Wo)
        out = self._finish(self.g(_pad_attr(z, self.pads, self.circular)))   # (N, K, a/2, b/2, H'W')
        return out.view(n, self.k_out, out.shape[2], out.shape[3], Ho, Wo)

    # ---- folded form: one matmul with the equivalent filter ----------------------------
    def _place(self, a: int, b: int, like: torch.Tensor) -> torch.Tensor:
        key = (a, b, str(like.device), like.dtype)
        if key not in self._placement:
            self._placement[key] = placement(a, b, self.support, self.circular).to(like)
        return self._placement[key]

    def _stats(self, patches: torch.Tensor):
        """BN statistics of h*y per q from the patches (N, C, 9, L): (mean [Q], biased var [Q], count)."""
        hq = self.h.weight[:, 0, 0].reshape(self.Q, 9)
        count = patches.shape[0] * patches.shape[1] * patches.shape[3]
        mean_p = patches.sum(dim=(0, 1, 3)) / count                          # [9]
        centred = patches - mean_p.view(1, 1, 9, 1)
        cov = torch.einsum("nctl,ncsl->ts", centred, centred) / count        # [9, 9], centred: no cancellation
        mean_q = hq @ mean_p
        var_q = torch.einsum("qt,ts,qs->q", hq, cov, hq)
        return mean_q, var_q.clamp_min(0.0), count

    def forward_folded(self, y: torch.Tensor) -> torch.Tensor:
        n, a, b, H, W = y.shape
        s = self.spatial_stride
        patches = F.unfold(y.reshape(n, a * b, H, W), 3, padding=1, stride=s)   # (N, a*b*9, L)
        Ho, Wo = (H - 1) // s + 1, (W - 1) // s + 1
        L = Ho * Wo
        pv = patches.view(n, a * b, 9, L)
        bn = self.bn
        if self.training or not bn.track_running_stats:
            mean_q, var_q, count = self._stats(pv)
            if self.training and bn.track_running_stats:
                with torch.no_grad():
                    m = bn.momentum if bn.momentum is not None else 0.1
                    bn.running_mean.mul_(1 - m).add_(m * mean_q.detach())
                    bn.running_var.mul_(1 - m).add_(m * var_q.detach() * count / max(count - 1, 1))
                    bn.num_batches_tracked += 1
        else:
            mean_q, var_q = bn.running_mean, bn.running_var
        inv_std = torch.rsqrt(var_q + bn.eps)                                  # [Q]
        hq = self.h.weight[:, 0, 0].reshape(self.Q, 9) * inv_std[:, None]     # [Q, 9]
        g = self.g.weight[..., 0].flatten(2)                                   # [K, Q, ka*kb]
        w = torch.einsum("qt,kqx->ktx", hq, g)                                 # [K, 9, ka*kb]
        gc = torch.einsum("q,kqx->kx", -mean_q * inv_std, g)                   # [K, ka*kb]
        place = self._place(a, b, y)                                    # [P, a*b, ka*kb]
        M = torch.einsum("pcx,ktx->kpct", place, w).reshape(self.k_out * place.shape[0], a * b * 9)
        bias = torch.einsum("pcx,kx->kp", place, gc) + self.g.bias[:, None]    # [K, P]
        out = torch.matmul(M, patches) + bias.reshape(-1, 1)                    # (N, K*P, L)
        out = self._finish(out.view(n, self.k_out, (a + 1) // 2, (b + 1) // 2, L))
        return out.view(n, self.k_out, (a + 1) // 2, (b + 1) // 2, Ho, Wo)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.forward_folded(y) if self.impl == "folded" else self.forward_factorised(y)

    def equivalent_filters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Original variant in eval mode: (w [K, 3, 3, ka, kb], per-q offset c_q = -m_q/sigma_q)."""
        if self.plus:
            raise ValueError("the (+) variant has a non-linearity between h and g: no equivalent filter")
        inv_std = torch.rsqrt(self.bn.running_var + self.bn.eps)            # [Q]
        h = self.h.weight[:, 0, 0] * inv_std[:, None, None]               # [Q, 3, 3]
        g = self.g.weight[..., 0]                                          # [K, Q, ka, kb]
        w = torch.einsum("quv,kqab->kuvab", h, g)
        return w, -self.bn.running_mean * inv_std

    def document_parameters(self) -> int:
        """Parameters as section 4.2 counts them: w_{v_j} for the original, h and g for (+)."""
        ka, kb = self.support
        if self.plus:
            return self.h.weight.numel() + self.g.weight.numel()
        return self.k_out * 9 * ka * kb


def reduce_attribute(x: torch.Tensor) -> torch.Tensor:
    """x_j (N, K, a, b, H, W) -> y_j (N, b, K, H, W): sum over the oldest attribute (eq. 6)."""
    return x.sum(dim=2).transpose(1, 2).contiguous()


class AttrConv1(nn.Module):
    """W_2: a convolution along (v_1, u) with filters w_{v_2}(v_1, u), stride 2 along v_1.

    x_1 (N, v_1, H, W) -> (N, v_2, v_1/2, H, W). Computed as one conv2d whose (v_2, v_1') x v_1 x 3 x 3
    weight is w laid out as a Toeplitz matrix along v_1 (zero or periodic padding). (A conv3d with a
    stride along depth returned garbage weight gradients on torch 2.14 CPU in our runs.)
    """

    def __init__(self, K: int, support: int, circular: bool = False):
        super().__init__()
        self.K, self.support, self.circular = K, support, circular
        self.weight = nn.Parameter(torch.empty(K, 1, support, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)   # conv3d's default initialisation
        self._placement = {}

    def _place(self, a: int, like: torch.Tensor) -> torch.Tensor:
        key = (a, str(like.device), like.dtype)
        if key not in self._placement:
            self._placement[key] = placement(a, 1, (self.support, 1), self.circular).to(like)  # [a', a, taps]
        return self._placement[key]

    def forward(self, x1: torch.Tensor) -> torch.Tensor:
        n, a, H, W = x1.shape
        place = self._place(a, x1)
        w = torch.einsum("pcx,kxuv->kpcuv", place, self.weight[:, 0])        # [K, a', a, 3, 3]
        out = F.conv2d(x1, w.reshape(-1, a, 3, 3), padding=1)
        return out.view(n, self.K, place.shape[0], H, W)


class HCNN(nn.Module):
    """The J = 12 cascade of section 4: input (N, 3, 32, 32) -> logits (N, num_classes)."""

    def __init__(self, spec: HCNNSpec = HCNNSpec()):
        super().__init__()
        if spec.K % 4:
            raise UnknownChoiceError("attribute size K (a multiple of 4)", spec.K, (8, 12, 16, 20, 24))
        self.spec = spec
        K = spec.K
        self.conv1 = nn.Conv2d(spec.in_channels, K, 3, padding=1, bias=False)        # W_1
        self.bn1 = nn.BatchNorm2d(K)
        self.conv2 = AttrConv1(K, spec.v1_support, spec.circular)                      # W_2 along (v_1, u)
        self.bn2 = nn.BatchNorm3d(K)
        layers = []
        for j in range(3, spec.J):
            k_out = spec.num_classes if j == spec.J - 1 else K
            stride = 2 if j in spec.spatial_down else 1
            layers.append(AttrLayer(k_out, spec.Q, spec.attr_support, stride, spec.plus, spec.circular,
                                    spec.impl or None, spec.post_bn, last=(j == spec.J - 1)))
        self.layers = nn.ModuleList(layers)

    # --- the cascade, one depth at a time -------------------------------------------------
    def layer1(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> x_1 (N, v_1, H, W)."""
        return F.elu(self.bn1(self.conv1(x)))

    def layer2(self, x1: torch.Tensor) -> torch.Tensor:
        """x_1 (N, v_1, H, W) -> x_2 (N, v_2, v_1/2, H, W)."""
        return F.elu(self.bn2(self.conv2(x1)))

    @staticmethod
    def to_y(j: int, xj: torch.Tensor) -> torch.Tensor:
        """The input of layer j+1 as (N, v_{j-1}, v_j, H, W)."""
        if j == 2:
            return xj.transpose(1, 2).contiguous()
        return reduce_attribute(xj)

    def forward_from(self, j: int, xj: torch.Tensor, collect: bool = False):
        """Continue the cascade from layer x_j (j >= 2); returns logits (and the later layers)."""
        outs = []
        for k in range(j + 1, self.spec.J):
            xj = self.layers[k - 3](self.to_y(k - 1, xj))
            outs.append(xj)
        logits = xj.mean(dim=(2, 3, 4, 5))
        return (logits, outs) if collect else logits

    def forward(self, x: torch.Tensor, return_layers: bool = False):
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        logits, rest = self.forward_from(2, x2, collect=True)
        if return_layers:
            return logits, [x1, x2] + rest
        return logits

    # --- counts ------------------------------------------------------------------------
    def document_parameters(self) -> dict:
        """Section 4.2's count: W_1, W_2 filters + per layer j >= 3 either w_{v_j} or (h, g)."""
        per_layer = {1: self.conv1.weight.numel(), 2: self.conv2.weight.numel()}
        for j, layer in enumerate(self.layers, start=3):
            per_layer[j] = layer.document_parameters()
        return per_layer

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class PlainCNN(nn.Module):
    """A plain CNN of the same depth (11 conv layers, sub-sampling at 5 and 9, BN + ELU) for speed."""

    def __init__(self, num_classes: int = 10, width: int = 64, depth: int = 11, spatial_down=(5, 9)):
        super().__init__()
        layers, c = [], 3
        for j in range(1, depth + 1):
            out = num_classes if j == depth else width
            layers += [nn.Conv2d(c, out, 3, stride=2 if j in spatial_down else 1, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.ELU()]
            c = out
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).mean(dim=(2, 3))


def attribute_array(xj: torch.Tensor) -> torch.Tensor:
    """Invariant attribute array of eq. 9: x_j at the central position summed over v_{j-2}.

    x_j (N, v_j, v_{j-2}, v_{j-1}, H, W) -> (N, v_{j-1}, v_j).
    """
    H, W = xj.shape[-2:]
    centre = xj[..., H // 2, W // 2]                 # (N, v_j, v_{j-2}, v_{j-1})
    return centre.sum(dim=2).transpose(1, 2)


def document_total(spec: HCNNSpec) -> int:
    """Section 4.2's parameter count for a spec, without building the model's data."""
    return sum(HCNN(spec).document_parameters().values())

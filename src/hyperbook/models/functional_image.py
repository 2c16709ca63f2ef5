"""Functional image representation: a hypernetwork turns an image into the weights
of a small coordinate network T((i, j[, alpha]); theta) -> RGB (document 001, section 3).

Target network (section 3.2, figure 4): five fully connected layers whose widths
grow up to the middle layer and then shrink, normalisation between layers,
cosine activations, residual connections, sigmoid output. Its weights are not
parameters: they arrive per image from the hypernetwork, and a whole batch of
images is evaluated on a whole grid of coordinates in one batched matrix product
(`torch.baddbmm` over per-image weights), never a loop over images or pixels.

Choices the document leaves open (stated in the chapter):

* Widths: `hidden=(32, 64, 128, 64)` by default (a < b < c > d).
* Normalisation: batch normalisation of a target network normalises over the
  pixels it renders. So that T is a genuine function of (i, j) whatever grid
  one queries, its statistics are taken per image on a fixed reference grid of
  the unit square (`ref_size` x `ref_size` pixel centres) and applied to every
  query point. Its scale and shift (gamma, beta) are generated with the weights;
  a linear layer followed by this normalisation needs no bias.
* Residual connections without extra weights: a hidden layer adds its input,
  repeated when the width doubles and averaged in groups when it halves.
* Coordinates are pixel centres in [0, 1]^2; alpha (the scale factor) is a
  third input when `use_alpha` is set, fed as alpha / 4.

Hypernetwork (figure 5): eight convolutional layers on every path, each a
1xn or nx1 convolution followed by batch normalisation and ReLU (the inception
factorisation of an nxn convolution), one residual connection in the shared
trunk, then one branch per target layer ending in a linear map to that layer's
weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-5


# ----------------------------------------------------------------------------- coordinates
def pixel_grid(height: int, width: int, device="cpu") -> torch.Tensor:
    """Pixel centres of an height x width image in [0,1]^2, as [height*width, 2] (row i, column j)."""
    i = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    j = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    return torch.stack(torch.meshgrid(i, j, indexing="ij"), -1).reshape(-1, 2)


# ----------------------------------------------------------------------------- target network
class TargetLayer(nn.Module):
    """One fully connected layer of the target network with generated weights (no parameters).

    kind 'hidden': y = cos(gamma * norm(W h) + beta) + residual(h);  kind 'output': y = sigmoid(W h + b).
    """

    def __init__(self, n_in: int, n_out: int, kind: str, residual: bool):
        super().__init__()
        self.n_in, self.n_out, self.kind, self.residual = n_in, n_out, kind, residual
        if residual and not (n_in == n_out or n_out % n_in == 0 or n_in % n_out == 0):
            raise ValueError(f"residual between widths {n_in} and {n_out} needs one to divide the other")

    @property
    def n_weights(self) -> int:
        return self.n_out * self.n_in + (2 * self.n_out if self.kind == "hidden" else self.n_out)

    def unpack(self, w: torch.Tensor):
        """Flat per-image weights [B, n_weights] -> (W [B,out,in], second [B,out], third [B,out] or None)."""
        b = w.shape[0]
        mat = w[:, :self.n_out * self.n_in].view(b, self.n_out, self.n_in)
        rest = w[:, self.n_out * self.n_in:]
        if self.kind == "hidden":
            return mat, rest[:, :self.n_out], rest[:, self.n_out:]
        return mat, rest, None

    def linear(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """h [B or 1, P, in] times per-image W -> [B, P, out]; one batched matmul."""
        mat, second, _ = self.unpack(w)
        if h.shape[0] != mat.shape[0]:
            h = h.expand(mat.shape[0], -1, -1)
        if self.kind == "hidden":
            return torch.bmm(h, mat.transpose(1, 2))
        return torch.baddbmm(second.unsqueeze(1), h, mat.transpose(1, 2))

    def skip(self, h: torch.Tensor) -> torch.Tensor:
        if self.n_out == self.n_in:
            return h
        if self.n_out > self.n_in:
            return h.repeat_interleave(self.n_out // self.n_in, dim=-1)
        return h.unflatten(-1, (self.n_out, self.n_in // self.n_out)).mean(-1)

    def finish(self, h, z, w, stats):
        if self.kind == "output":
            return torch.sigmoid(z)
        _, gamma, beta = self.unpack(w)
        mean, var = stats
        y = torch.cos((z - mean) * torch.rsqrt(var + EPS) * gamma.unsqueeze(1) + beta.unsqueeze(1))
        if self.residual:
            y = y + self.skip(h)
        return y

    def forward(self, h, w, stats=None):
        return self.finish(h, self.linear(h, w), w, stats)


class TargetNet(nn.Module):
    """T((i, j[, alpha]); theta): coordinates [B or 1, P, 2] + per-layer weights -> [B, P, channels]."""

    def __init__(self, hidden=(32, 64, 128, 64), out_channels: int = 3, use_alpha: bool = False,
                 ref_size: int = 16):
        super().__init__()
        hidden = tuple(hidden)
        if len(hidden) != 4:
            raise ValueError("the target network has five layers: give four hidden widths")
        self.hidden, self.out_channels, self.use_alpha, self.ref_size = hidden, out_channels, use_alpha, ref_size
        self.in_dim = 3 if use_alpha else 2
        widths = (self.in_dim,) + hidden
        layers = [TargetLayer(widths[k], widths[k + 1], "hidden", residual=k > 0) for k in range(4)]
        layers.append(TargetLayer(hidden[-1], out_channels, "output", residual=False))
        self.layers = nn.ModuleList(layers)
        self.register_buffer("ref_grid", pixel_grid(ref_size, ref_size), persistent=False)

    @property
    def layer_sizes(self) -> list[int]:
        return [layer.n_weights for layer in self.layers]

    def _inputs(self, coords: torch.Tensor, alpha, batch: int) -> torch.Tensor:
        if coords.dim() == 2:
            coords = coords.unsqueeze(0)
        if not self.use_alpha:
            return coords
        if alpha is None:
            raise ValueError("this target network takes the scale factor alpha")
        alpha = torch.as_tensor(alpha, dtype=coords.dtype, device=coords.device).reshape(-1)
        alpha = alpha.expand(batch) if alpha.numel() == 1 else alpha
        a = (alpha / 4.0).view(-1, 1, 1).expand(batch, coords.shape[1], 1)
        return torch.cat([coords.expand(batch, -1, -1), a], -1)

    def reference_stats(self, weights, alpha=None):
        """Per-image, per-channel mean and variance of each hidden layer's pre-activation on the reference grid."""
        batch = weights[0].shape[0]
        h = self._inputs(self.ref_grid, alpha, batch)
        stats = []
        for layer, w in zip(self.layers, weights):
            z = layer.linear(h, w)
            if layer.kind == "hidden":
                st = (z.mean(1, keepdim=True), z.var(1, unbiased=False, keepdim=True))
            else:
                st = None
            stats.append(st)
            h = layer.finish(h, z, w, st)
        return stats

    def forward(self, coords: torch.Tensor, weights, alpha=None) -> torch.Tensor:
        batch = weights[0].shape[0]
        stats = self.reference_stats(weights, alpha)
        h = self._inputs(coords, alpha, batch)
        for layer, w, st in zip(self.layers, weights, stats):
            h = layer(h, w, st)
        return h

    def render(self, weights, height: int, width: int, alpha=None) -> torch.Tensor:
        """Images [B, channels, height, width] on the pixel-centre grid of that size."""
        grid = pixel_grid(height, width, device=weights[0].device)
        out = self(grid, weights, alpha)
        return out.transpose(1, 2).reshape(out.shape[0], self.out_channels, height, width)

    def initial_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mean, spread) per layer of the generated weights at initialisation (used by the hypernetwork)."""
        out = []
        for k, layer in enumerate(self.layers):
            mean = torch.zeros(layer.n_weights)
            spread = torch.full((layer.n_weights,), 1.0 / layer.n_in ** 0.5)
            if layer.kind == "hidden":
                n = layer.n_out * layer.n_in
                mean[n:n + layer.n_out] = 3.0 if k == 0 else 1.0      # gamma: wider phase range on coordinates
                spread[n:] = 0.1
            out.append((mean, spread))
        return out


# ----------------------------------------------------------------------------- hypernetwork
class FactorisedConv(nn.Sequential):
    """One hypernetwork layer: a 1xn (or nx1) convolution, batch normalisation, ReLU."""

    def __init__(self, c_in: int, c_out: int, n: int, horizontal: bool, stride: int = 1):
        kernel = (1, n) if horizontal else (n, 1)
        pad = (0, n // 2) if horizontal else (n // 2, 0)
        strides = (1, stride) if horizontal else (stride, 1)
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride=strides, padding=pad, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualPair(nn.Module):
    """x + (1xn then nx1)(x): the hypernetwork's one residual connection."""

    def __init__(self, c: int, n: int):
        super().__init__()
        self.row = FactorisedConv(c, c, n, horizontal=True)
        self.col = FactorisedConv(c, c, n, horizontal=False)

    def forward(self, x):
        return x + self.col(self.row(x))


class Branch(nn.Module):
    """Two factorised conv layers, adaptive pooling, and a linear map to one target layer's weights."""

    def __init__(self, c_in: int, c: int, n: int, pool: int, n_weights: int, init_mean, init_spread,
                 head_scale: float):
        super().__init__()
        self.row = FactorisedConv(c_in, c, n, horizontal=True, stride=2)
        self.col = FactorisedConv(c, c, n, horizontal=False, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Linear(c * pool * pool, n_weights)
        with torch.no_grad():
            # weights = mean + spread * (small image-dependent part); a sensible random target net at step 0
            self.head.weight.mul_(head_scale * init_spread.view(-1, 1) * (c * pool * pool) ** 0.5)
            self.head.bias.copy_(init_mean + init_spread * torch.randn(n_weights))

    def forward(self, x):
        return self.head(self.pool(self.col(self.row(x))).flatten(1))


class HyperNetwork(nn.Module):
    """Image [B, C, H, W] in [0, 1] -> list of per-layer flat weights [B, n_k] for `target`.

    Trunk: 1xn, nx1 (c channels); residual pair (1xn, nx1); 1xn, nx1 with stride 2 (2c channels).
    Branches (one per target layer): 1xn, nx1 with stride 2, pooling, linear.
    Eight conv layers on every path from the image to a target layer's weights.
    """

    def __init__(self, target: TargetNet, in_channels: int = 3, channels: int = 32, kernel: int = 5,
                 pool: int = 4, head_scale: float = 0.05):
        super().__init__()
        c = channels
        self.trunk = nn.Sequential(
            FactorisedConv(in_channels, c, kernel, horizontal=True),
            FactorisedConv(c, c, kernel, horizontal=False),
            ResidualPair(c, kernel),
            FactorisedConv(c, 2 * c, kernel, horizontal=True, stride=2),
            FactorisedConv(2 * c, 2 * c, kernel, horizontal=False, stride=2),
        )
        inits = target.initial_weights()
        self.branches = nn.ModuleList(
            Branch(2 * c, 2 * c, kernel, pool, layer.n_weights, mean, spread, head_scale)
            for layer, (mean, spread) in zip(target.layers, inits))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(image * 2.0 - 1.0)
        return [branch(features) for branch in self.branches]


class FunctionalImageModel(nn.Module):
    """Hypernetwork + target network; forward(image, coords[, alpha]) -> [B, P, channels]."""

    def __init__(self, hidden=(32, 64, 128, 64), channels: int = 3, use_alpha: bool = False,
                 hyper_channels: int = 32, kernel: int = 5, pool: int = 4, ref_size: int = 16):
        super().__init__()
        self.target = TargetNet(hidden, channels, use_alpha, ref_size)
        self.hyper = HyperNetwork(self.target, channels, hyper_channels, kernel, pool)

    def weights(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.hyper(image)

    def forward(self, image, coords, alpha=None):
        return self.target(coords, self.hyper(image), alpha)

    def render(self, image, height: int, width: int, alpha=None) -> torch.Tensor:
        return self.target.render(self.hyper(image), height, width, alpha)


class BoundTarget(nn.Module):
    """A target network with fixed weights, callable on coordinates alone (for layer tables and diagrams)."""

    def __init__(self, target: TargetNet, weights, alpha=None):
        super().__init__()
        self.target, self.weights, self.alpha = target, [w.detach() for w in weights], alpha

    def forward(self, coords):
        return self.target(coords, self.weights, self.alpha)


# ----------------------------------------------------------------------------- weight-space interpolation
def interpolate_weights(wa, wb, t: float, layers=None):
    """(1 - t) * wa + t * wb on the chosen layers (all by default); the other layers keep wa.

    Exact at the endpoints: t = 0 gives wa and t = 1 gives wb bit for bit.
    """
    chosen = range(len(wa)) if layers is None else set(layers)
    out = []
    for k, (a, b) in enumerate(zip(wa, wb)):
        if k not in chosen or t == 0:
            out.append(a.clone())
        elif t == 1:
            out.append(b.clone())
        else:
            out.append((1.0 - t) * a + t * b)
    return out


# ----------------------------------------------------------------------------- super-resolution rendering
def patch_origins(size: int, patch: int, stride: int) -> list[int]:
    """Origins of overlapping patches covering [0, size), the last one flush with the end."""
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def _axis_samples(origins, patch: int, scale: float, out_size: int, device):
    """For each patch along one axis: output indices it covers, its local coordinates and blend weights."""
    origins_t = torch.tensor(origins, dtype=torch.float32, device=device)
    count = int(torch.ceil(torch.tensor(patch * scale))) + 2
    first = torch.ceil(origins_t * scale - 0.5).long()                     # first output pixel centre inside
    idx = first.view(-1, 1) + torch.arange(count, device=device).view(1, -1)
    local = ((idx.float() + 0.5) / scale - origins_t.view(-1, 1)) / patch   # in [0, 1] inside the patch
    inside = (local >= 0) & (local <= 1) & (idx < out_size) & (idx >= 0)
    blend = (1e-3 + torch.minimum(local, 1 - local).clamp(min=0)) * inside  # tent: patch centres count most
    return idx.clamp(0, out_size - 1), local.clamp(0, 1), blend


@torch.no_grad()
def upscale(model: FunctionalImageModel, lr: torch.Tensor, scale_y: float, scale_x: float | None = None,
            patch: int = 16, stride: int | None = None, alpha=None, chunk: int = 64) -> torch.Tensor:
    """Super-resolve one image [C, h, w] in [0,1] to round(h*scale_y) x round(w*scale_x).

    The image is cut into overlapping patch x patch pieces (stride patch/2), the
    hypernetwork gives one target network per piece, each renders the output
    pixels whose centres fall inside its piece, and overlapping renderings are
    averaged with tent weights (section 4.2). Works for any, also non-integer
    and anisotropic, scale. alpha defaults to max(scale_y, scale_x).
    """
    scale_x = scale_y if scale_x is None else scale_x
    stride = stride or max(1, patch // 2)
    c, h, w = lr.shape
    if h < patch or w < patch:     # pad small images by reflection so one patch fits
        lr = F.pad(lr[None], (0, max(0, patch - w), 0, max(0, patch - h)), mode="replicate")[0]
    H, W = round(h * scale_y), round(w * scale_x)
    oy, ox = patch_origins(max(h, patch), patch, stride), patch_origins(max(w, patch), patch, stride)
    iy, ly, by = _axis_samples(oy, patch, scale_y, H, lr.device)
    ix, lx, bx = _axis_samples(ox, patch, scale_x, W, lr.device)
    alpha = max(scale_y, scale_x) if alpha is None else alpha
    pieces = torch.stack([lr[:, y:y + patch, x:x + patch] for y in oy for x in ox])   # [N, C, p, p]
    ny, nx = len(oy), len(ox)
    ry, rx = iy.shape[1], ix.shape[1]
    acc = torch.zeros(c, H * W, device=lr.device)
    wsum = torch.zeros(H * W, device=lr.device)
    for start in range(0, len(pieces), chunk):          # bounded memory; each chunk is one batched call
        sl = slice(start, start + chunk)
        n = torch.arange(len(pieces), device=lr.device)[sl]
        py, px = n // nx, n % nx
        grid = torch.stack(torch.broadcast_tensors(ly[py].unsqueeze(2), lx[px].unsqueeze(1)), -1)
        weights = model.hyper(pieces[sl])
        out = model.target(grid.reshape(len(n), ry * rx, 2), weights, alpha)           # [n, ry*rx, C]
        blend = (by[py].unsqueeze(2) * bx[px].unsqueeze(1)).reshape(len(n), -1)
        flat = (iy[py].unsqueeze(2) * W + ix[px].unsqueeze(1)).reshape(len(n), -1)
        acc.index_add_(1, flat.reshape(-1), (out * blend.unsqueeze(-1)).reshape(-1, c).T)
        wsum.index_add_(0, flat.reshape(-1), blend.reshape(-1))
    return (acc / wsum.clamp(min=1e-12)).view(c, H, W).clamp(0, 1)


# ----------------------------------------------------------------------------- SRCNN baseline
class SRCNN(nn.Module):
    """SRCNN (Dong et al. 2016), by default the published 9-5-5 with 64 and 32 filters, on the luminance
    of a bicubic up-scale.

    'same' padding (replicate, as SRCNN's MATLAB demo filters) keeps the image size; training as
    published scores only the centre that no padding reaches (`srcnn_margin`). Y in [0, 1].
    """

    def __init__(self, f1: int = 9, f2: int = 5, f3: int = 5, n1: int = 64, n2: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, n1, f1, padding=f1 // 2, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(n1, n2, f2, padding=f2 // 2, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(n2, 1, f3, padding=f3 // 2, padding_mode="replicate"))

    def forward(self, y):
        return self.body(y)


def rgb_to_y01(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luminance of RGB [.., 3, H, W] in [0,1], as (Y - 16) / 219 in [0, 1]."""
    r, g, b = x.unbind(-3)
    y = (65.481 * r + 128.553 * g + 24.966 * b) / 219.0
    return y.unsqueeze(-3)


def y01_to_gray_rgb(y: torch.Tensor, reference_rgb: torch.Tensor) -> torch.Tensor:
    """Put a new luminance into `reference_rgb` (keeping its BT.601 chroma): RGB in [0,1]."""
    shift = y - rgb_to_y01(reference_rgb)   # adding d to R, G and B adds d to Y01 and leaves chroma alone
    return (reference_rgb + shift).clamp(0, 1)

"""Geometric transforms of image batches, on the device, deterministic given a generator.

Images are float [N, C, H, W]. `rotate` and `affine` resample bilinearly with
affine_grid / grid_sample; pixels from outside the frame take `fill` (the
HyperNets code rotates img+1 and subtracts 1, i.e. fills with -1). `rot90` is
exact (a permutation of pixels), for equivariance tests and 90-MNIST.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _sample(images: torch.Tensor, theta: torch.Tensor, fill: float) -> torch.Tensor:
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def rotation_theta(angles_deg: torch.Tensor) -> torch.Tensor:
    """[N] angles (counter-clockwise on screen) -> [N, 2, 3] affine_grid matrices (output -> input)."""
    a = torch.deg2rad(angles_deg.float())
    c, s = torch.cos(a), torch.sin(a)
    # affine_grid maps output coords to input coords; y points down, so a
    # counter-clockwise rotation on screen samples the input at R(-a) with y flipped.
    row0 = torch.stack([c, -s, torch.zeros_like(a)], -1)
    row1 = torch.stack([s, c, torch.zeros_like(a)], -1)
    return torch.stack([row0, row1], 1)


def rotate(images: torch.Tensor, angles_deg, fill: float = 0.0) -> torch.Tensor:
    """Rotate each image by its angle in degrees (counter-clockwise), bilinear."""
    angles = torch.as_tensor(angles_deg, device=images.device, dtype=torch.float32)
    angles = angles.expand(images.shape[0]) if angles.ndim == 0 else angles
    return _sample(images, rotation_theta(angles).to(images.device), fill)


def affine(images: torch.Tensor, theta: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Resample with [N, 2, 3] matrices in affine_grid's normalised coordinates (output -> input)."""
    return _sample(images, theta.to(images.device), fill)


def pixel_to_grid_theta(matrices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, 3, 3] output->input maps in pixel coordinates -> [N, 2, 3] affine_grid matrices.

    Pixel coordinates as PIL's `Image.transform(AFFINE)` uses them: x to the right, y down, origin at the
    top-left corner of the top-left pixel (pixel centres at i + 0.5). affine_grid's normalised coordinates
    (align_corners=False) are u = 2 x / width - 1, so theta = N A N^-1 with N the pixel -> normalised map.
    """
    if matrices.ndim != 3 or matrices.shape[1:] != (3, 3):
        raise ValueError(f"expected [N, 3, 3] pixel-space matrices, got {tuple(matrices.shape)}")
    norm = torch.tensor([[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]],
                        dtype=matrices.dtype, device=matrices.device)
    return (norm @ matrices @ torch.linalg.inv(norm))[:, :2, :]


def authors_affine_matrices(u: torch.Tensor, size: int = 28) -> torch.Tensor:
    """The HyperNets code's affine maps from uniform draws u [N, 7] in [-1, 1], as [N, 3, 3] pixel matrices.

    u = (angle, shear x, shear y, scale x, scale y, shift x, shift y). As in the authors'
    `AffineTransform`: angle = pi u0, shear = u/5 + 0.3 (0.1 ... 0.5), scale = u/4 + 1.15 (0.9 ... 1.4),
    shift = 5 u px; A = Rot . Shear . Scale . Shift, output -> input, where only Rot is centred on the
    image centre (size/2, size/2); shear, scale and shift act about the top-left corner (the origin).
    """
    n = u.shape[0]
    ang = u[:, 0] * math.pi
    c, s = ang.cos(), ang.sin()
    half = size / 2
    eye = torch.eye(3, dtype=u.dtype, device=u.device).expand(n, 3, 3)
    rot, sh, sc, tr = (eye.clone() for _ in range(4))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 0, 2] = c, s, half - half * c - half * s
    rot[:, 1, 0], rot[:, 1, 1], rot[:, 1, 2] = -s, c, half + half * s - half * c
    sh[:, 0, 1], sh[:, 1, 0] = u[:, 1] / 5 + 0.3, u[:, 2] / 5 + 0.3
    sc[:, 0, 0], sc[:, 1, 1] = u[:, 3] / 4 + 1.15, u[:, 4] / 4 + 1.15
    tr[:, 0, 2], tr[:, 1, 2] = u[:, 5] * 5, u[:, 6] * 5
    return rot @ sh @ sc @ tr


def random_affine(n: int, generator: torch.Generator, size: int = 28, device="cpu"):
    """Random affine maps in the HyperNets code's ranges and composition.

    Returns (theta [N, 2, 3] for `affine`, entries [N, 6]): the entries are the first two rows of the
    pixel-space matrix (a, b, c, d, e, f), which the authors feed to the hypernetwork as they are.
    """
    u = torch.rand(n, 7, generator=generator, device=generator.device).to(device) * 2 - 1
    matrices = authors_affine_matrices(u.double(), size)
    return pixel_to_grid_theta(matrices, size, size).float(), matrices[:, :2, :].flatten(1).float()


def random_affine_theta(n: int, generator: torch.Generator, size: int = 28, device="cpu") -> torch.Tensor:
    """The normalised [N, 2, 3] matrices of `random_affine`."""
    return random_affine(n, generator, size, device)[0]


def rot90(images: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Exact rotation by k * 90 degrees counter-clockwise on screen."""
    return torch.rot90(images, k, dims=(-2, -1))


def crop_flip_at(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
                 pad: int) -> torch.Tensor:
    """Zero-pad [N, C, H, W] by `pad`, crop H x W at per-image offsets (dy, dx in 0 .. 2 pad), mirror the
    crops where `flip`: one gather for the whole batch (the flip is folded into the column index)."""
    n, c, h, w = images.shape
    dev = images.device
    dy, dx, flip = dy.to(dev).long(), dx.to(dev).long(), flip.to(dev).bool()
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=dev)                            # [N, H]
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)         # [N, W]
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The usual CIFAR augmentation (zero-pad by `pad`, random crop back to size, horizontal flip with
    probability 1/2), one offset and one flip per image. Draws, in this order: dy [N], dx [N], flip [N]."""
    n = images.shape[0]
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return crop_flip_at(images, dy, dx, flip, pad)

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


def random_affine_theta(n: int, generator: torch.Generator, size: int = 28, device="cpu") -> torch.Tensor:
    """Random affine maps in the HyperNets code's ranges, as [N, 2, 3] normalised matrices.

    Composition (output -> input): rotation (angle ~ U(-180, 180) deg) . shear
    (both ~ U(0.1, 0.5)) . scale (both ~ U(0.9, 1.4)) . shift (both ~ U(-5, 5) px),
    all about the image centre. The six entries are the hypernetwork's input.
    """
    u = torch.rand(n, 7, generator=generator, device=generator.device).to(device) * 2 - 1
    ang = u[:, 0] * math.pi
    shear = u[:, 1:3] / 5 + 0.3
    scale = u[:, 3:5] / 4 + 1.15
    shift = u[:, 5:7] * 5 * 2 / size          # pixels -> normalised units ([-1, 1] spans `size` px)
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    rot, sh, sc, tr = (eye.clone() for _ in range(4))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = ang.cos(), ang.sin(), -ang.sin(), ang.cos()
    sh[:, 0, 1], sh[:, 1, 0] = shear[:, 0], shear[:, 1]
    sc[:, 0, 0], sc[:, 1, 1] = scale[:, 0], scale[:, 1]
    tr[:, 0, 2], tr[:, 1, 2] = shift[:, 0], shift[:, 1]
    return (rot @ sh @ sc @ tr)[:, :2, :]


def rot90(images: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Exact rotation by k * 90 degrees counter-clockwise on screen."""
    return torch.rot90(images, k, dims=(-2, -1))

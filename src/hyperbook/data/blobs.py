"""The synthetic blob boundary task of thesis 4.4.2 (figure 10, S-F10), generated on the fly.

Blob masks come from scikit-image's ``binary_blobs``; the target is the blob outline, two pixels wide
(the last pixel inside and the first pixel outside every blob). Three kinds:

* ``binary``: blobs +1, background -1 (thesis row I: the gradient magnitude solves it).
* ``textured1``: blob filled with one real texture, background with another, raw grey values
  (scaled to [-1, 1]); the textures' different mean and contrast leave weak intensity clues
  (thesis row II).
* ``textured2``: the same, but every texture standardised to the same mean and standard deviation,
  so only the texture's structure separates blob from background (thesis row III, the hardest).

The thesis samples its textures from KTH-TIPS, which cannot be fetched here; scikit-image's real
photographs of textures ``brick``, ``grass`` and ``gravel`` stand in for it (labelled as such by
``TEXTURE_SOURCE``). Crops for training come from the top 320 rows of each 512x512 texture, crops for
testing from the bottom 192 rows, so test textures are unseen pixels.

A batch is one ``binary_blobs`` call cut into tiles (no per-sample Python loop for the masks), and
all randomness comes from one integer seed, so ``blob_batch(.., seed=step)`` is a pure function of the
step, as ``hyperbook.train.fit`` needs.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from ..errors import UnknownChoiceError

KINDS = ("binary", "textured1", "textured2")
TEXTURES = ("brick", "grass", "gravel")
TEXTURE_SOURCE = "scikit-image textures (brick, grass, gravel) standing in for KTH-TIPS"
SPLIT_ROW = 320  # texture rows [0, 320) for training, [320, 512) for testing


@lru_cache(maxsize=None)
def _textures(standardise: bool) -> np.ndarray:
    import skimage.data
    out = []
    for name in TEXTURES:
        t = getattr(skimage.data, name)().astype(np.float32)
        if standardise:                      # same mean and std for every texture
            t = (t - t.mean()) / t.std() * 0.35
        else:                                # raw grey values mapped to [-1, 1]
            t = t / 127.5 - 1.0
        out.append(t)
    return np.stack(out)                     # [T, 512, 512]


def blob_masks(n: int, size: int, seed: int, blob_size: float = 10.0, volume_fraction: float = 0.35) -> np.ndarray:
    """n boolean masks [n, size, size] from one binary_blobs image of ceil(sqrt n)^2 tiles.
    blob_size ~ the blobs' typical diameter in pixels."""
    from skimage.data import binary_blobs
    k = int(math.ceil(math.sqrt(n)))
    big = binary_blobs(length=k * size, blob_size_fraction=blob_size / (k * size),
                       volume_fraction=volume_fraction, rng=seed)
    tiles = big.reshape(k, size, k, size).transpose(0, 2, 1, 3).reshape(k * k, size, size)
    return tiles[:n]


def boundaries(masks: np.ndarray) -> np.ndarray:
    """Outline two pixels wide: mask minus its erosion, plus its dilation minus the mask (per tile)."""
    st = np.zeros((1, 3, 3), dtype=bool)
    st[0, 1, :] = st[0, :, 1] = True         # 4-neighbourhood, no mixing between tiles
    inner = masks & ~ndimage.binary_erosion(masks, st, border_value=1)
    outer = ndimage.binary_dilation(masks, st) & ~masks
    return inner | outer


def _texture_crops(idx: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int, standardise: bool) -> np.ndarray:
    tex = _textures(standardise)
    r = rows[:, None, None] + np.arange(size)[None, :, None]
    c = cols[:, None, None] + np.arange(size)[None, None, :]
    return tex[idx[:, None, None], r, c]


def blob_batch(n: int, size: int = 64, kind: str = "binary", seed: int = 0, split: str = "train",
               blob_size: float = 10.0, noise: float = 0.0):
    """(images float32 [n, 1, size, size], targets float32 [n, 1, size, size] in {0, 1}, masks bool)."""
    if kind not in KINDS:
        raise UnknownChoiceError("blob kind", kind, KINDS)
    if split not in ("train", "test"):
        raise UnknownChoiceError("split", split, ("train", "test"))
    rng = np.random.default_rng(seed + (0 if split == "train" else 7_919_000_001))
    masks = blob_masks(n, size, int(rng.integers(2**31)), blob_size)
    target = boundaries(masks)
    if kind == "binary":
        img = np.where(masks, 1.0, -1.0).astype(np.float32)
    else:
        lo, hi = (0, SPLIT_ROW - size) if split == "train" else (SPLIT_ROW, 512 - size)
        inside = rng.integers(len(TEXTURES), size=n)
        outside = (inside + rng.integers(1, len(TEXTURES), size=n)) % len(TEXTURES)   # always a different one
        std = kind == "textured2"
        a = _texture_crops(inside, rng.integers(lo, hi + 1, n), rng.integers(0, 512 - size + 1, n), size, std)
        b = _texture_crops(outside, rng.integers(lo, hi + 1, n), rng.integers(0, 512 - size + 1, n), size, std)
        img = np.where(masks, a, b).astype(np.float32)
    if noise:
        img = img + noise * rng.standard_normal(img.shape).astype(np.float32)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).unsqueeze(1)
    return to(img), to(target), torch.from_numpy(masks)

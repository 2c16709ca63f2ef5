"""Image-quality metrics for super-resolution, and the bicubic baseline.

The convention (the common one in super-resolution papers, applied to every
method alike in this book):

* images are RGB in [0, 1]; each output is first quantised to 8 bits (as a
  saved PNG would be);
* PSNR and SSIM are computed on the luminance channel Y of ITU-R BT.601
  (scikit-image's ``rgb2ycbcr``: Y in [16, 235], data range 255);
* a border of ``scale`` pixels is cropped from every side before measuring
  (pixels the down-scaling kernel could not see);
* PSNR and SSIM come from ``skimage.metrics``; SSIM uses a Gaussian window of
  sigma 1.5 and population covariances, as in Wang et al. (2004).

Non-integer scales have no ground truth here and are not scored.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _as_hwc(img) -> np.ndarray:
    """[3,H,W] / [H,W,3] / [H,W] tensor or array in [0,1] -> float64 [H,W,3]."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img


def quantise(img) -> np.ndarray:
    """Clip to [0, 1] and round to 8 bits (still floats in [0, 1])."""
    return np.round(np.clip(_as_hwc(img), 0.0, 1.0) * 255.0) / 255.0


def luminance(img) -> np.ndarray:
    """Y of BT.601 in [16, 235] from an RGB image in [0, 1] (quantised first)."""
    return rgb2ycbcr(quantise(img))[..., 0]


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:y.shape[0] - border, border:y.shape[1] - border] if border > 0 else y


def psnr(reference, output, scale: int) -> float:
    """PSNR (dB) on Y with a `scale`-pixel border cropped (see the module docstring)."""
    ref, out = _crop(luminance(reference), scale), _crop(luminance(output), scale)
    return float(peak_signal_noise_ratio(ref, out, data_range=255.0))


def ssim(reference, output, scale: int) -> float:
    """SSIM on Y with a `scale`-pixel border cropped (see the module docstring)."""
    ref, out = _crop(luminance(reference), scale), _crop(luminance(output), scale)
    return float(structural_similarity(ref, out, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def modcrop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop [..., H, W] so both sides are multiples of `scale`."""
    h, w = img.shape[-2:]
    return img[..., :h - h % scale, :w - w % scale]


def downscale(hr: torch.Tensor, scale: float) -> torch.Tensor:
    """Bicubic down-scaling with anti-aliasing ([B,C,H,W] or [C,H,W] in [0,1]), clipped to [0,1].

    Output size is round(H / scale) x round(W / scale).
    """
    squeeze = hr.dim() == 3
    x = hr[None] if squeeze else hr
    size = (max(1, round(x.shape[-2] / scale)), max(1, round(x.shape[-1] / scale)))
    out = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return out[0] if squeeze else out


def bicubic_upscale(lr: torch.Tensor, size) -> torch.Tensor:
    """The bicubic baseline: up-scale [B,C,h,w] or [C,h,w] to `size` (H, W), clipped to [0,1]."""
    squeeze = lr.dim() == 3
    x = lr[None] if squeeze else lr
    out = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False).clamp(0, 1)
    return out[0] if squeeze else out


def bicubic_baseline(hr: torch.Tensor, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of bicubic down- then up-scaling of one HR image [3,H,W] (mod-cropped here)."""
    hr = modcrop(hr, scale)
    up = bicubic_upscale(downscale(hr, scale), hr.shape[-2:])
    return psnr(hr, up, scale), ssim(hr, up, scale)


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(peak * peak / mse)

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
  sigma 1.5 and population covariances, as in Wang et al. (2004);
* the HR image is cropped to a multiple of the scale (``modcrop``) and its LR
  input is MATLAB's antialiased bicubic ``imresize`` rounded to 8 bits
  (``make_lr``); the bicubic baseline is the same ``imresize`` up-scaling. One
  implementation (``imresize``) serves every LR input and the baseline; on the
  real Set5/Set14 it reproduces the published bicubic PSNR to within 0.05 dB.

Non-integer scales have no ground truth here and are not scored.
"""
from __future__ import annotations

import math

import numpy as np
import torch
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


# ----------------------------------------------------------------------------- MATLAB's bicubic imresize
def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and PIL's 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))).to(x.dtype)


def contributions(in_len: int, out_len: int, scale: float | None = None, antialias: bool = True):
    """MATLAB's `contributions` for bicubic `imresize` along one axis: (weights [out, taps] float64,
    0-based source indices [out, taps]).

    Output pixel x (1-based) samples the input at u = x / scale + (1 - 1 / scale) / 2; when
    down-scaling with antialiasing the kernel is stretched by 1 / scale (and scaled by scale);
    weights are normalised to sum to one; samples outside the image are mirrored (symmetric padding).
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"resize needs positive sizes, got {in_len} -> {out_len}")
    scale = out_len / in_len if scale is None else float(scale)
    width = 4.0
    if scale < 1 and antialias:
        kernel = lambda t: scale * _cubic(scale * t)           # noqa: E731
        width = width / scale
    else:
        kernel = _cubic
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left.view(-1, 1) + torch.arange(taps, dtype=torch.float64).view(1, -1)      # 1-based
    w = kernel(u.view(-1, 1) - idx)
    w = w / w.sum(1, keepdim=True)
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])       # symmetric padding
    return w, mirror[torch.remainder(idx.long() - 1, 2 * in_len)]


def resize_matrix(in_len: int, out_len: int, scale: float | None = None, antialias: bool = True) -> torch.Tensor:
    """The same resize along one axis as a dense [out_len, in_len] float64 matrix."""
    w, src = contributions(in_len, out_len, scale, antialias)
    return torch.zeros(out_len, in_len, dtype=torch.float64).scatter_add_(1, src, w)


def imresize(img: torch.Tensor, size=None, scale: float | None = None) -> torch.Tensor:
    """MATLAB's `imresize(img, ..., 'bicubic')` (antialiased when down-scaling) of [..., H, W] floats.

    Give the output `size` (H, W), or `scale` (output side = ceil(side * scale), as MATLAB).
    Computed in float64 without clipping (two dense matrix products), returned in the input's dtype;
    8-bit rounding (MATLAB's uint8 output) is `quantise_t`.
    """
    h, w = img.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("imresize needs an output size or a scale")
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
        sy = sx = float(scale)
    else:
        sy, sx = size[0] / h, size[1] / w
    my = resize_matrix(h, int(size[0]), sy).to(img.device)
    mx = resize_matrix(w, int(size[1]), sx).to(img.device)
    return (my @ img.to(torch.float64) @ mx.T).to(img.dtype)


def quantise_t(img: torch.Tensor) -> torch.Tensor:
    """Tensor version of `quantise`: clip to [0, 1] and round to 8 bits (MATLAB's uint8 output)."""
    return (img.clamp(0, 1) * 255.0).round() / 255.0


def downscale(hr: torch.Tensor, scale: float) -> torch.Tensor:
    """The low-resolution input: MATLAB's antialiased bicubic `imresize(hr, 1/scale)`, clipped to [0,1].

    [B,C,H,W] or [C,H,W] in [0,1]; output size ceil(H / scale) x ceil(W / scale) (H / scale for a
    mod-cropped image). Not rounded: callers quantise to 8 bits, as the benchmarks' LR PNGs are.
    """
    return imresize(hr, scale=1.0 / scale).clamp(0, 1)


def bicubic_upscale(lr: torch.Tensor, size) -> torch.Tensor:
    """The bicubic baseline (and SRCNN's input): MATLAB's bicubic `imresize` of [B,C,h,w] or [C,h,w] to
    `size` (H, W), clipped to [0,1]."""
    return imresize(lr, size=tuple(size)).clamp(0, 1)


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The benchmark protocol's LR image: bicubic down-scaling of a mod-cropped HR, rounded to 8 bits."""
    return quantise_t(downscale(modcrop(hr, scale), scale))


def bicubic_baseline(hr: torch.Tensor, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of bicubic down- then up-scaling of one HR image [3,H,W] (mod-cropped here)."""
    hr = modcrop(hr, scale)
    up = bicubic_upscale(make_lr(hr, scale), hr.shape[-2:])
    return psnr(hr, up, scale), ssim(hr, up, scale)


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(peak * peak / mse)

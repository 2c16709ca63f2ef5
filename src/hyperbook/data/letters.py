"""Letters for the HyperNets transfer test (H-F4): models trained on digits rotate letters.

EMNIST letters through torchvision when its files are under data_dir/EMNIST
(`make data` downloads them where the internet is reachable). Offline, letters
are rendered from the DejaVu Sans font that matplotlib ships, with random
rotation, scale, shift and stroke jitter, in MNIST's format (white on black,
28x28). The chapter labels which source it used beside every letters figure.
"""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import torch

RENDERED = "letters rendered from the DejaVu Sans font with random jitter (EMNIST not available offline)"
EMNIST = "EMNIST letters (test split)"


def _emnist_letters(data_dir, n: int, generator: torch.Generator):
    import torchvision
    ds = torchvision.datasets.EMNIST(str(data_dir), split="letters", train=False, download=False)
    idx = torch.randperm(len(ds.data), generator=generator)[:n]
    # EMNIST images are stored transposed relative to MNIST
    return ds.data[idx].transpose(1, 2).contiguous()


def render_letters(n: int, seed: int = 0, size: int = 28) -> torch.Tensor:
    """n jittered upper- and lower-case letters as uint8 [n, size, size]."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = np.random.default_rng(seed)
    font_path = font_manager.findfont("DejaVu Sans")
    chars = string.ascii_uppercase + string.ascii_lowercase
    out = np.zeros((n, size, size), dtype=np.uint8)
    for k in range(n):  # rendering is a one-off per figure, not a training hot path
        ch = chars[rng.integers(len(chars))]
        font = ImageFont.truetype(font_path, int(rng.integers(44, 60)))
        canvas = Image.new("L", (96, 96), 0)
        draw = ImageDraw.Draw(canvas)
        box = draw.textbbox((0, 0), ch, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        draw.text(((96 - w) / 2 - box[0], (96 - h) / 2 - box[1]), ch, fill=255, font=font,
                  stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
        canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
        bbox = canvas.getbbox() or (0, 0, 96, 96)
        glyph = canvas.crop(bbox)
        scale = 20 / max(glyph.size)           # MNIST digits fit a 20x20 box
        glyph = glyph.resize((max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))),
                             Image.BILINEAR).filter(ImageFilter.GaussianBlur(0.4))
        tile = Image.new("L", (size, size), 0)
        dx, dy = rng.integers(-1, 2, size=2)
        tile.paste(glyph, ((size - glyph.size[0]) // 2 + int(dx), (size - glyph.size[1]) // 2 + int(dy)))
        out[k] = np.asarray(tile)
    return torch.from_numpy(out)


def load_letters(data_dir, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, str]:
    """(uint8 [n, 28, 28], source label)."""
    g = torch.Generator().manual_seed(seed)
    if (Path(data_dir) / "EMNIST" / "raw").exists():
        try:
            return _emnist_letters(data_dir, n, g), EMNIST
        except (RuntimeError, OSError):
            pass
    return render_letters(n, seed), RENDERED

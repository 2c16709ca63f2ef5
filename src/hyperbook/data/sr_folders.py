"""Super-resolution image folders (DIV2K, BSD200, Set5, Set14, B100, Urban100), faces, and offline stand-ins.

Standard layout under the data folder (the one of the EDSR/RDN code bases):

    <data_dir>/DIV2K/DIV2K_train_HR/0001.png ... 0800.png
    <data_dir>/benchmark/Set5/HR/*.png        (5 images)
    <data_dir>/benchmark/Set14/HR/*.png       (14)
    <data_dir>/benchmark/B100/HR/*.png        (100)
    <data_dir>/benchmark/Urban100/HR/*.png    (100)
    <data_dir>/BSR/BSDS500/data/images/train/*.jpg   (BSD200: the 200 BSDS500 training images)

A folder may hold `MANIFEST.md5` (lines "md5  file name", as `md5sum` writes
them); when it does, every listed file is verified before loading. A missing or
incomplete folder stops with a DatasetMissingError naming the folder and the
command that fills it.

Offline stand-ins (real photographs, but not the benchmarks; every chapter
number that uses them says so): disjoint training and test sets of the
photographs bundled with scikit-image, and the 100 face images of scikit-image's
`lfw_subset` (25x25 grey crops from Labeled Faces in the Wild) in place of CelebA.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetMissingError, UnknownChoiceError
from .checksums import verify_files

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

# name -> (folder relative to data_dir, number of HR images)
SR_DATASETS = {
    "DIV2K": ("DIV2K/DIV2K_train_HR", 800),
    "Set5": ("benchmark/Set5/HR", 5),
    "Set14": ("benchmark/Set14/HR", 14),
    "B100": ("benchmark/B100/HR", 100),
    "Urban100": ("benchmark/Urban100/HR", 100),
    # the 200 BSDS500 training images (JPEG), the usual DIV2K substitute ("BSD200"); not in `make data`'s list
    "BSD200": ("BSR/BSDS500/data/images/train", 200),
}
PREPARED_SR = ("DIV2K", "Set5", "Set14", "B100", "Urban100")
SR_TEST_SETS = ("Set5", "Set14", "B100", "Urban100")

FETCH_HINT = ("download DIV2K_train_HR.zip (data.vision.ee.ethz.ch/cvl/DIV2K) and the EDSR 'benchmark' "
              "archive (Set5, Set14, B100, Urban100 HR images), unpack them so that the layout above "
              "holds, then run `make data` to write and check the manifests")

# scikit-image's bundled photographs, split into disjoint stand-in sets (the cat appears
# twice in scikit-image, as `cat` and `chelsea`: only `chelsea` is used, in the test set)
STANDIN_TRAIN = ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket",
                 "motorcycle", "brick", "grass", "gravel", "moon")
STANDIN_TEST = ("camera", "chelsea", "coins", "text")


def sr_folder(data_dir, name: str) -> Path:
    if name not in SR_DATASETS:
        raise UnknownChoiceError("super-resolution dataset", name, SR_DATASETS)
    return Path(data_dir) / SR_DATASETS[name][0]


def read_manifest(folder: Path) -> dict[str, str]:
    manifest = Path(folder) / "MANIFEST.md5"
    if not manifest.exists():
        return {}
    out = {}
    for line in manifest.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            md5, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = md5
    return out


def write_manifest(folder: Path) -> Path:
    """Write MANIFEST.md5 for the images in `folder` (after a first, trusted download)."""
    from .checksums import md5sum
    folder = Path(folder)
    lines = [f"{md5sum(p)}  {p.name}" for p in image_files(folder)]
    (folder / "MANIFEST.md5").write_text("\n".join(lines) + "\n")
    return folder / "MANIFEST.md5"


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def to_rgb_u8(img: np.ndarray) -> np.ndarray:
    """Any image array -> uint8 [H, W, 3] (grey replicated, alpha dropped)."""
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = np.clip(np.round(img * (255.0 if img.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3]


def load_sr_folder(data_dir, name: str, expected_count: int | None = None,
                   limit: int | None = None) -> list[np.ndarray]:
    """The HR images of one dataset as uint8 [H, W, 3] arrays, sorted by file name (the first `limit`)."""
    from PIL import Image
    folder = sr_folder(data_dir, name)
    count = SR_DATASETS[name][1] if expected_count is None else expected_count
    if not folder.is_dir():
        raise DatasetMissingError(name, folder, FETCH_HINT)
    files = image_files(folder)
    if len(files) < count:
        raise DatasetMissingError(name, f"{folder} ({count} images; found {len(files)})", FETCH_HINT)
    manifest = read_manifest(folder)
    if manifest:
        verify_files(name, folder, manifest, FETCH_HINT)
    out = []
    for path in files[:limit or None]:
        with Image.open(path) as im:
            out.append(to_rgb_u8(np.asarray(im.convert("RGB"))))
    return out


def sr_available(data_dir, names=PREPARED_SR) -> bool:
    try:
        for name in names:
            folder = sr_folder(data_dir, name)
            if not folder.is_dir() or len(image_files(folder)) < SR_DATASETS[name][1]:
                return False
    except OSError:
        return False
    return True


def standin_photographs(split: str) -> dict[str, np.ndarray]:
    """scikit-image's bundled photographs (real photographs, not the SR benchmarks): name -> uint8 [H,W,3]."""
    import skimage.data as skd
    names = {"train": STANDIN_TRAIN, "test": STANDIN_TEST}
    if split not in names:
        raise UnknownChoiceError("stand-in split", split, names)
    out = {}
    for name in names[split]:
        img = skd.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skd, name)()
        out[name] = to_rgb_u8(img)
    return out


def to_tensor01(img_u8: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 [H, W, 3] -> float [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img_u8)).permute(2, 0, 1).float().div(255.0).to(device)


# ----------------------------------------------------------------------------- faces
def load_lfw_faces() -> np.ndarray:
    """The 100 faces of scikit-image's `lfw_subset` (the first 100 of its 200 images): float [100, 25, 25] in [0,1]."""
    import skimage.data as skd
    return np.asarray(skd.lfw_subset()[:100], dtype=np.float32)


def load_celeba(data_dir, split: str = "train", limit: int | None = None, size: int = 64) -> torch.Tensor:
    """CelebA through torchvision (no download here): central 128x128 crop resized to size x size.

    Returns float [N, 3, size, size] in [0, 1]; raises DatasetMissingError when absent.
    """
    import torchvision
    from torchvision import transforms as T
    root = Path(data_dir)
    try:
        ds = torchvision.datasets.CelebA(root, split=split, download=False, transform=T.Compose([
            T.CenterCrop(128), T.Resize(size, antialias=True), T.ToTensor()]))
    except (RuntimeError, OSError) as err:
        raise DatasetMissingError("CelebA", root / "celeba",
                                  "python -c \"import torchvision; torchvision.datasets.CelebA('data', "
                                  "download=True)\" where Google Drive is reachable "
                                  f"(torchvision said: {str(err)[:120]})") from err
    n = len(ds) if limit is None else min(limit, len(ds))
    return torch.stack([ds[k][0] for k in range(n)])


def prepare_sr(data_dir) -> Path:
    """`make data` step: check every SR folder; write MANIFEST.md5 where missing, verify it where present.

    Nothing can be downloaded by this function (the archives sit behind web pages); a missing
    folder raises DatasetMissingError with the instructions.
    """
    for name in PREPARED_SR:
        folder = sr_folder(data_dir, name)
        if folder.is_dir() and len(image_files(folder)) >= SR_DATASETS[name][1] \
                and not (folder / "MANIFEST.md5").exists():
            write_manifest(folder)
        if not folder.is_dir():
            raise DatasetMissingError(name, folder, FETCH_HINT)
        found = len(image_files(folder))
        if found < SR_DATASETS[name][1]:
            raise DatasetMissingError(name, f"{folder} ({SR_DATASETS[name][1]} images; found {found})", FETCH_HINT)
        verify_files(name, folder, read_manifest(folder), FETCH_HINT)   # without loading 800 2K images
    return Path(data_dir)

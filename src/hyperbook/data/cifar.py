"""CIFAR-10 / CIFAR-100 through torchvision's loaders, and a labelled stand-in.

Sources, in order of preference (`load_cifar_or_standin`):

1. torchvision's original files, where torchvision expects them:
   <data_dir>/cifar-10-batches-py/ and <data_dir>/cifar-100-python/ (torchvision
   checks each batch file's md5 itself). `fetch_cifar` downloads them (needs the internet).
2. CIFAR-10 only: the offline JPEG mirror (`hyperbook.data.mirror`, archive
   `cifar10-jpeg.tar.gz`): the real 60,000 pictures and labels, re-encoded as JPEG by
   the mirror's author, so pixels differ slightly from the lossless originals. Its source
   string "CIFAR-10 (JPEG mirror)" stands beside every number measured on it. The JPEGs
   are decoded once and cached as tensors in <data_dir>/cifar10-jpeg/.
3. A Fashion-MNIST stand-in (real images, 10 classes, available offline from Debian)
   made CIFAR-shaped: 28x28 zero-padded by 2 px to 32x32 and the grey channel repeated
   to RGB. Allowed for smoke and reduced runs only: a `full` run passes
   `allow_standin=False` and stops with the command that gets the real data.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BookError, DatasetMissingError, UnknownChoiceError

FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
NAMES = {10: "CIFAR-10", 100: "CIFAR-100"}
FIX = ("run `make data` (torchvision download of CIFAR; needs the internet) or, offline, "
       "`make data MIRROR=<folder with cifar10-jpeg.tar.gz and SHA256SUMS>` (CIFAR-10 only)")
JPEG_SOURCE = "CIFAR-10 (JPEG mirror)"
JPEG_FOLDER = "cifar10-jpeg"
# CIFAR-10's class order (label k is CLASSES_10[k]), as torchvision's CIFAR10.classes
CLASSES_10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
JPEG_COUNTS = {True: 5000, False: 1000}   # images per class in the mirror's train / test split
# The mirror stores images grouped by class; the cache holds them in one fixed shuffled order (this seed),
# so that a prefix of the set (a smoke run's first 64 test images) has all classes, as in the originals.
JPEG_ORDER_SEED = 0
# per-channel mean / std of CIFAR-10 training images in 0..255 (as used by the HCNN authors' code)
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)


def _check_classes(num_classes: int) -> int:
    if num_classes not in FOLDERS:
        raise UnknownChoiceError("CIFAR class count", num_classes, FOLDERS)
    return num_classes


def folder(data_dir, num_classes: int) -> Path:
    return Path(data_dir) / FOLDERS[_check_classes(num_classes)]


def standin_label(num_classes: int) -> str:
    name = NAMES[_check_classes(num_classes)]
    only = "" if num_classes == 10 else " only"
    return f"Fashion-MNIST stand-in for {name} (10 classes{only}, 28->32 px, grey->RGB)"


def _dataset_class(num_classes: int):
    import torchvision
    return torchvision.datasets.CIFAR10 if num_classes == 10 else torchvision.datasets.CIFAR100


def load_cifar(data_dir, num_classes: int, train: bool = True, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) on `device` via torchvision (download=False)."""
    path = folder(data_dir, num_classes)
    if not path.is_dir():
        raise DatasetMissingError(NAMES[num_classes], path, FIX)
    try:
        ds = _dataset_class(num_classes)(str(data_dir), train=train, download=False)
    except RuntimeError as err:  # torchvision: files missing or md5 mismatch
        raise DatasetMissingError(NAMES[num_classes], path, f"{FIX} (torchvision said: {err})") from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images.to(device), labels.to(device)


def _decode_files(files: list) -> list:
    """The RGB arrays of one class folder's JPEGs, in the given order (a process-pool task)."""
    import numpy as np
    from PIL import Image
    arrays = []
    for f in files:
        with Image.open(f) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    return arrays


# decoding all 60,000 pictures on one core took 40 s of `make data`; a process pool pays off for large splits only
PARALLEL_DECODE_MIN = 5000


def _decode_jpeg_split(split_dir: Path, per_class: int, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import numpy as np
    files = [sorted((split_dir / name).glob("*.jpg")) if (split_dir / name).is_dir() else [] for name in CLASSES_10]
    for name, found in zip(CLASSES_10, files):
        if len(found) != per_class:
            raise DatasetMissingError(JPEG_SOURCE, split_dir / name,
                                      f"the mirror's class folder must hold {per_class} JPEGs (found {len(found)}); "
                                      f"delete {split_dir.parent} and its stamp data/.mirror-cifar10-jpeg.tar.gz.ok, "
                                      f"then rerun `make data MIRROR=<folder>`")
    if workers is None:
        workers = min(len(files), os.cpu_count() or 1) if per_class * len(files) >= PARALLEL_DECODE_MIN else 1
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            per_folder = list(pool.map(_decode_files, files))
    else:
        per_folder = [_decode_files(f) for f in files]
    for paths, arrays in zip(files, per_folder):
        for f, arr in zip(paths, arrays):
            if arr.shape != (32, 32, 3):
                raise BookError(f"{f} is {arr.shape[1]}x{arr.shape[0]}, not a 32x32 CIFAR image")
    x = torch.from_numpy(np.stack([a for arrays in per_folder for a in arrays])).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor([label for label in range(len(files)) for _ in range(per_class)], dtype=torch.int64)
    order = torch.from_numpy(np.random.default_rng(JPEG_ORDER_SEED).permutation(len(y)))
    return x[order].contiguous(), y[order].contiguous()


def jpeg_cache(data_dir, train: bool) -> Path:
    return Path(data_dir) / JPEG_FOLDER / f"cifar10-{'train' if train else 'test'}.pt"


def load_cifar10_jpeg(data_dir, train: bool = True, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from the unpacked JPEG mirror: (uint8 [N, 3, 32, 32], int64 [N]) like `load_cifar`.

    The first call decodes the JPEGs and caches the tensors (atomically) beside them.
    """
    import os
    root = Path(data_dir) / JPEG_FOLDER
    split_dir = root / ("train" if train else "test")
    if not split_dir.is_dir():
        raise DatasetMissingError(JPEG_SOURCE, split_dir, FIX)
    cache = jpeg_cache(data_dir, train)
    if cache.exists():
        x, y = torch.load(cache, weights_only=True)
    else:
        x, y = _decode_jpeg_split(split_dir, JPEG_COUNTS[train])
        tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
        torch.save((x, y), tmp)
        os.replace(tmp, cache)
    return x.to(device), y.to(device)


def is_standin(source: str) -> bool:
    """True when a loader's source string names a stand-in rather than the real dataset."""
    return "stand-in" in str(source).lower()


def fetch_cifar(data_dir, num_classes: int) -> Path:
    """Download CIFAR-10/100 with torchvision into data_dir; offline, CIFAR-10 comes from the mirror
    (`HYPERBOOK_DATA_MIRROR`) when one is set; else a clear message."""
    cls = _dataset_class(_check_classes(num_classes))
    try:
        cls(str(data_dir), train=True, download=True)
        cls(str(data_dir), train=False, download=True)
    except Exception as err:
        from .mirror import mirror_dir, unpack
        if num_classes == 10 and mirror_dir() is not None:
            print(f"torchvision download failed ({type(err).__name__}); taking {JPEG_SOURCE} from the mirror")
            unpack("cifar10", data_dir)
            for train in (True, False):     # decode once now, so chapters start at once
                load_cifar10_jpeg(data_dir, train=train)
            return Path(data_dir) / JPEG_FOLDER
        raise BookError(
            f"could not download {NAMES[num_classes]} with torchvision ({type(err).__name__}: {err}). "
            f"CIFAR needs the internet (https://www.cs.toronto.edu/~kriz/cifar.html): on a machine with "
            f"access run `make data`, or unpack the python-version tarball so that "
            f"{folder(data_dir, num_classes)} exists. Until then the chapters use a labelled "
            f"Fashion-MNIST stand-in.") from err
    return folder(data_dir, num_classes)


def fashion_standin(data_dir, train: bool = True, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as uint8 [N, 3, 32, 32] (zero-padded 28->32, grey repeated to RGB), labels [N]."""
    from .fashion_mnist import FASHION_MNIST_MD5, fetch_fashion_mnist, load_fashion_mnist, raw_dir
    if not all((raw_dir(data_dir) / n).exists() for n in FASHION_MNIST_MD5):
        fetch_fashion_mnist(data_dir)
    images, labels = load_fashion_mnist(data_dir, train=train, device=device)
    images = torch.nn.functional.pad(images, (2, 2, 2, 2))
    return images.unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), labels


def load_cifar_or_standin(data_dir, num_classes: int, train: bool = True, device="cpu",
                          allow_standin: bool = True) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The best CIFAR copy present: torchvision's files, else (CIFAR-10) the JPEG mirror, else, when
    `allow_standin`, the Fashion-MNIST stand-in. Returns (images, labels, source).

    `full` runs pass allow_standin=False: with no real copy they stop with the command that gets one.
    """
    try:
        images, labels = load_cifar(data_dir, num_classes, train=train, device=device)
        return images, labels, NAMES[num_classes]
    except DatasetMissingError as missing:
        if num_classes == 10 and (Path(data_dir) / JPEG_FOLDER).is_dir():
            images, labels = load_cifar10_jpeg(data_dir, train=train, device=device)
            return images, labels, JPEG_SOURCE
        if not allow_standin:
            extra = "" if num_classes == 10 else " (CIFAR-100 is not in the offline mirror: it needs the internet)"
            raise DatasetMissingError(
                NAMES[num_classes], folder(data_dir, num_classes),
                f"a `full` run never trains on a stand-in{extra}; {FIX}") from missing
        images, labels = fashion_standin(data_dir, train=train, device=device)
        return images, labels, standin_label(num_classes)


def normalise(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float, standardised per channel with CIFAR's mean and std."""
    mean = torch.tensor(CIFAR_MEAN, device=images_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=images_u8.device).view(1, 3, 1, 1)
    return (images_u8.float() - mean) / std

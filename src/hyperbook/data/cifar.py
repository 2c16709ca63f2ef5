"""CIFAR-10 / CIFAR-100 through torchvision's loaders, and a labelled stand-in.

The real data live where torchvision expects them:
<data_dir>/cifar-10-batches-py/ and <data_dir>/cifar-100-python/ (torchvision
checks each batch file's md5 itself). `fetch_cifar` downloads them with
torchvision (needs the internet; there is no offline mirror of CIFAR in the
package registries this project can reach).

Where CIFAR is absent, `load_cifar_or_standin` falls back to Fashion-MNIST
(real images, 10 classes, available offline from Debian) made CIFAR-shaped:
28x28 zero-padded by 2 px to 32x32 and the grey channel repeated to RGB. The
returned `source` string names which one was used; chapters print it beside
every number computed on it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BookError, DatasetMissingError, UnknownChoiceError

FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
NAMES = {10: "CIFAR-10", 100: "CIFAR-100"}
FIX = "run `make data` (torchvision download of CIFAR; needs the internet)"
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


def fetch_cifar(data_dir, num_classes: int) -> Path:
    """Download CIFAR-10/100 with torchvision into data_dir; offline it fails with a clear message."""
    cls = _dataset_class(_check_classes(num_classes))
    try:
        cls(str(data_dir), train=True, download=True)
        cls(str(data_dir), train=False, download=True)
    except Exception as err:
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


def load_cifar_or_standin(data_dir, num_classes: int, train: bool = True,
                          device="cpu") -> tuple[torch.Tensor, torch.Tensor, str]:
    """Real CIFAR when present, else the Fashion-MNIST stand-in; returns (images, labels, source)."""
    try:
        images, labels = load_cifar(data_dir, num_classes, train=train, device=device)
        return images, labels, NAMES[num_classes]
    except DatasetMissingError:
        images, labels = fashion_standin(data_dir, train=train, device=device)
        return images, labels, standin_label(num_classes)


def normalise(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float, standardised per channel with CIFAR's mean and std."""
    mean = torch.tensor(CIFAR_MEAN, device=images_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=images_u8.device).view(1, 3, 1, 1)
    return (images_u8.float() - mean) / std

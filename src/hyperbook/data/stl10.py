"""STL-10's labelled images through torchvision's loader, the HE-CNN document's split, and a labelled stand-in.

The real data live where torchvision expects them: <data_dir>/stl10_binary/
(torchvision checks the archive's md5 when it downloads, and the files' presence
when it loads). `fetch_stl10` downloads them (needs the internet; there is no
offline mirror in the package registries this project can reach).

The document trains on the 13,000 labelled images (5,000 'train' + 8,000
'test', ignoring the 100,000 unlabelled ones) split 80 / 20. Which images go
where is not published; `split_labelled` draws the split from a fixed seed.

Where STL-10 is absent, `load_stl10_or_standin` falls back to Fashion-MNIST
(real images, 10 classes, offline from Debian) made STL-shaped: 28x28 resized
bilinearly to 96x96 and the grey channel repeated to RGB; its own train / test
split is kept. The returned `source` names which one was used.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import BookError, DatasetMissingError

FOLDER = "stl10_binary"
FIX = "run `make data` (torchvision download of STL-10, about 2.6 GB; needs the internet)"
STANDIN_LABEL = "Fashion-MNIST stand-in for STL-10 (28->96 px bilinear, grey->RGB)"
SPLIT_SEED = 0


def load_stl10_labelled(data_dir, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """All 13,000 labelled images (uint8 [N, 3, 96, 96]) and labels, 'train' then 'test' split."""
    path = Path(data_dir) / FOLDER
    if not path.is_dir():
        raise DatasetMissingError("STL-10", path, FIX)
    import torchvision
    images, labels = [], []
    for split in ("train", "test"):
        try:
            ds = torchvision.datasets.STL10(str(data_dir), split=split, download=False)
        except RuntimeError as err:   # torchvision: files missing or corrupt
            raise DatasetMissingError("STL-10", path, f"{FIX} (torchvision said: {err})") from err
        images.append(torch.from_numpy(ds.data))
        labels.append(torch.as_tensor(ds.labels, dtype=torch.int64))
    return torch.cat(images).to(device), torch.cat(labels).to(device)


def split_labelled(n: int, train_fraction: float = 0.8, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors (train, test) of a fixed random 80 / 20 split of n items."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(round(train_fraction * n))
    return perm[:cut], perm[cut:]


def fetch_stl10(data_dir) -> Path:
    import torchvision
    try:
        torchvision.datasets.STL10(str(data_dir), split="train", download=True)
    except Exception as err:
        raise BookError(f"could not download STL-10 with torchvision ({type(err).__name__}: {err}). On a machine "
                        f"with the internet run `make data`, or unpack stl10_binary.tar.gz so that "
                        f"{Path(data_dir) / FOLDER} exists. Until then the HE-CNN chapter uses a labelled "
                        f"Fashion-MNIST stand-in.") from err
    return Path(data_dir) / FOLDER


def fashion_standin_96(data_dir, train: bool = True, device="cpu", count: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The stand-in, the first `count` images only when count > 0 (resizing all 70k takes 20 s and 1.9 GB)."""
    from .cifar import fashion_standin
    images, labels = fashion_standin(data_dir, train=train, device=device)     # [N, 3, 32, 32], 28 px + 2 pad
    if count:
        images, labels = images[:count], labels[:count]
    images = images[..., 2:30, 2:30].float()
    out = torch.empty(images.shape[0], 3, 96, 96, dtype=torch.uint8, device=device)
    for s in range(0, images.shape[0], 5000):       # chunks: 60k x 3 x 96 x 96 floats would be 6.6 GB
        out[s:s + 5000] = F.interpolate(images[s:s + 5000], size=96, mode="bilinear", align_corners=False) \
            .round().clamp(0, 255).to(torch.uint8)
    return out, labels


def load_stl10_or_standin(data_dir, device="cpu", n_train: int = 0, n_test: int = 0,
                          allow_standin: bool = True) -> tuple[tuple, tuple, str]:
    """((train images, labels), (test images, labels), source): the document's split of real STL-10, else the
    stand-in. n_train / n_test > 0 limit the stand-in's size (the real data are loaded whole).
    allow_standin=False (the `full` profile): real STL-10 or a DatasetMissingError naming it."""
    try:
        images, labels = load_stl10_labelled(data_dir, device)
    except DatasetMissingError:
        if not allow_standin:
            raise
        return (fashion_standin_96(data_dir, True, device, n_train), fashion_standin_96(data_dir, False, device, n_test),
                STANDIN_LABEL)
    tr, te = split_labelled(images.shape[0])
    tr, te = tr.to(images.device), te.to(images.device)
    return (images[tr], labels[tr]), (images[te], labels[te]), "STL-10 (labelled 13k, 80/20 split, seed 0)"

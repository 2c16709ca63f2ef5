"""ILSVRC2012 (ImageNet) from the standard folder layout, with the class subsets of thesis ch. 3.

Expected layout (what the official devkit scripts and most mirrors produce)::

    <root>/train/<wnid>/*.JPEG
    <root>/val/<wnid>/*.JPEG

read as ``torchvision.datasets.ImageFolder`` would (same loader, labels in sorted wnid order). ImageNet cannot be downloaded automatically (it needs
an account at image-net.org); a missing tree raises ``DatasetMissingError`` with what to do.

Class subsets (R-T1, R-T2: "the 100 largest classes ... selection is done by folder size"; R-T4:
1000 / 100 / 10 classes): ``select_classes(root, k)`` sorts the training folders by their number of
images, largest first, ties broken by the wnid in sorted order, and keeps the first k. Many classes
have exactly 1300 training images, so for k <= 100 the rule reduces to "the first k wnids, in sorted
order, among the classes with the most images"; that tie-break is our choice (the thesis does not
give one). The 10-class subset of table 4 uses the same rule (the thesis does not say how it chose it).

Pre-processing as the thesis's section 3.4.1 and the Caffe model zoo NiN it trains: every image is
resized to 256 x 256 (aspect ratio not kept, as Caffe's ImageNet LMDB conversion does), training
images are randomly cropped to 224 x 224 and mirrored with probability 1/2, validation images are
centre-cropped to 224 x 224; the per-channel dataset mean is subtracted (``IMAGENET_MEAN`` in 0..255,
the usual ILSVRC2012 training-set mean). The 224 crop is the Caffe NiN definition's, not stated in the thesis.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BookError, DatasetMissingError

FIX = ("ImageNet (ILSVRC2012) cannot be downloaded automatically: get it from https://image-net.org "
       "(account needed) and unpack it as <data_dir>/imagenet/train/<wnid>/*.JPEG and "
       "<data_dir>/imagenet/val/<wnid>/*.JPEG (validation images sorted into class folders)")
IMAGENET_MEAN = (123.68, 116.78, 103.94)      # per-channel mean (R, G, B) of ILSVRC2012 training images, 0..255
RESIZE = 256
CROP = 224
EXTENSIONS = (".jpeg", ".jpg", ".png")


def imagenet_root(data_dir) -> Path:
    return Path(data_dir) / "imagenet"


def _split_dir(root, split: str) -> Path:
    if split not in ("train", "val"):
        from ..errors import UnknownChoiceError
        raise UnknownChoiceError("ImageNet split", split, ("train", "val"))
    path = Path(root) / split
    if not path.is_dir() or not any(p.is_dir() for p in path.iterdir()):
        raise DatasetMissingError("ImageNet (ILSVRC2012)", path, FIX)
    return path


def _count_images(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)


def class_sizes(root) -> dict[str, int]:
    """{wnid: number of training images} for every class folder under <root>/train."""
    train = _split_dir(root, "train")
    return {d.name: _count_images(d) for d in sorted(train.iterdir()) if d.is_dir()}


def select_classes(root, k: int | None) -> list[str]:
    """The k largest training classes (ties: sorted wnid order); k None or >= all: every class, sorted."""
    sizes = class_sizes(root)
    if k is None or k >= len(sizes):
        if k is not None and k > len(sizes):
            raise BookError(f"asked for {k} ImageNet classes but {Path(root) / 'train'} has only {len(sizes)}")
        return sorted(sizes)
    if k < 1:
        raise BookError(f"the number of classes must be at least 1, got {k}")
    ranked = sorted(sizes, key=lambda w: (-sizes[w], w))
    return sorted(ranked[:k])


def transform(train: bool, resize: int = RESIZE, crop: int = CROP):
    """256x256 resize, then random crop + mirror (train) or centre crop (val); float tensor minus the mean."""
    from torchvision import transforms as T
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    steps = [T.Resize((resize, resize)), T.RandomCrop(crop), T.RandomHorizontalFlip()] if train else \
        [T.Resize((resize, resize)), T.CenterCrop(crop)]
    return T.Compose(steps + [T.PILToTensor(), T.Lambda(lambda x: x.float() - mean)])


class ImageNetSubset(torch.utils.data.Dataset):
    """The ImageFolder layout <root>/<split>/<wnid>/ restricted to `wnids`; labels 0..len(wnids)-1 in sorted wnid order."""

    def __init__(self, root, split: str, wnids, train_transform: bool | None = None,
                 resize: int = RESIZE, crop: int = CROP):
        from torchvision.datasets.folder import default_loader
        path = _split_dir(root, split)
        wnids = sorted(wnids)
        missing = [w for w in wnids if not (path / w).is_dir()]
        if missing:
            raise DatasetMissingError(f"ImageNet {split} classes {missing[:3]}", path, FIX)
        self.wnids = wnids
        aug = (split == "train") if train_transform is None else train_transform
        self.loader, self.transform = default_loader, transform(aug, resize, crop)
        # the samples ImageFolder would list for these classes, labels in sorted wnid order
        self.samples = [(str(f), k) for k, w in enumerate(wnids) for f in sorted((path / w).iterdir())
                        if f.suffix.lower() in EXTENSIONS]
        if not self.samples:
            raise DatasetMissingError(f"ImageNet {split} images", path, FIX)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        return self.transform(self.loader(path)), label


def load_imagenet(data_dir, n_classes: int | None = None, root=None, **kw):
    """(train, val) ImageNetSubset of the `n_classes` largest classes (all 1000 for None)."""
    root = imagenet_root(data_dir) if root is None else Path(root)
    wnids = select_classes(root, n_classes)
    return ImageNetSubset(root, "train", wnids, **kw), ImageNetSubset(root, "val", wnids, **kw)


def batch(dataset: ImageNetSubset, indices, device="cpu", generator: torch.Generator | None = None):
    """Decode `indices` into (images [B, 3, crop, crop] float, labels [B]); random crops/flips seeded by `generator`."""
    if generator is not None:     # torchvision's random transforms draw from the global generator
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    xs, ys = zip(*(dataset[int(i)] for i in indices))
    return torch.stack(xs).to(device), torch.as_tensor(ys, dtype=torch.int64).to(device)

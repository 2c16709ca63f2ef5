"""The datasets the book knows: name -> how `make data` fetches it, and whether it is ready in a data folder."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import BookError, UnknownChoiceError
from .mnist import fetch_mnist


def _fetch_fashion_mnist(data_dir):
    from .fashion_mnist import fetch_fashion_mnist
    return fetch_fashion_mnist(data_dir)


def _fetch_cifar(num_classes):
    def fetch(data_dir):
        from .cifar import fetch_cifar
        return fetch_cifar(data_dir, num_classes)
    return fetch


def _fetch_stl10(data_dir):
    from .stl10 import fetch_stl10
    return fetch_stl10(data_dir)


def _fetch_sr(data_dir):
    """The benchmarks (Set5, Set14, B100) from folders unpacked by hand, else the mirror; DIV2K and Urban100
    only by hand (see data/README.md)."""
    from .mirror import fetch_sr_benchmarks
    return fetch_sr_benchmarks(data_dir)


def _fetch_bsds500(data_dir):
    from .bsds500 import fetch_bsds500
    from .mirror import fetch_bsds500_offline
    return fetch_bsds500_offline(data_dir, fetch_bsds500)


# required: the book cannot run without it; optional: a failure is reported and the chapters use stand-ins
DATASETS = {
    "mnist": (fetch_mnist, True),
    "fashion_mnist": (_fetch_fashion_mnist, False),
    "cifar10": (_fetch_cifar(10), False),
    "cifar100": (_fetch_cifar(100), False),
    "bsds500": (_fetch_bsds500, False),
    "sr_benchmarks": (_fetch_sr, False),     # after bsds500: B100 is BSDS500's val split
}

# fetched only when named (`make data DATASETS=stl10`): too large to download on every `make data` / `make test`
ON_REQUEST = {
    "stl10": (_fetch_stl10, False),     # 2.6 GB archive
}


def fetch(name: str, data_dir) -> None:
    known = {**DATASETS, **ON_REQUEST}
    if name not in known:
        raise UnknownChoiceError("dataset", name, known)
    fn, required = known[name]
    try:
        where = fn(Path(data_dir))
        print(f"{name}: ready ({where})")
    except (BookError, ImportError, OSError, RuntimeError) as err:
        if required:
            raise
        print(f"{name}: not available here ({err}); chapters that need it use their labelled stand-ins")


# ----------------------------------------------------------------------------- is a dataset ready?
# name -> check(data_dir) -> bool: the files each loader reads are in place (presence only; the loaders verify
# checksums when they read). Each check asks the loader's own module where its files live.
def _idx_ready(module_name: str, checksums: str):
    def check(data_dir):
        module = importlib.import_module(f".{module_name}", __package__)
        return all((module.raw_dir(data_dir) / name).is_file() for name in getattr(module, checksums))
    return check


def _cifar_ready(num_classes):
    def check(data_dir):
        from . import cifar
        if cifar.folder(data_dir, num_classes).is_dir():
            return True
        jpeg = Path(data_dir) / cifar.JPEG_FOLDER       # CIFAR-10 only: the offline mirror's JPEG copy
        return num_classes == 10 and all((jpeg / split).is_dir() for split in ("train", "test"))
    return check


def _stl10_ready(data_dir):
    from .stl10 import FOLDER
    return (Path(data_dir) / FOLDER).is_dir()


def _bsds500_ready(data_dir):
    from .bsds500 import SPLITS, root
    return all((root(data_dir) / kind / split).is_dir() for kind in ("images", "groundTruth") for split in SPLITS)


def _sr_ready(names):
    def check(data_dir):
        from .sr_folders import sr_available
        return sr_available(data_dir, names)
    return check


def _imagenet_ready(data_dir):
    from .imagenet import imagenet_root
    train = imagenet_root(data_dir) / "train"
    return train.is_dir() and any(p.is_dir() for p in train.iterdir())


def _celeba_ready(data_dir):
    return (Path(data_dir) / "celeba").is_dir()     # torchvision's CelebA base folder


READINESS = {
    "mnist": _idx_ready("mnist", "MNIST_MD5"),
    "fashion_mnist": _idx_ready("fashion_mnist", "FASHION_MNIST_MD5"),
    "cifar10": _cifar_ready(10),
    "cifar100": _cifar_ready(100),
    "stl10": _stl10_ready,
    "bsds500": _bsds500_ready,
    "sr_benchmarks": _sr_ready(("Set5", "Set14", "B100")),   # the test sets the book evaluates (Urban100: quoted)
    "div2k": _sr_ready(("DIV2K",)),
    "imagenet": _imagenet_ready,
    "celeba": _celeba_ready,
    "lfw_subset": lambda d: True,                             # bundled with scikit-image
}


def dataset_ready(name: str, data_dir) -> bool | None:
    """True when `name`'s files are in `data_dir` (as its loader expects them), False when not, None for a
    name the data layer does not know (then nothing can be said)."""
    check = READINESS.get(name)
    return None if check is None else bool(check(Path(data_dir)))

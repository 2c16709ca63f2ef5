"""The datasets `make data` knows how to fetch: name -> fetch function."""
from __future__ import annotations

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
    from .sr_folders import prepare_sr
    return prepare_sr(data_dir)


def _fetch_bsds500(data_dir):
    from .bsds500 import fetch_bsds500
    return fetch_bsds500(data_dir)


# required: the book cannot run without it; optional: a failure is reported and the chapters use stand-ins
DATASETS = {
    "mnist": (fetch_mnist, True),
    "fashion_mnist": (_fetch_fashion_mnist, False),
    "cifar10": (_fetch_cifar(10), False),
    "cifar100": (_fetch_cifar(100), False),
    "sr_benchmarks": (_fetch_sr, False),
    "bsds500": (_fetch_bsds500, False),
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

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

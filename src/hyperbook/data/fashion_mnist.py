"""Fashion-MNIST (Zalando) through torchvision's loader, with an offline source.

Files live where torchvision expects them: <data_dir>/FashionMNIST/raw/<idx file>
(unzipped). `fetch_fashion_mnist` takes them, in this order, from

1. Debian's package `dataset-fashion-mnist` when it is installed
   (gzipped IDX files in /usr/share/datasets/fashion-mnist/);
2. torchvision's download (needs the internet);
3. the same Debian package fetched without root:
   `apt-get download dataset-fashion-mnist && dpkg -x <deb> <tmp>`
   (only needs the Debian package mirror).

Every file is checked against the md5s below before use. The md5s are those
of the files in Debian's package dataset-fashion-mnist 0.0~git20200523.55506a9-1
(the gzip files are recompressed by Debian, so their md5s differ from the ones
Zalando publishes for its .gz files; the unzipped IDX files are what we check).
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from ..errors import BookError
from .checksums import load_verified_idx, md5sum, verify_files

DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# md5 of the unzipped IDX files (what torchvision reads)
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# md5 of the gzip files as shipped in the Debian package (for reference / checking the .deb)
DEBIAN_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "cf8536b0aa1a6ac5fa3f23001093305c",
    "train-labels-idx1-ubyte.gz": "10bea18fdb374794d4bb42e356e600c9",
    "t10k-images-idx3-ubyte.gz": "f78720b4224f21cce2f2ccf2d7a94c9a",
    "t10k-labels-idx1-ubyte.gz": "0d30e22e447f3c33dab9ed536400ac01",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FIX = ("run `make data` (copies the IDX files from Debian's package dataset-fashion-mnist: "
       "`apt-get install dataset-fashion-mnist`, or without root "
       "`apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb <dir>`)")


def raw_dir(data_dir) -> Path:
    return Path(data_dir) / "FashionMNIST" / "raw"


def _unzip_from(folder: Path, dest: Path) -> None:
    for name in FASHION_MNIST_MD5:
        gz = folder / f"{name}.gz"
        with gzip.open(gz, "rb") as src, open(dest / name, "wb") as out:
            shutil.copyfileobj(src, out)


def _from_apt_download(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp, check=True,
                       capture_output=True, timeout=900)
        deb = next(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True,
                       capture_output=True, timeout=300)
        _unzip_from(Path(tmp) / "x" / DEBIAN_DIR.relative_to("/"), dest)


def fetch_fashion_mnist(data_dir) -> Path:
    """Put the four unzipped Fashion-MNIST IDX files under data_dir/FashionMNIST/raw and verify them."""
    dest = raw_dir(data_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if not all((dest / n).exists() for n in FASHION_MNIST_MD5):
        errors = []
        if all((DEBIAN_DIR / f"{n}.gz").exists() for n in FASHION_MNIST_MD5):
            _unzip_from(DEBIAN_DIR, dest)
        else:
            try:
                import torchvision
                torchvision.datasets.FashionMNIST(str(data_dir), train=True, download=True)
                torchvision.datasets.FashionMNIST(str(data_dir), train=False, download=True)
            except Exception as err:  # no internet: the Debian mirror
                errors.append(f"torchvision download failed ({type(err).__name__}: {err})")
                print(f"{errors[-1]}; taking Fashion-MNIST from Debian's {DEBIAN_PACKAGE}")
                try:
                    _from_apt_download(dest)
                except (OSError, subprocess.SubprocessError, StopIteration) as apt_err:
                    raise BookError(
                        f"could not fetch Fashion-MNIST: {errors[0]} and `apt-get download "
                        f"{DEBIAN_PACKAGE}` failed ({apt_err}). Put the four IDX files "
                        f"({', '.join(FASHION_MNIST_MD5)}) in {dest} by hand.") from apt_err
    verify_files("Fashion-MNIST", dest, FASHION_MNIST_MD5, FIX)
    return dest


def load_fashion_mnist(data_dir, train: bool = True, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) on `device`, via torchvision.datasets.FashionMNIST."""
    import torchvision
    return load_verified_idx(torchvision.datasets.FashionMNIST, "Fashion-MNIST", data_dir, raw_dir(data_dir),
                             FASHION_MNIST_MD5, FIX, train, device)


__all__ = ["fetch_fashion_mnist", "load_fashion_mnist", "raw_dir", "FASHION_MNIST_MD5",
           "DEBIAN_GZ_MD5", "CLASSES", "md5sum"]

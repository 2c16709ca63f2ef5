"""md5 verification of dataset files; a bad or missing file stops with the command that fixes it."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ChecksumError, DatasetMissingError


def file_digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 22) -> str:
    """Hex digest of a file, read in chunks (md5 for the datasets' published sums, sha256 for the mirror)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5sum(path: Path, chunk: int = 1 << 22) -> str:
    return file_digest(path, "md5", chunk)


def verify_files(dataset: str, folder: Path, expected: dict[str, str], fix: str) -> None:
    """Check every file of `expected` (name -> md5) exists in `folder` with its checksum.

    A verified file leaves a `.md5ok` stamp holding its size and mtime so that
    the 50 MB are hashed once, not at every load; any change re-verifies.
    """
    for name, md5 in expected.items():
        path = Path(folder) / name
        if not path.exists():
            raise DatasetMissingError(f"{dataset} ({name})", path, fix)
        stamp = path.with_name(path.name + ".md5ok")
        st = path.stat()
        key = f"{md5} {st.st_size} {st.st_mtime_ns}"
        if stamp.exists() and stamp.read_text() == key:
            continue
        got = md5sum(path)
        if got != md5:
            raise ChecksumError(path, md5, got, fix)
        stamp.write_text(key)


def load_verified_idx(dataset_cls, name: str, data_dir, folder, expected: dict[str, str], fix: str,
                      train: bool = True, device="cpu"):
    """Verify an MNIST-format dataset's files, then load it with its torchvision class.

    Returns (images uint8 [N, H, W], labels int64 [N]) on `device`.
    """
    verify_files(name, folder, expected, fix)
    ds = dataset_cls(str(data_dir), train=train, download=False)
    return ds.data.to(device), ds.targets.to(device)

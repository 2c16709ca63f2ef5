"""The offline dataset mirror: a folder of archives with a `SHA256SUMS` file (CI names its own).

`make data` (through `hyperbook.data.registry`) tries the project's own downloaders first; where they cannot
reach the internet it takes the dataset from the mirror named by the environment variable
`HYPERBOOK_DATA_MIRROR` (or `make data MIRROR=<folder>`). For each archive:

1. its sha256 is checked against the folder's `SHA256SUMS` before anything is unpacked (a mismatch stops with
   the archive's name, both hashes and what to do);
2. it is unpacked into a temporary folder inside `data/` and moved into the loader's layout with one rename, so
   a killed `make data` leaves either nothing or the whole dataset;
3. a stamp (`.mirror-<archive>.ok`, holding the archive's sha256) marks the unpacked copy, so the next
   `make data` does nothing.

Nothing unpacked here is ever committed: `data/` is git-ignored.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BookError, DatasetMissingError
from .checksums import file_digest

ENV = "HYPERBOOK_DATA_MIRROR"
SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class MirrorArchive:
    dataset: str          # what the reader calls it
    archive: str          # file name inside the mirror folder
    members: dict         # folder inside the archive -> folder relative to data_dir


ARCHIVES = {
    "cifar10": MirrorArchive("CIFAR-10 (JPEG mirror)", "cifar10-jpeg.tar.gz", {"cifar10-jpeg": "cifar10-jpeg"}),
    "bsds500": MirrorArchive("BSDS500", "bsds500.tar", {"BSR": "BSR"}),
    "sr_benchmarks": MirrorArchive("Set5 and Set14", "sr-set5-set14.tar",
                                   {"sr-benchmark/CSet5": "benchmark/Set5/HR",
                                    "sr-benchmark/CSet14": "benchmark/Set14/HR"}),
}


class MirrorChecksumError(BookError):
    def __init__(self, path: Path, expected: str, got: str):
        super().__init__(
            f"sha256 mismatch for mirror archive {path.name} ({path}): SHA256SUMS says {expected}, the file hashes to "
            f"{got}. The archive is corrupt or not the one the mirror lists: copy it again from the mirror's source "
            f"(see the mirror folder's README.md), then rerun `make data`. Nothing was unpacked.")


def mirror_dir(explicit=None) -> Path | None:
    """The mirror folder: `explicit`, else $HYPERBOOK_DATA_MIRROR, else None (no mirror configured)."""
    value = explicit if explicit is not None else os.environ.get(ENV, "")
    if not str(value).strip():
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise BookError(f"the data mirror {path} (from {ENV} or MIRROR=) is not a folder; point it at the folder "
                        f"that holds the archives and {SUMS}, e.g. `make data MIRROR=/path/to/mirror`")
    return path


def sha256sum(path: Path) -> str:
    return file_digest(path, "sha256")


def read_sums(mirror: Path) -> dict[str, str]:
    sums = Path(mirror) / SUMS
    if not sums.exists():
        raise DatasetMissingError(f"{SUMS} of the data mirror", sums,
                                  f"the mirror folder must list every archive's sha256 in {SUMS} "
                                  f"(`sha256sum *.tar* > {SUMS}` where the archives were made)")
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest.lower()
    return out


def verify_archive(mirror: Path, name: str) -> tuple[Path, str]:
    """(path, sha256) of a mirror archive whose hash matches SHA256SUMS; else a clear error."""
    spec = ARCHIVES[name]
    path = Path(mirror) / spec.archive
    sums = read_sums(mirror)
    if not path.exists():
        raise DatasetMissingError(spec.dataset, path, f"put {spec.archive} into the mirror folder {mirror} "
                                                      f"(its README.md says where it comes from)")
    if spec.archive not in sums:
        raise BookError(f"{spec.archive} is in the mirror {mirror} but not listed in its {SUMS}: add its sha256 "
                        f"there, so that it can be verified before it is unpacked")
    got = sha256sum(path)
    if got != sums[spec.archive]:
        raise MirrorChecksumError(path, sums[spec.archive], got)
    return path, got


def stamp_path(data_dir, name: str) -> Path:
    return Path(data_dir) / f".mirror-{ARCHIVES[name].archive}.ok"


def is_unpacked(data_dir, name: str) -> bool:
    return stamp_path(data_dir, name).exists()


def _safe_members(tar: tarfile.TarFile, prefix: str):
    for member in tar.getmembers():
        if member.name == prefix or member.name.startswith(prefix.rstrip("/") + "/"):
            yield member


def unpack(name: str, data_dir, mirror=None) -> Path:
    """Verify and unpack one mirror archive into data_dir (once). Returns data_dir."""
    data_dir = Path(data_dir)
    if is_unpacked(data_dir, name):
        return data_dir
    mirror = mirror_dir(mirror)
    spec = ARCHIVES[name]
    if mirror is None:
        raise DatasetMissingError(spec.dataset, f"a mirror folder holding {spec.archive}",
                                  f"set {ENV}=<folder with the archives and {SUMS}> or run "
                                  f"`make data MIRROR=<folder>` (CI sets the variable when its mirror folder exists)")
    path, digest = verify_archive(mirror, name)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mirror-tmp-", dir=data_dir))
    try:
        with tarfile.open(path) as tar:
            for inner in spec.members:
                members = list(_safe_members(tar, inner))
                if not members:
                    raise BookError(f"mirror archive {spec.archive} has no folder {inner!r}; it is not the archive "
                                    f"the loader expects (see the mirror's README.md)")
                tar.extractall(tmp, members=members, filter="data")
        for inner, target in spec.members.items():
            final = data_dir / target
            if final.exists():      # a half-made copy from an older layout: replace it whole
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / inner, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp_path(data_dir, name).write_text(digest + "\n")
    return data_dir


# ----------------------------------------------------------------------------- per-dataset steps of `make data`
def fetch_bsds500_offline(data_dir, download) -> Path:
    """BSDS500: the project's downloader first, then the mirror; the unpacked layout is checked either way."""
    from .bsds500 import check_bsds500
    try:
        return download(data_dir)
    except (BookError, OSError) as err:
        if mirror_dir() is None:
            raise
        print(f"BSDS500 download failed ({type(err).__name__}); taking it from the mirror")
    unpack("bsds500", data_dir)
    return check_bsds500(data_dir)


B100_FOLDER = "benchmark/B100/HR"
B100_COUNT = 100     # BSDS500 val = the BSDS300 test set


def make_b100(data_dir) -> Path:
    """B100 (the BSDS300 test set) = BSDS500's 100 `val` images, written once as lossless PNGs in the
    EDSR benchmark layout (the JPEG pixels unchanged), atomically (temp folder, then rename)."""
    from PIL import Image
    from .bsds500 import root
    data_dir = Path(data_dir)
    final = data_dir / B100_FOLDER
    if final.is_dir() and len(list(final.glob("*.png"))) == B100_COUNT:
        return final
    src = sorted((root(data_dir) / "images" / "val").glob("*.jpg"))
    if len(src) != B100_COUNT:
        raise DatasetMissingError("B100 (BSDS500 val)", root(data_dir) / "images" / "val",
                                  f"B100 is made from BSDS500's {B100_COUNT} val images: run `make data` with the mirror "
                                  "(`make data MIRROR=<folder>`) so that BSDS500 is unpacked first")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".b100-tmp-", dir=final.parent))
    try:
        for path in src:
            with Image.open(path) as im:
                im.convert("RGB").save(tmp / f"{path.stem}.png")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fetch_sr_benchmarks(data_dir) -> Path:
    """Set5 and Set14 from the mirror and B100 from BSDS500 val, each with a checked MANIFEST.md5.

    DIV2K and Urban100 are not in the mirror: the message says so, and their folders stay as they are.
    """
    from .sr_folders import SR_DATASETS, image_files, read_manifest, sr_folder, verify_files, write_manifest
    data_dir = Path(data_dir)
    have_local = all(sr_folder(data_dir, n).is_dir() for n in ("Set5", "Set14"))
    if not have_local:
        unpack("sr_benchmarks", data_dir)
    make_b100(data_dir)
    for name in ("Set5", "Set14", "B100"):
        folder = sr_folder(data_dir, name)
        found = len(image_files(folder))
        if found != SR_DATASETS[name][1]:
            raise DatasetMissingError(name, folder, f"{SR_DATASETS[name][1]} images expected, {found} found: delete "
                                                    f"the folder and its mirror stamp in data/, then rerun `make data`")
        if not (folder / "MANIFEST.md5").exists():
            write_manifest(folder)
        verify_files(name, folder, read_manifest(folder), "delete the folder and rerun `make data`")
    absent = [n for n in ("DIV2K", "Urban100") if not sr_folder(data_dir, n).is_dir()]
    if absent:
        print(f"sr_benchmarks: Set5, Set14, B100 ready; not in the mirror and absent here: {', '.join(absent)} "
              f"(their rows stay quoted; training uses BSD200, BSDS500's train split, in place of DIV2K)")
    return data_dir / "benchmark"

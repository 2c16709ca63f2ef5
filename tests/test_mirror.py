"""The offline dataset mirror: verification, atomic one-time unpacking, and the loaders on tiny archives
written in the mirror's real formats (class-folder JPEGs, a BSDS tree with scipy-written .mat files, SR PNGs)."""
from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hyperbook.data import bsds500, cifar, mirror, sr_folders
from hyperbook.errors import BookError, DatasetMissingError

# one distinct colour per CIFAR-10 class, so a label can be read back from the decoded (lossy) JPEG
COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [128, 128, 0], [0, 0, 128]], dtype=np.uint8)


def _tar(folder: Path, out: Path, inner: str, gz: bool = False) -> None:
    with tarfile.open(out, "w:gz" if gz else "w") as tar:
        tar.add(folder / inner, arcname=inner)


def _write_sums(mirror_dir: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(mirror_dir.glob("*.tar*"))]
    (mirror_dir / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def tiny_cifar_mirror(tmp_path, monkeypatch):
    src, mdir = tmp_path / "src", tmp_path / "mirror"
    mdir.mkdir()
    counts = {True: 3, False: 2}
    for split, n in (("train", counts[True]), ("test", counts[False])):
        for k, name in enumerate(cifar.CLASSES_10):
            d = src / "cifar10-jpeg" / split / name
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.broadcast_to(COLOURS[k], (32, 32, 3)).copy()).save(d / f"{i:04d}.jpg",
                                                                                       quality=75)
    _tar(src, mdir / "cifar10-jpeg.tar.gz", "cifar10-jpeg", gz=True)
    _write_sums(mdir)
    monkeypatch.setattr(cifar, "JPEG_COUNTS", counts)
    monkeypatch.setenv(mirror.ENV, str(mdir))
    return mdir, tmp_path / "data", counts


def test_cifar_jpeg_decoding_in_a_process_pool_gives_the_same_tensors(tiny_cifar_mirror):
    mdir, data, counts = tiny_cifar_mirror
    mirror.unpack("cifar10", data)
    split = data / cifar.JPEG_FOLDER / "train"
    x1, y1 = cifar._decode_jpeg_split(split, counts[True], workers=1)
    x2, y2 = cifar._decode_jpeg_split(split, counts[True], workers=2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_cifar_jpeg_mirror_loads_like_torchvision(tiny_cifar_mirror):
    mdir, data, counts = tiny_cifar_mirror
    mirror.unpack("cifar10", data)
    x, y, source = cifar.load_cifar_or_standin(data, 10, train=True, allow_standin=False)
    assert source == "CIFAR-10 (JPEG mirror)" == cifar.JPEG_SOURCE and not cifar.is_standin(source)
    assert x.dtype == torch.uint8 and x.shape == (10 * counts[True], 3, 32, 32)
    assert y.dtype == torch.int64 and torch.bincount(y, minlength=10).tolist() == [counts[True]] * 10
    # labels follow CIFAR-10's class order: each image's colour is its class's colour
    mean_rgb = x.float().mean((2, 3)).numpy()
    nearest = np.argmin(((mean_rgb[:, None, :] - COLOURS[None].astype(float)) ** 2).sum(-1), axis=1)
    assert (nearest == y.numpy()).all()
    # not grouped by class: the fixed shuffle mixes classes in every prefix
    assert len(set(y[:10].tolist())) > 3
    # decoded once: the cache is there and a second load returns the same tensors
    assert cifar.jpeg_cache(data, True).exists()
    x2, y2, _ = cifar.load_cifar_or_standin(data, 10, train=True)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_unpack_happens_once_and_is_stamped(tiny_cifar_mirror):
    mdir, data, _ = tiny_cifar_mirror
    mirror.unpack("cifar10", data)
    assert mirror.is_unpacked(data, "cifar10")
    (mdir / "cifar10-jpeg.tar.gz").write_bytes(b"changed after unpacking")   # would fail verification
    mirror.unpack("cifar10", data)                                          # stamped: nothing to do


def test_wrong_checksum_stops_before_unpacking(tiny_cifar_mirror):
    mdir, data, _ = tiny_cifar_mirror
    with open(mdir / "cifar10-jpeg.tar.gz", "ab") as f:
        f.write(b"corrupt")
    with pytest.raises(mirror.MirrorChecksumError) as err:
        mirror.unpack("cifar10", data)
    msg = str(err.value)
    expected = (mdir / "SHA256SUMS").read_text().split()[0]
    assert "cifar10-jpeg.tar.gz" in msg and expected in msg
    assert hashlib.sha256((mdir / "cifar10-jpeg.tar.gz").read_bytes()).hexdigest() in msg
    assert not (data / "cifar10-jpeg").exists() and not mirror.is_unpacked(data, "cifar10")


def test_missing_archive_and_missing_mirror(tmp_path, monkeypatch):
    mdir = tmp_path / "mirror"
    mdir.mkdir()
    (mdir / "SHA256SUMS").write_text("")
    monkeypatch.setenv(mirror.ENV, str(mdir))
    with pytest.raises(DatasetMissingError, match="bsds500.tar"):
        mirror.unpack("bsds500", tmp_path / "data")
    monkeypatch.delenv(mirror.ENV)
    with pytest.raises(DatasetMissingError, match="MIRROR="):
        mirror.unpack("bsds500", tmp_path / "data")
    monkeypatch.setenv(mirror.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(BookError, match="not a folder"):
        mirror.mirror_dir()


def test_archive_without_the_expected_folder_leaves_nothing(tmp_path, monkeypatch):
    src, mdir, data = tmp_path / "src", tmp_path / "mirror", tmp_path / "data"
    (src / "something-else").mkdir(parents=True)
    (src / "something-else" / "a.txt").write_text("x")
    mdir.mkdir()
    _tar(src, mdir / "bsds500.tar", "something-else")
    _write_sums(mdir)
    monkeypatch.setenv(mirror.ENV, str(mdir))
    with pytest.raises(BookError, match="has no folder 'BSR'"):
        mirror.unpack("bsds500", data)
    assert sorted(os.listdir(data)) == []       # no temp folder, no stamp, no partial layout


def test_full_profile_refuses_the_standin(tmp_path):
    with pytest.raises(DatasetMissingError, match="never trains on a stand-in"):
        cifar.load_cifar_or_standin(tmp_path, 10, train=False, allow_standin=False)
    with pytest.raises(DatasetMissingError, match="CIFAR-100 is not in the offline mirror"):
        cifar.load_cifar_or_standin(tmp_path, 100, train=False, allow_standin=False)


def _write_bsds_tree(root: Path, counts: dict, rng) -> None:
    from scipy.io import savemat
    for split, n in counts.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "groundTruth" / split).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "images" / split / f"{100 + i}.jpg")
            cells = np.empty((1, 2), dtype=object)
            for a in range(2):       # two annotators, each a struct with Segmentation and Boundaries
                bd = np.zeros((12, 16), dtype=np.uint8)
                bd[:, 3 + a] = 1
                seg = np.ones((12, 16), dtype=np.uint16)
                seg[:, 4 + a:] = 2
                cells[0, a] = {"Segmentation": seg, "Boundaries": bd}
            savemat(root / "groundTruth" / split / f"{100 + i}.mat", {"groundTruth": cells})


@pytest.fixture
def tiny_bsds_and_sr_mirror(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    src, mdir = tmp_path / "src", tmp_path / "mirror"
    mdir.mkdir()
    bsds_counts = {"train": 2, "val": 3, "test": 2}
    _write_bsds_tree(src / "BSR" / "BSDS500" / "data", bsds_counts, rng)
    _tar(src, mdir / "bsds500.tar", "BSR")
    for name, n in (("CSet5", 2), ("CSet14", 3)):
        d = src / "sr-benchmark" / name
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    _tar(src, mdir / "sr-set5-set14.tar", "sr-benchmark")
    _write_sums(mdir)
    monkeypatch.setenv(mirror.ENV, str(mdir))
    monkeypatch.setattr(bsds500, "EXPECTED_COUNTS", bsds_counts)
    sizes = {**sr_folders.SR_DATASETS, "Set5": (sr_folders.SR_DATASETS["Set5"][0], 2),
             "Set14": (sr_folders.SR_DATASETS["Set14"][0], 3), "B100": (sr_folders.SR_DATASETS["B100"][0], 3)}
    monkeypatch.setattr(sr_folders, "SR_DATASETS", sizes)
    monkeypatch.setattr(mirror, "B100_COUNT", 3)
    return mdir, tmp_path / "data"


def _offline(_data_dir):
    raise BookError("no internet here")


def test_bsds500_from_the_mirror_reads_scipy_mat_ground_truth(tiny_bsds_and_sr_mirror):
    _, data = tiny_bsds_and_sr_mirror
    mirror.fetch_bsds500_offline(data, _offline)
    items = bsds500.load_bsds500(data, "test")
    assert [i for i, _, _ in items] == ["100", "101"]
    _, img, gts = items[0]
    assert img.shape == (12, 16, 3) and len(gts) == 2
    assert gts[1].dtype == bool and gts[1][:, 4].all() and gts[1].sum() == 12


def test_sr_benchmarks_from_the_mirror_with_b100_from_bsds_val(tiny_bsds_and_sr_mirror):
    _, data = tiny_bsds_and_sr_mirror
    mirror.fetch_bsds500_offline(data, _offline)
    mirror.fetch_sr_benchmarks(data)
    set5 = sr_folders.load_sr_folder(data, "Set5")
    assert len(set5) == 2 and set5[0].shape == (24, 20, 3)
    b100 = sr_folders.load_sr_folder(data, "B100")
    val = sorted((bsds500.root(data) / "images" / "val").glob("*.jpg"))
    assert len(b100) == 3
    assert np.array_equal(b100[0], np.asarray(Image.open(val[0]).convert("RGB")))   # lossless copy of the JPEG
    assert (sr_folders.sr_folder(data, "Set14") / "MANIFEST.md5").exists()


@pytest.mark.skipif(not os.environ.get(mirror.ENV), reason=f"{mirror.ENV} is not set: no real mirror to check")
def test_the_real_mirror():
    """The real archives match their SHA256SUMS; where `make data` unpacked them, the counts are CIFAR-10's."""
    mdir = mirror.mirror_dir()
    for name in mirror.ARCHIVES:
        mirror.verify_archive(mdir, name)
    data = Path(__file__).resolve().parents[1] / "data"
    if not (data / cifar.JPEG_FOLDER).is_dir():
        pytest.skip("the mirror is verified, but `make data` has not unpacked it into data/ yet")
    x, y, source = cifar.load_cifar_or_standin(data, 10, train=False, allow_standin=False)
    assert source == cifar.JPEG_SOURCE and x.shape == (10000, 3, 32, 32)
    assert torch.bincount(y).tolist() == [1000] * 10
    assert len(bsds500.list_ids(data, "test")) == 200
    assert len(sr_folders.image_files(sr_folders.sr_folder(data, "B100"))) == 100

import hashlib
import struct

import numpy as np
import pytest
import torch

from hyperbook.data import mnist
from hyperbook.data.checksums import verify_files
from hyperbook.data.letters import render_letters
from hyperbook.data.transforms import affine, random_affine_theta, rot90, rotate
from hyperbook.errors import ChecksumError, DatasetMissingError


def write_idx(path, array: np.ndarray):
    """Write an IDX file (the MNIST format): magic, dims, big-endian, then uint8 data."""
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    raw = mnist.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
              "train-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5]),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28)),
              "t10k-labels-idx1-ubyte": np.array([9, 2])}
    md5 = {}
    for name, arr in arrays.items():
        write_idx(raw / name, arr)
        md5[name] = hashlib.md5((raw / name).read_bytes()).hexdigest()
    monkeypatch.setattr(mnist, "MNIST_MD5", md5)
    return tmp_path, arrays


def test_tiny_idx_files_load_through_torchvision(tiny_mnist):
    root, arrays = tiny_mnist
    x, y = mnist.load_mnist(root, train=True)
    assert x.dtype == torch.uint8 and x.shape == (5, 28, 28)
    np.testing.assert_array_equal(x.numpy(), arrays["train-images-idx3-ubyte"])
    assert y.tolist() == [3, 1, 4, 1, 5]
    xt, yt = mnist.load_mnist(root, train=False)
    assert yt.tolist() == [9, 2]
    signed = mnist.to_signed(x)
    assert signed.shape == (5, 1, 28, 28) and signed.min() >= -1 and signed.max() <= 1


def test_corrupt_file_is_named_with_the_fix(tiny_mnist):
    root, _ = tiny_mnist
    path = mnist.raw_dir(root) / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes()); data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.*make data"):
        mnist.load_mnist(root, train=False)


def test_missing_dataset_names_file_folder_and_command(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        mnist.load_mnist(tmp_path, train=True)
    text = str(err.value)
    assert "train-images-idx3-ubyte" in text and str(mnist.raw_dir(tmp_path)) in text and "make data" in text


def test_checksum_stamp_is_invalidated_by_a_change(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    good = {"a.bin": hashlib.md5(b"abc").hexdigest()}
    verify_files("toy", tmp_path, good, "fix it")
    f.write_bytes(b"abd")                      # same size, new content and mtime
    with pytest.raises(ChecksumError):
        verify_files("toy", tmp_path, good, "fix it")


def test_real_mnist_matches_published_label_counts(mnist_dir):
    _, y = mnist.load_mnist(mnist_dir, train=True)
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    _, yt = mnist.load_mnist(mnist_dir, train=False)
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_rotate_by_90_matches_exact_rot90_and_fills_background():
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(rotate(x, 90.0), rot90(x, 1), atol=1e-5)
    assert torch.allclose(rotate(x, torch.tensor([0.0, 0.0, 0.0])), x, atol=1e-5)
    corner = rotate(torch.zeros(1, 1, 28, 28), 45.0, fill=-1.0)[0, 0, 0, 0]
    assert corner == pytest.approx(-1.0)


def test_rotation_is_batched_per_sample():
    x = torch.rand(4, 1, 28, 28)
    angles = torch.tensor([0.0, 90.0, 180.0, 270.0])
    out = rotate(x, angles)
    for k in range(4):
        assert torch.allclose(out[k], rot90(x[k:k + 1], k)[0], atol=1e-5)


def test_random_affine_is_deterministic_given_the_generator():
    a = random_affine_theta(8, torch.Generator().manual_seed(3))
    b = random_affine_theta(8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8, 2, 3)
    out = affine(torch.rand(8, 1, 28, 28), a, fill=-1.0)
    assert out.shape == (8, 1, 28, 28)


def test_rendered_letters_look_like_mnist():
    letters = render_letters(6, seed=1)
    assert letters.shape == (6, 28, 28) and letters.dtype == torch.uint8
    assert (letters[:, :2, :] == 0).all() or letters[:, :2, :].float().mean() < 5   # dark border
    assert (letters.flatten(1).max(1).values > 200).all()                             # bright strokes
    assert torch.equal(letters, render_letters(6, seed=1))

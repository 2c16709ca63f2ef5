import hashlib
import math
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


def _pil_style_affine(image: np.ndarray, m: np.ndarray, fill: float) -> np.ndarray:
    """Reference: PIL's Image.transform(AFFINE, (a..f), BILINEAR) on image - fill, written out in numpy.

    Output pixel (row i, col j) has centre (x, y) = (j + .5, i + .5); it reads the input at
    (a x + b y + c, d x + e y + f), bilinearly, pixel centres at k + .5, zero outside the frame.
    """
    h, w = image.shape
    src = image - fill
    out = np.zeros_like(image)
    for i in range(h):
        for j in range(w):
            x, y = j + 0.5, i + 0.5
            xi, yi = m[0, 0] * x + m[0, 1] * y + m[0, 2] - 0.5, m[1, 0] * x + m[1, 1] * y + m[1, 2] - 0.5
            x0, y0 = int(np.floor(xi)), int(np.floor(yi))
            acc = 0.0
            for dy in (0, 1):
                for dx in (0, 1):
                    r, c = y0 + dy, x0 + dx
                    if 0 <= r < h and 0 <= c < w:
                        acc += (1 - abs(xi - c)) * (1 - abs(yi - r)) * src[r, c]
            out[i, j] = acc
    return out + fill


def test_random_affine_follows_the_authors_composition():
    """Rot (centred) . Shear . Scale . Shift (about the top-left corner), in pixels, as the authors' code."""
    from hyperbook.data.transforms import authors_affine_matrices, random_affine
    g = torch.Generator().manual_seed(5)
    theta, entries = random_affine(3, g)
    u = torch.rand(3, 7, generator=torch.Generator().manual_seed(5)).double() * 2 - 1
    for k in range(3):
        a, sx, sy, kx, ky, tx, ty = u[k].tolist()
        ang = a * math.pi
        c, s = math.cos(ang), math.sin(ang)
        rot = np.array([[c, s, 14 - 14 * c - 14 * s], [-s, c, 14 + 14 * s - 14 * c], [0, 0, 1]])
        shear = np.array([[1, sx / 5 + 0.3, 0], [sy / 5 + 0.3, 1, 0], [0, 0, 1]])
        scale = np.diag([kx / 4 + 1.15, ky / 4 + 1.15, 1])
        shift = np.array([[1, 0, 5 * tx], [0, 1, 5 * ty], [0, 0, 1]])
        ref = rot @ shear @ scale @ shift
        np.testing.assert_allclose(entries[k].numpy(), ref[:2].flatten(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(authors_affine_matrices(u[k:k + 1])[0].numpy(), ref, atol=1e-9)
        # the resampled image is the one PIL's transform with these six entries would give
        img = torch.rand(1, 1, 28, 28) * 2 - 1
        ours = affine(img, theta[k:k + 1], fill=-1.0)[0, 0].numpy()
        np.testing.assert_allclose(ours, _pil_style_affine(img[0, 0].numpy().astype(np.float64), ref, -1.0),
                                   atol=1e-4)


def test_pixel_to_grid_theta_rejects_bad_shapes():
    from hyperbook.data.transforms import pixel_to_grid_theta
    with pytest.raises(ValueError, match="3, 3"):
        pixel_to_grid_theta(torch.eye(3), 28, 28)

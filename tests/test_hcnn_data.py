"""CIFAR loader errors, the labelled Fashion-MNIST stand-in, and Fashion-MNIST's offline source."""
from pathlib import Path

import pytest
import torch

from hyperbook.data import cifar, fashion_mnist
from hyperbook.errors import DatasetMissingError, UnknownChoiceError
from hyperbook.results import REPO_ROOT

HAVE_DEBIAN = all((fashion_mnist.DEBIAN_DIR / f"{n}.gz").exists() for n in fashion_mnist.FASHION_MNIST_MD5)
HAVE_LOCAL = all((fashion_mnist.raw_dir(REPO_ROOT / "data") / n).exists() for n in fashion_mnist.FASHION_MNIST_MD5)


@pytest.mark.parametrize("classes,folder", [(10, "cifar-10-batches-py"), (100, "cifar-100-python")])
def test_missing_cifar_names_its_folder_and_the_fix(tmp_path, classes, folder):
    with pytest.raises(DatasetMissingError) as err:
        cifar.load_cifar(tmp_path, classes, train=True)
    assert folder in str(err.value) and "make data" in str(err.value)


def test_unknown_class_count_is_refused(tmp_path):
    with pytest.raises(UnknownChoiceError):
        cifar.load_cifar(tmp_path, 20, train=True)


@pytest.mark.skipif(not HAVE_DEBIAN, reason="Debian package dataset-fashion-mnist not installed")
def test_fetch_fashion_mnist_from_debian_verifies_md5(tmp_path):
    dest = fashion_mnist.fetch_fashion_mnist(tmp_path)
    assert dest == tmp_path / "FashionMNIST" / "raw"
    for name, md5 in fashion_mnist.FASHION_MNIST_MD5.items():
        assert fashion_mnist.md5sum(dest / name) == md5
    images, labels = fashion_mnist.load_fashion_mnist(tmp_path, train=False)
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and int(labels.max()) == 9


@pytest.mark.skipif(not (HAVE_DEBIAN or HAVE_LOCAL), reason="no Fashion-MNIST source here")
def test_standin_is_labelled_and_cifar_shaped(tmp_path):
    data_dir = tmp_path                     # Fashion-MNIST only: data/ may also hold a real CIFAR-10 copy
    if HAVE_LOCAL:
        (tmp_path / "FashionMNIST").symlink_to(REPO_ROOT / "data" / "FashionMNIST")
    images, labels, source = cifar.load_cifar_or_standin(data_dir, 10, train=False)
    assert source == "Fashion-MNIST stand-in for CIFAR-10 (10 classes, 28->32 px, grey->RGB)"
    assert images.shape == (10_000, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], images[:, 2])                 # grey repeated to RGB
    assert int(images[:, :, :2].max()) == 0                       # 2 px zero border
    assert labels.dtype == torch.int64
    _, _, source100 = cifar.load_cifar_or_standin(data_dir, 100, train=False)
    assert "CIFAR-100" in source100 and "10 classes only" in source100

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

from hyperbook.results import REPO_ROOT  # noqa: E402

DATA_DIR = REPO_ROOT / "data"


@pytest.fixture(scope="session")
def mnist_dir():
    """The real MNIST files (make test runs `make data` first)."""
    from hyperbook.data.mnist import MNIST_MD5, raw_dir
    if not all((raw_dir(DATA_DIR) / n).exists() for n in MNIST_MD5):
        pytest.fail("MNIST is missing: run `make data` (the test target does it first)")
    return DATA_DIR

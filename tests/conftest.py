import os

import pytest
import torch

# one thread per pytest-xdist worker (make test runs two on two cores), else every core
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or min(2, os.cpu_count() or 1))

from hyperbook.results import REPO_ROOT  # noqa: E402

DATA_DIR = REPO_ROOT / "data"


@pytest.fixture(scope="session")
def mnist_dir():
    """The real MNIST files (make test runs `make data` first)."""
    from hyperbook.data.mnist import MNIST_MD5, raw_dir
    if not all((raw_dir(DATA_DIR) / n).exists() for n in MNIST_MD5):
        pytest.fail("MNIST is missing: run `make data` (the test target does it first)")
    return DATA_DIR


@pytest.fixture
def kwargs_spy(monkeypatch):
    """kwargs_spy(owner, "name") -> dict: replaces owner.name by a pass-through that records the keyword
    arguments of its calls (the last call's win), e.g. to see what a training loop passes torch.optim.SGD."""
    def install(owner, name: str) -> dict:
        seen, real = {}, getattr(owner, name)

        def spy(*args, **kwargs):
            seen.update(kwargs)
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, spy)
        return seen
    return install

"""R-MNIST's training set is turned once, not per batch (issue 16): the same images, bitwise."""
import torch

from hyperbook.experiments import hecnn


def _digits(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 6:22, 9:19] = torch.randint(0, 256, (n, 16, 10), generator=g, dtype=torch.uint8)
    return x, torch.randint(0, 10, (n,), generator=g)


def test_turning_all_images_once_gives_the_per_batch_images_bitwise():
    x, _ = _digits()
    angles = hecnn.rmnist_angles(x.shape[0], hecnn.RMNIST_TRAIN_SEED)
    whole, whole_angles = hecnn.rotated_mnist(x, hecnn.RMNIST_TRAIN_SEED, chunk=128)
    assert torch.equal(whole_angles, angles)
    for step in range(5):                     # batches as the training loop draws them, repeats included
        idx = torch.randint(x.shape[0], (32,), generator=hecnn.step_generator(0, step))
        assert torch.equal(whole[idx], hecnn.turn_u8(x[idx], angles[idx]))
    assert not torch.equal(whole, x)           # they are turned


def test_datasets_hold_rmnist_turned_and_mnist_as_is(monkeypatch):
    train_x, train_y = _digits(200, 1)
    test_x, test_y = _digits(50, 2)
    monkeypatch.setattr(hecnn, "load_mnist", lambda d, train, device="cpu": (train_x, train_y) if train
                        else (test_x, test_y))
    train, test = hecnn.datasets("unused", n_test=20)
    assert set(train) == {"mnist", "rmnist"} and all(len(v) == 2 for v in train.values())
    assert torch.equal(train["mnist"][0], train_x)
    assert torch.equal(train["rmnist"][0], hecnn.rotated_mnist(train_x, hecnn.RMNIST_TRAIN_SEED)[0])
    assert torch.equal(train["rmnist"][1], train_y)
    assert {k: v[0].shape[0] for k, v in test.items()} == {"MNIST": 20, "R-MNIST": 20, "90-MNIST": 20}

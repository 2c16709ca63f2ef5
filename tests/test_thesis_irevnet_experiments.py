"""i-RevNet chapter: the analysis functions (Jacobian spectrum, interpolation, probes) on tiny models."""
import numpy as np
import pytest
import torch

from hyperbook.errors import UnknownChoiceError
from hyperbook.experiments import thesis_irevnet as E
from hyperbook.models.irevnet import IRevNet, IRevNetSpec

TINY = IRevNetSpec(1, 2, (1, 1), (1, 2), (2, 8), mult=0.5, n_classes=3)     # bijective, 1 x 8 x 8 -> 16 x 2 x 2


def _tiny(seed=0):
    torch.manual_seed(seed)
    return IRevNet(TINY).eval()


def test_jacobian_spectrum_matches_autograd_jacobian():
    model = _tiny()
    x = torch.rand(1, 8, 8)
    s = E.jacobian_spectrum(model, x)
    m = model.double()
    jac = torch.autograd.functional.jacobian(lambda v: m.features(v.view(1, 1, 8, 8)).flatten(),
                                             x.double().flatten())
    ref = torch.linalg.svdvals(jac).numpy()
    assert s.shape == (64,)
    assert np.allclose(s, ref / ref[0], rtol=1e-8, atol=1e-12)
    assert np.all(np.diff(s) <= 1e-12) and s[0] == pytest.approx(1.0)
    assert s[-1] > 0                                         # bijective: the Jacobian is invertible


def test_energy_share():
    s = np.array([2.0, 1.0, 1.0, 0.0])
    assert E.energy_share(s, 1) == pytest.approx(4 / 6)
    assert E.energy_share(s, 3) == pytest.approx(1.0)
    assert E.energy_share(s, 10) == pytest.approx(1.0)


def test_interpolation_endpoints_are_the_images():
    model = _tiny(1)
    x0, x1 = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    out = E.interpolations(model, x0, x1, steps=5)
    assert out.shape == (2, 2, 5, 8, 8)
    assert np.allclose(out[:, 0, 0], x0[:, 0].numpy(), atol=1e-5)    # t = 1: x0 (left)
    assert np.allclose(out[:, 0, -1], x1[:, 0].numpy(), atol=1e-5)   # t = 0: x1 (right)
    assert np.allclose(out[:, 1, 2], 0.5 * (x0 + x1)[:, 0].numpy(), atol=1e-6)


def test_roundtrip_errors_and_depth_features():
    model = _tiny(2)
    x = torch.rand(7, 1, 8, 8)
    assert E.roundtrip_errors(model, x, chunk=3).max() < 1e-5
    feats = E.averaged_features(model, x, chunk=3)
    assert [f.shape for f in feats] == [(7, 4), (7, 4), (7, 16)]


def test_probes_separate_separable_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    f = rng.normal(size=(300, 5)) * 0.3 + np.eye(3, 5)[y] * 3
    svm, nn1, c = E.probe_accuracies(f[:200], y[:200], f[200:], y[200:])
    assert svm > 0.95 and nn1 > 0.95 and c in (0.01, 0.1, 1.0)
    noise = rng.normal(size=(300, 5))
    svm, nn1, _ = E.probe_accuracies(noise[:200], y[:200], noise[200:], y[200:])
    assert svm < 0.6 and nn1 < 0.6


def test_configs_and_errors():
    for p in ("smoke", "reduced", "full"):
        for m in E.MODELS:
            assert E.train_config_for(m)(p).model == m
        assert E.memory_config_for(p).cases
    with pytest.raises(UnknownChoiceError):
        E.train_config_for("mnist_c")
    with pytest.raises(UnknownChoiceError):
        E.memory_config_for("book")
    with pytest.raises(UnknownChoiceError):
        E.run(None, "train_imagenet_b")

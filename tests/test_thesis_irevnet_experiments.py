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
        E.train_config_for("cifar_c")
    with pytest.raises(UnknownChoiceError):
        E.memory_config_for("book")
    with pytest.raises(UnknownChoiceError):
        E.run(None, "train_imagenet_b")


def test_lr_schedule_has_the_thesis_three_drops():
    # thesis: 600k iterations, lr / 10 every 160k -> drops at 160k, 320k, 480k (the old code dropped twice, at 1/2, 3/4)
    f = E.lr_schedule(600_000)
    assert [f(s) for s in (0, 159_999, 160_000, 320_000, 480_000, 599_999)] == pytest.approx(
        [1, 1, 0.1, 0.01, 0.001, 0.001])
    g = E.lr_schedule(600)
    assert sorted({round(g(s), 6) for s in range(600)}) == pytest.approx([0.001, 0.01, 0.1, 1.0])


def test_stand_in_is_cifar10_and_full_never_uses_a_stand_in():
    assert E.MODELS == ("cifar_resnet", "cifar_revnet", "cifar_a", "cifar_b")
    from hyperbook.models.irevnet import SPECS
    a = SPECS["cifar_a"]                 # the authors' CIFAR i-RevNet layout
    assert (a.blocks, a.strides, a.channels) == ((18, 18, 18), (1, 2, 2), (16, 64, 256))
    for m in E.MODELS:
        assert E.train_config_for(m)("full").allow_standin is False
        assert E.train_config_for(m)("reduced").allow_standin is True
        assert E.train_config_for(m)("smoke").precision == "fp32"


def test_training_uses_plain_momentum_and_the_config_precision(kwargs_spy):
    import hyperbook.experiments.thesis_irevnet as mod
    seen = kwargs_spy(torch.optim, "SGD")
    model = IRevNet(TINY)
    batch = (torch.rand(4, 1, 8, 8), torch.randint(0, 3, (4,)))
    # the call run_train makes, with its own keyword arguments
    mod.fit(model, lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]), lambda s: batch, steps=1,
            lr=0.1, optimizer="sgd", nesterov=mod.NESTEROV, precision="fp32", progress=False)
    assert seen["nesterov"] is False and seen["momentum"] == 0.9
    import inspect
    src = inspect.getsource(mod.run_train)
    assert "nesterov=NESTEROV" in src and "precision=config.precision" in src


def test_feature_jacobian_is_the_jacobian():
    """The batched-backward Jacobian equals torch.func's on a small nonlinear map (rows = outputs)."""
    from torch.func import jacrev
    from hyperbook.experiments.thesis_irevnet import feature_jacobian

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(12, 20).double()

        def features(self, x):
            return torch.tanh(self.lin(x.flatten(1))).view(x.shape[0], 4, 5)

    torch.manual_seed(0)
    m, x = Toy(), torch.randn(1, 3, 4, dtype=torch.float64)
    ref = jacrev(lambda v: m.features(v.view_as(x)).flatten())(x.flatten())
    got = feature_jacobian(m, x, chunk=7)              # chunks that do not divide the 20 outputs
    assert got.shape == (20, 12) and torch.allclose(got, ref, atol=1e-12)


def test_shallow_copies_keep_widths_and_the_pca_probe_caps_its_dimension():
    from hyperbook.experiments.thesis_irevnet import pca_probe, train_config_for
    from hyperbook.models.irevnet import build
    deep, shallow = build("cifar_b", n_classes=10), build("cifar_b", n_classes=10, blocks=(1, 1, 1))
    assert shallow.spec.blocks == (1, 1, 1) and shallow.spec.channels == deep.spec.channels
    with pytest.raises(ValueError, match="one count per stage"):
        build("cifar_b", blocks=(1, 1))
    assert train_config_for("cifar_a")("full").blocks == ()          # full: the document's depth
    torch.manual_seed(0)
    x, y = torch.rand(12, 3, 32, 32), torch.arange(12) % 3
    rows = pca_probe(shallow.eval(), x, y, x, y, seed=0)               # 12 samples < 192 features
    assert rows[:, 0].max() == 12

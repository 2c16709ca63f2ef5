"""HCNN training options: weight decay on the weights only, the document's lr, real data in `full`."""
from types import SimpleNamespace

import pytest
import torch

from hyperbook.experiments import hcnn as E


def test_weight_decay_skips_batch_norm_and_bias_parameters(monkeypatch):
    """The document decays the weights: train_model asks fit for decay on tensors of ndim >= 2 only."""
    seen = {}

    def fake_fit(model, loss_fn, batch_fn, **kw):
        seen.update(kw)
        seen["batch"] = batch_fn(0)
        from hyperbook.train import FitResult
        return FitResult()

    x = torch.randn(8, 3, 16, 16)
    y = torch.arange(8) % 10
    monkeypatch.setattr(E, "fit", fake_fit)
    monkeypatch.setattr(E, "prepared", lambda ctx, n, px, train: (x, y, "fake"))
    monkeypatch.setattr(E, "accuracy", lambda *a, **k: 0.0)
    config = E.train_config_for("cifar10_hcnn")("smoke")
    ctx = SimpleNamespace(device="cpu", results_dir="/tmp/unused-hcnn", data_dir="", profile="smoke")
    E.train_model(config, ctx, "test")
    assert seen["decay_weights_only"] is True and seen["weight_decay"] == 2e-4


def test_decay_weights_only_leaves_batch_norm_untouched():
    from hyperbook.train import fit
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    before = [p.detach().clone() for p in model.parameters()]
    # zero gradients: only weight decay can move a parameter
    fit(model, lambda m, b: 0.0 * m(b[0]).sum(), lambda s: (torch.randn(4, 3),), steps=1, lr=1.0,
        optimizer="sgd", weight_decay=0.5, decay_weights_only=True, progress=False)
    after = list(model.parameters())
    assert not torch.equal(before[0], after[0])                  # Linear weight decayed
    for b, a in zip(before[1:], after[1:]):                      # Linear bias, BN weight and bias not
        assert torch.equal(b, a)


def test_reduced_and_smoke_use_the_documents_learning_rate():
    for name in E.TRAIN_RUNS:
        for profile in ("smoke", "reduced", "full"):
            assert E.train_config_for(name)(profile).lr == 0.25


def test_full_profile_refuses_the_standin(monkeypatch):
    calls = []
    monkeypatch.setattr(E, "_prepared", lambda *a: calls.append(a) or (None, None, ""))
    for profile in ("full", "reduced"):
        E.prepared(SimpleNamespace(data_dir="d", device="cpu", profile=profile), 10, 16, True)
    assert [c[-1] for c in calls] == [False, True]               # allow_standin
    E.prepared(SimpleNamespace(data_dir="d", device="cpu", profile="full", timing=True), 10, 16, True)
    assert calls[-1][-1] is True          # a `hyperbook time` scratch run (never recorded) may time on a stand-in

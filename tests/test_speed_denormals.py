"""Subnormal floats flushed to zero in every recorded run (train.FLUSH_DENORMAL): on, said in the provenance,
restored after, and the same function where it matters (the HyperNets' sharp softmax gates)."""
import pytest
import torch

from hyperbook import train
from hyperbook.models.hypernets import SoftmaxGated
from hyperbook.results import run_or_load

SUBNORMAL = 1e-39          # below float32's smallest normal number, 1.18e-38


def _flushes() -> bool:
    return (torch.tensor([SUBNORMAL]) * 2).item() == 0.0


@pytest.fixture(autouse=True)
def _cpu_can_flush():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormal floats")
    torch.set_flush_denormal(False)


def test_a_recorded_run_flushes_subnormals_says_so_and_restores_ieee_after(tmp_path):
    seen = {}

    def run():
        seen["inside"] = _flushes()
        return {"x": 1.0}, {}

    assert not _flushes()
    rec = run_or_load("ch", "ex", "smoke", {"a": 1}, run, results_dir=tmp_path, reuse=False)
    assert seen["inside"] and rec.provenance["denormals"] == "flushed to zero"
    assert not _flushes()                                  # the process is left as it was


def test_the_reference_path_keeps_gradual_underflow(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "FLUSH_DENORMAL", False)
    seen = {}

    def run():
        seen["f"] = _flushes()
        return {}, {}

    rec = run_or_load("ch", "ex", "smoke", {"a": 2}, run, results_dir=tmp_path, reuse=False)
    assert seen["f"] is False and rec.provenance["denormals"] == "IEEE gradual underflow"


def test_nested_uses_keep_flushing_until_the_outermost_ends():
    with train.denormals_flushed():
        with train.denormals_flushed():
            assert _flushes()
        assert _flushes()
    assert not _flushes()


def test_sharp_gates_give_the_same_outputs_and_gradients_flushed():
    """Gates so sharp that most entries are subnormal: flushing changes outputs and gradients by float rounding."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 50, generator=g, dtype=torch.float64).float()
    logits = (torch.randn(8, 50, 40, generator=g) * 40).requires_grad_()
    gate = torch.softmax(logits, 1)
    assert ((gate > 0) & (gate < 1.18e-38)).float().mean() > 0.05     # the case the setting is for
    dout = torch.randn(8, 40, generator=g)

    def out_and_grads(flush):
        with train.denormals_flushed(flush):
            xl = x.clone().requires_grad_()
            lg = logits.detach().clone().requires_grad_()
            out = SoftmaxGated.apply(xl, lg)
            out.backward(dout)
            return out.detach(), xl.grad, lg.grad
    ieee, flushed = out_and_grads(False), out_and_grads(True)
    for a, b in zip(ieee, flushed):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-30)

"""The softmax-gated dense layer's written-out backward (`SoftmaxGated`) is autograd's, to float rounding."""
import pytest
import torch

from hyperbook.experiments import hypernets as H
from hyperbook.models import hypernets as M


def test_the_written_out_backward_passes_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    logits = (3 * torch.randn(5, 7, 4, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(M.SoftmaxGated.apply, (x, logits))


def all_angles_batch(n: int, seed: int = 0):
    config = H.config_for("rotate_deep_all")("full")
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    labels = torch.randint(10, (n,), generator=g)
    return H.make_example(images, labels, config, g)


def grads(model, batch, fused: bool):
    model.gated.fused_backward = fused
    model.zero_grad(set_to_none=True)
    image, params, target = batch
    out = model(image, params)
    (out - target).pow(2).mean().backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_the_gated_models_get_autograds_gradients(kind, monkeypatch):
    """Every image its own angle (the all-angles and affine runs' path), in float64: outputs equal to 1e-12,
    every parameter's gradient to 1e-9 of its size, and the fused path is the one that ran."""
    torch.manual_seed(0)
    model = M.build(kind).double()
    batch = tuple(t.double() for t in all_angles_batch(16 if kind == "simple" else 64))
    calls, apply = [], M.SoftmaxGated.apply
    monkeypatch.setattr(M.SoftmaxGated, "apply", lambda *a: calls.append(1) or apply(*a))
    out_ref, g_ref = grads(model, batch, fused=False)
    assert calls == []
    out, g = grads(model, batch, fused=True)
    assert calls == [1]                               # the written-out backward is the one that ran
    assert (out - out_ref).abs().max() <= 1e-12 * out_ref.abs().max()
    for name in g_ref:
        assert (g[name] - g_ref[name]).abs().max() <= 1e-9 * g_ref[name].abs().max(), name


def test_the_fused_path_runs_under_bf16_autocast():
    """bf16 is the opt-in speed setting: the written-out backward must accept its mixed dtypes."""
    torch.manual_seed(0)
    model = M.build("deep")
    image, params, target = all_angles_batch(32)
    _, g32 = grads(model, (image, params, target), fused=True)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image, params)
    (out.float() - target).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype and torch.isfinite(p.grad).all(), name
        assert (p.grad - g32[name]).norm() <= 0.1 * g32[name].norm() + 1e-12, name

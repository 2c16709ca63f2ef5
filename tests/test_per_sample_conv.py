"""per_sample_conv2d and its two formulations against an independent loop of F.conv2d, values and gradients;
the benchmark's naive loop references against the batched HE-CNN-L."""
import pytest
import torch
import torch.nn.functional as F

from hyperbook.experiments.hecnn_speed import LoopedHECNN
from hyperbook.layers import per_sample_conv as psc
from hyperbook.models.hecnn import build

FORMS = {"dispatch": psc.per_sample_conv2d, "grouped": psc.grouped_conv2d, "im2col": psc.im2col_conv2d}


def loop_reference(x, w, b, stride, padding, dilation=1):
    """Written out here rather than taken from the module, so the module cannot agree with itself."""
    return torch.cat([F.conv2d(x[i:i + 1], w[i], None if b is None else b[i], stride=stride, padding=padding,
                               dilation=dilation) for i in range(len(x))])


def check_against_loop(conv, c, kernel, stride, padding, bias, dilation=1, size=9):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, c, size, size, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(3, 4, c, *kernel, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    inputs = [t for t in (x, w, b) if t is not None]
    ref = loop_reference(x, w, b, stride, padding, dilation)
    out = conv(x, w, b, stride, padding, dilation)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    up = torch.randn(ref.shape, dtype=torch.float64, generator=g)     # a random upstream gradient
    for got, want in zip(torch.autograd.grad(out, inputs, up), torch.autograd.grad(ref, inputs, up)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("c", [1, 3])          # 1 channel: dispatch picks im2col; 3 channels and k >= 3: grouped
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_loop_values_and_gradients(form, c, k, stride, padding, bias):
    check_against_loop(FORMS[form], c, (k, k), stride, padding, bias)


@pytest.mark.parametrize("form", FORMS)
def test_dilation_and_rectangular_kernel(form):
    check_against_loop(FORMS[form], 2, (2, 3), (2, 1), (1, 0), True, dilation=(1, 2), size=8)


@pytest.mark.parametrize("c, k, picked", [(1, 2, "im2col_conv2d"), (1, 4, "im2col_conv2d"), (4, 2, "im2col_conv2d"),
                                          (64, 1, "im2col_conv2d"), (16, 2, "grouped_conv2d"),
                                          (3, 3, "grouped_conv2d")])
def test_dispatch_picks_measured_faster_form(monkeypatch, c, k, picked):
    calls = []
    for name in ("im2col_conv2d", "grouped_conv2d"):
        original = getattr(psc, name)
        monkeypatch.setattr(psc, name, lambda *a, _n=name, _f=original: calls.append(_n) or _f(*a))
    psc.per_sample_conv2d(torch.randn(2, c, 6, 6), torch.randn(2, 3, c, k, k))
    assert calls == [picked]


def test_shared_weight_falls_back_to_plain_conv():
    x, w, b = torch.randn(3, 2, 7, 7), torch.randn(4, 2, 3, 3), torch.randn(4)
    torch.testing.assert_close(psc.per_sample_conv2d(x, w, b, 2, 1), F.conv2d(x, w, b, 2, 1), rtol=0, atol=0)


@pytest.mark.parametrize("x_shape, w_shape, b_shape", [
    ((3, 2, 7, 7), (4, 4, 2, 3, 3), None),      # batch mismatch
    ((3, 2, 7, 7), (3, 4, 5, 3, 3), None),      # channel mismatch
    ((3, 2, 7, 7), (3, 4, 2), None),            # neither shared (4-D) nor per-sample (5-D)
    ((3, 2, 7), (3, 4, 2, 3, 3), None),         # input not 4-D
    ((3, 2, 7, 7), (3, 4, 2, 3, 3), (4,)),      # shared bias with per-sample filters
    ((3, 1, 7, 7), (3, 4, 1, 3, 3), (3, 5)),    # bias of the wrong width (im2col shape)
])
def test_wrong_shapes_raise(x_shape, w_shape, b_shape):
    with pytest.raises(ValueError):
        psc.per_sample_conv2d(torch.randn(x_shape), torch.randn(w_shape),
                              None if b_shape is None else torch.randn(b_shape))


def test_kernel_larger_than_input_raises():
    with pytest.raises(ValueError):
        psc.im2col_conv2d(torch.randn(2, 1, 3, 3), torch.randn(2, 4, 1, 4, 4))


@pytest.mark.parametrize("full", [False, True])
def test_loop_references_equal_batched_model(full):
    """Both naive references (main network looped; whole model looped) give the batched model's logits and
    parameter gradients in 'sample' mode."""
    torch.manual_seed(0)
    model = build("hecnn_l").double()
    x, y = torch.randn(4, 1, 28, 28, dtype=torch.float64), torch.tensor([0, 3, 7, 9])
    params = list(model.parameters())
    batched = model(x, "sample")
    looped = LoopedHECNN(model, full=full)(x)
    torch.testing.assert_close(looped, batched, rtol=0, atol=1e-10)
    grads = [torch.autograd.grad(F.cross_entropy(z, y), params) for z in (batched, looped)]
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    with pytest.raises(ValueError):
        LoopedHECNN(model, full=full)(x, "batch")

"""HE-CNN-L's generator on the four turned copies: turning the filters in one pass over the unturned batch is
the same function as turning the images."""
import pytest
import torch
import torch.nn.functional as F

from hyperbook.layers.group_ops import rot
from hyperbook.models.hecnn import NEPGenerator, REGULAR_GENERATOR, SMALL_GENERATOR, TURN_FILTERS, build


def images(n=32, dtype=torch.float32):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=dtype) * 2 - 1


@pytest.mark.parametrize("pool", [0, 1, 2])          # 0 (flattened map) and 2 need the maps turned back
def test_turned_filters_give_the_turned_images_features(pool):
    torch.manual_seed(0)
    gen = NEPGenerator(SMALL_GENERATOR, pool).double()
    assert gen.can_turn_filters(28)
    x = images(dtype=torch.float64)
    ref = gen(torch.cat([rot(x, g) for g in range(4)]))
    out = gen.turned(x, turn_filters=True)
    assert out.shape == ref.shape == (4 * 32, gen.out_features)
    assert (out - ref).abs().max() <= 1e-12 * ref.abs().max()


def test_generators_that_cannot_turn_filters_fall_back():
    assert not NEPGenerator(REGULAR_GENERATOR, 1).can_turn_filters(28)     # 28 - 3 is odd: no symmetric grid
    assert not NEPGenerator(SMALL_GENERATOR, 1, batch_norm=True).can_turn_filters(28)   # BN mixes the copies
    assert not NEPGenerator(SMALL_GENERATOR, 1, equivariant=True).can_turn_filters(28)
    assert not NEPGenerator(SMALL_GENERATOR, 1).can_turn_filters(29)        # 28 - 3 odd after the 2x2 conv
    gen = NEPGenerator(REGULAR_GENERATOR, 1)
    x = images(4)
    torch.testing.assert_close(gen.turned(x, True), gen(torch.cat([rot(x, g) for g in range(4)])))


@pytest.mark.parametrize("mode", ["batch", "sample"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-12)])
def test_hecnn_l_training_step_is_the_same_function(mode, dtype, tol):
    """The real model at its training batch (32) and image size: same logits and gradients both ways
    (float32: measured 1e-5 on the gradients; float64: 4e-15)."""
    assert TURN_FILTERS
    torch.manual_seed(0)
    model = build("hecnn_l").to(dtype).train()
    x, y = images(32, dtype), torch.randint(10, (32,), generator=torch.Generator().manual_seed(1))
    model.calibrate(x)
    grads = {}
    for turn in (False, True):
        model.zero_grad(set_to_none=True)
        logits = model(x, mode, turn_filters=turn)
        F.cross_entropy(logits, y).backward()
        grads[turn] = (logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (l_old, g_old), (l_new, g_new) = grads[False], grads[True]
    assert (l_new - l_old).abs().max() <= tol / 10 * l_old.abs().max()
    for name in g_old:
        assert (g_new[name] - g_old[name]).abs().max() <= tol * g_old[name].abs().max(), name


def head_rows(model):
    """The number of rows every head saw, per call (a forward hook on each head)."""
    seen = []
    for head in model.heads:
        head.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0].shape[0]))
    return seen


@pytest.mark.parametrize("name", ["hecnn_regular", "hecnn_n_regular", "residual_z4_hecnn"])
def test_mean_features_first_is_the_batch_mean_of_the_full_heads(name):
    """Batch mode, full (linear) heads: the heads of the mean features are the mean of the heads, in float64
    logits equal to 1e-12 and every gradient to 1e-9 of its size; the heads see 4 rows, not 4 x 32."""
    from hyperbook.models.hecnn import MEAN_FEATURES_FIRST
    from hyperbook.models.hecnn_backbones import build_backbone
    assert MEAN_FEATURES_FIRST
    torch.manual_seed(0)
    if name.startswith("residual"):
        model, size, channels = build_backbone("residual", "z4_hecnn", width=0.25), 32, 3
    else:
        model, size, channels = build(name), 28, 1
    model = model.double().train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, channels, size, size, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(10, (32,), generator=g)
    model.calibrate(x)
    seen = head_rows(model)
    out = {}
    for first in (False, True):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)                           # the same batch-norm / dropout state both ways
        logits = model(x, "batch", mean_first=first)
        F.cross_entropy(logits, y).backward()
        out[first] = (logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    n = len(model.heads)
    assert seen == [4 * 32] * n + [4] * n
    (l_old, g_old), (l_new, g_new) = out[False], out[True]
    assert (l_new - l_old).abs().max() <= 1e-12 * l_old.abs().max()
    for key in g_old:      # + 1e-15: a bias just before batch norm has a gradient of zero, here 1e-18 of noise
        assert (g_new[key] - g_old[key]).abs().max() <= 1e-9 * g_old[key].abs().max() + 1e-15, key


def test_mean_features_first_refuses_low_rank_heads():
    model = build("hecnn_l")
    with pytest.raises(ValueError, match="linear heads"):
        model.raw(images(4), batch_mean=True)

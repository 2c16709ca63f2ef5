"""Computing each distinct gate once (discrete-angle batches) is the same function as one gate per image."""
import pytest
import torch

from hyperbook.experiments import hypernets as H
from hyperbook.models import hypernets as M


def discrete_batch(experiment: str, n: int, seed: int = 0):
    """Images and controls of a discrete-angle batch: at most 8 distinct (cos, sin) rows."""
    config = H.config_for(experiment)("full")
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    labels = torch.randint(10, (n,), generator=g)
    image, params, target = H.make_example(images, labels, config, g)
    return image, params, target


def rows_seen_by_control(model):
    seen = []
    model.control.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0].shape[0]))
    return seen


def outputs_and_grads(model, image, params, target, dedupe):
    model.zero_grad(set_to_none=True)
    out = model(image, params, dedupe=dedupe)
    (out - target).pow(2).mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind, experiment, batch", [("simple", "rotate_simple_discrete", 32),
                                                     ("deep", "rotate_deep_discrete", 128)])
def test_distinct_gates_once_is_the_per_image_function(kind, experiment, batch):
    """In float64: the two paths sum in different orders, and in float32 some of the control net's gradients
    (about 1e-8, from cancelling sums) differ by 1e-3 of their own size, so a float32 check either fails now and
    then or must be too loose to catch a wrong gate."""
    torch.manual_seed(0)
    model = M.build(kind).double()
    image, params, target = (t.double() for t in discrete_batch(experiment, batch))
    n_distinct = len(torch.unique(params, dim=0))
    assert n_distinct <= 8 < batch
    seen = rows_seen_by_control(model)
    out_ref, g_ref = outputs_and_grads(model, image, params, target, dedupe=False)
    out, g = outputs_and_grads(model, image, params, target, dedupe=True)
    assert seen == [batch, n_distinct]            # the saving ran: the control net saw each angle once
    scale = out_ref.abs().max()
    assert (out - out_ref).abs().max() <= 1e-12 * scale
    for name in g_ref:
        assert (g[name] - g_ref[name]).abs().max() <= 1e-9 * g_ref[name].abs().max(), name


def test_grouped_gate_routes_every_image_to_its_own_gate():
    """Images in shuffled order, gates of very different logits: any mix-up of the inverse index shows."""
    layer = M.GatedDense(12, 7)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 12, generator=g)
    logits = 5 * torch.randn(3, 12, 7, generator=g)
    inverse = torch.randint(3, (20,), generator=g)
    expected = torch.stack([x[b] @ torch.softmax(logits[inverse[b]], 0) for b in range(20)])
    torch.testing.assert_close(layer.grouped(x, logits, inverse), expected)
    # a gate no image uses is allowed
    torch.testing.assert_close(layer.grouped(x[:4], logits, torch.tensor([2, 0, 2, 0])),
                               torch.stack([x[b] @ torch.softmax(logits[[2, 0, 2, 0][b]], 0) for b in range(4)]))


def test_continuous_controls_keep_one_gate_per_image():
    torch.manual_seed(0)
    model = M.build("deep")
    seen = rows_seen_by_control(model)
    x, p = torch.randn(16, 1, 28, 28), torch.randn(16, 2)
    torch.testing.assert_close(model(x, p), model(x, p, dedupe=False))
    assert seen == [16, 16]
    model(x, p[:1])                                # one control row for the batch: broadcast, as before
    assert seen[-1] == 1


def test_dedupe_is_the_default():
    torch.manual_seed(0)
    model = M.build("deep")
    seen = rows_seen_by_control(model)
    x, p = torch.randn(8, 1, 28, 28), torch.randn(2, 2).repeat(4, 1)
    model(x, p)
    assert seen == [2]

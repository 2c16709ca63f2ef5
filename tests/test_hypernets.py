import pytest
import torch

from hyperbook.context import RunContext
from hyperbook.experiments import hypernets as H
from hyperbook.models.hypernets import GatedDense, build


@pytest.mark.parametrize("kind, n_params", [("simple", 2), ("deep", 2), ("autoencoder", 2), ("deep", 6)])
def test_output_shapes(kind, n_params):
    model = build(kind, n_params=n_params)
    out = model(torch.zeros(3, 1, 28, 28), torch.zeros(3, n_params))
    assert out.shape == (3, 1, 28, 28)


def test_compensation_models_take_only_the_image():
    for kind in ("deep", "autoencoder"):
        assert build(kind, image_control=True)(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError):
        build("simple", image_control=True)


def test_gate_columns_are_convex_weights_over_the_inputs():
    model = build("simple")
    logits = model.control(torch.randn(5, 2))
    gate = model.gated.gate(logits)
    assert gate.shape == (5, 784, 784)
    torch.testing.assert_close(gate.sum(dim=1), torch.ones(5, 784))   # each output: weights over inputs sum to 1
    assert (gate >= 0).all()
    # so every output pixel lies within the range of the input pixels
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    out = model(x, torch.randn(5, 2))
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5


def test_batched_gate_equals_a_loop_over_the_batch():
    layer = GatedDense(30, 20)
    x, logits = torch.randn(6, 30), torch.randn(6, 30, 20)
    looped = torch.stack([x[b] @ torch.softmax(logits[b], dim=0) for b in range(6)])
    torch.testing.assert_close(layer(x, logits), looped)
    # a gate of batch 1 applies to every image
    torch.testing.assert_close(layer(x, logits[:1]), torch.stack([x[b] @ torch.softmax(logits[0], 0) for b in range(6)]))


def test_parameter_counts_follow_the_architecture():
    counts = {k: sum(p.numel() for p in build(k).parameters()) for k in ("simple", "deep", "autoencoder")}
    # simple: Dense(2->64) + Dense(64->784*784); no learned core (the authors fix W to ones)
    assert counts["simple"] == (2 * 64 + 64) + (64 * 784 * 784 + 784 * 784)
    encoder = (1 * 10 * 25 + 10) + (10 * 20 * 25 + 20) + (980 * 200 + 200)
    decoder = lambda code: (code * 980 + 980) + (20 * 10 * 25 + 10) + (10 * 1 * 25 + 1)
    assert counts["autoencoder"] == encoder + decoder(202)
    assert counts["deep"] == encoder + decoder(200) + (2 * 64 + 64) + (64 * 200 * 200 + 200 * 200)


def test_unknown_model_and_experiment_names():
    from hyperbook.errors import UnknownChoiceError
    with pytest.raises(UnknownChoiceError, match="autoencoder, deep, simple"):
        build("wide")
    with pytest.raises(UnknownChoiceError, match="rotate_deep_all"):
        H.config_for("rotate_everything")


def test_restricted_digits_train_on_a_narrow_range():
    labels = torch.tensor([4, 9, 1] * 400)
    for angles in ("all", "discrete"):
        config = H.config_for("rotate_deep_" + angles)("smoke")
        a = H.sample_angles(labels, config, torch.Generator().manual_seed(0))
        assert a[labels != 1].abs().max() <= 45.0 + 1e-4
        assert a[labels == 1].abs().max() > 100.0
        if angles == "discrete":
            assert set(a.tolist()) <= {-180.0, -135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0}


@pytest.mark.slow
def test_zero_angle_is_close_to_identity_after_short_training(mnist_dir, tmp_path):
    """After a short rotation training, asking for 0 degrees returns the input digit."""
    ctx = RunContext.from_params("hypernets", "smoke", "cpu", mnist_dir, tmp_path, False, 0)
    config = H.config_for("rotate_autoencoder_all")("smoke")
    from dataclasses import replace
    config = replace(config, steps=500, batch_size=64, lr=3e-3)
    model_out = {}

    original_fit = H.fit
    def capturing_fit(model, *a, **k):
        result = original_fit(model, *a, **k)
        model_out["model"] = model
        return result
    H.fit = capturing_fit
    try:
        H.run_task(config, ctx)
    finally:
        H.fit = original_fit
    from hyperbook.data.mnist import load_mnist, to_signed
    x = to_signed(load_mnist(mnist_dir, train=False)[0][:200])
    with torch.no_grad():
        out = model_out["model"](x, H.control_params(torch.zeros(1)))
    blank = torch.full_like(x, -1.0)
    identity_err = (out - x).pow(2).mean()
    assert identity_err < 0.6 * (blank - x).pow(2).mean()                      # not a blank guess
    assert identity_err < 0.8 * (out - torch.rot90(x, 2, (-2, -1))).pow(2).mean()  # closer to 0 than 180 degrees


def test_smoke_run_records_every_array_the_chapter_draws(mnist_dir, tmp_path):
    ctx = RunContext.from_params("hypernets", "smoke", "cpu", mnist_dir, tmp_path, True, 0)
    rec = H.run(ctx, "rotate_deep_discrete", overrides={"steps": 3})
    assert rec.arrays["panel"].shape == (2, len(H.FIGURE_ANGLES), 2, 28, 28)
    assert rec.arrays["per_digit_angle_loss"].shape == (10, 8)
    assert rec.arrays["letters_panel"].shape[1:] == (len(H.FIGURE_ANGLES), 2, 28, 28)
    assert set(rec.metrics["targets"]) == {"H-F4", "H-F5", "H-F7"}
    aff = H.run(ctx, "affine_deep", overrides={"steps": 3})
    assert aff.arrays["test_panel"].shape == (10, 3, 1, 28, 28) and aff.metrics["test_mse"] > 0

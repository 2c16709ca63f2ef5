import numpy as np
import pytest
import torch

from hyperbook.context import RunContext
from hyperbook.experiments import hypernets as H
from hyperbook.models.hypernets import GatedDense, build


@pytest.mark.parametrize("kind, n_params", [("simple", 2), ("deep", 2), ("autoencoder", 2), ("deep", 6), ("aae", 2),
                                            ("aae", 6)])
def test_output_shapes(kind, n_params):
    model = build(kind, n_params=n_params)
    out = model(torch.zeros(3, 1, 28, 28), torch.zeros(3, n_params))
    assert out.shape == (3, 1, 28, 28)


def test_compensation_models_take_only_the_image():
    for kind in ("deep", "autoencoder", "aae"):
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
    with pytest.raises(UnknownChoiceError, match="aae, autoencoder, deep, simple"):
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
    config = replace(config, model="autoencoder", steps=500, batch_size=64, lr=3e-3)   # the plain baseline
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


def test_a_hand_built_permutation_gate_rotates_by_exactly_90_degrees():
    """Pins the rotation convention: a gate that is a permutation (softmax of +-large logits) turns the
    simple HyperNet into an exact 90-degree counter-clockwise rotation, equal to rot90 and to rotate(x, 90)."""
    from hyperbook.data.transforms import rot90, rotate
    n = 28
    src = torch.arange(n * n).view(1, 1, n, n).float()
    perm = rot90(src, 1).flatten().long()           # output pixel j reads input pixel perm[j]
    logits = torch.full((1, n * n, n * n), -1e4)
    logits[0, perm, torch.arange(n * n)] = 1e4       # softmax over inputs i: one-hot at perm[j]
    layer = GatedDense(n * n, n * n)
    x = torch.rand(3, 1, n, n) * 2 - 1
    out = layer(x.flatten(1), logits).view(3, 1, n, n)
    assert torch.equal(out, torch.rot90(x, 1, dims=(-2, -1)))
    torch.testing.assert_close(out, rotate(x, 90.0, fill=-1.0), atol=1e-5, rtol=0)
    # counter-clockwise on screen: the top row moves to the left column, read bottom-up
    torch.testing.assert_close(out[0, 0, :, 0], x[0, 0, 0, :].flip(0))


def test_layers_start_from_glorot_weights_and_zero_biases():
    """The authors' TensorFlow layers: Glorot-uniform kernels, zero biases (PyTorch's default is neither)."""
    for kind in ("deep", "aae", "autoencoder"):
        model = build(kind)
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                assert torch.count_nonzero(module.bias) == 0, name
                w = module.weight
                fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(w)
                bound = (6 / (fan_in + fan_out)) ** 0.5
                assert w.abs().max() <= bound + 1e-6 and w.abs().max() > 0.9 * bound, name


def test_adversarial_autoencoder_has_the_authors_layers():
    from hyperbook.models.hypernets import AdversarialAutoencoder
    model = build("aae", n_params=6)
    assert isinstance(model, AdversarialAutoencoder) and model.latent == 10
    assert model.encode(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    count = lambda m: sum(p.numel() for p in m.parameters())
    enc = (16 * 64 + 64) + (64 * 128 * 16 + 128) + (6272 * 1024 + 1024) + (1024 * 10 + 10)
    dec = (16 * 1024 + 1024) + (1024 * 6272 + 6272) + (128 * 64 * 16 + 64) + (64 * 16 + 1)
    critic = (10 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 + 1)
    assert count(model.critic) == critic and count(model) == enc + dec + critic
    assert sum(p.numel() for p in model.encoder_parameters()) == enc
    with pytest.raises(ValueError, match="control parameters"):
        model(torch.zeros(1, 1, 28, 28))
    # the control input reaches the output: changing it changes the reconstruction
    x = torch.rand(2, 1, 28, 28)
    assert not torch.allclose(model(x, torch.zeros(2, 6)), model(x, torch.ones(2, 6)))


def test_gradient_penalty_pins_a_linear_critic_to_unit_slope():
    """With a linear critic D(z) = w.z the penalty is lambda (|w| - 1)^2, whatever the codes."""
    from hyperbook.models.hypernets import AdversarialAutoencoder
    model = AdversarialAutoencoder(2, channels=(2, 2), hidden=4)
    lin = torch.nn.Linear(10, 1)
    model.critic = torch.nn.Sequential(lin)
    with torch.no_grad():
        lin.weight.copy_(torch.full((1, 10), 0.5)); lin.bias.zero_()
    real, fake = torch.rand(7, 10) * 2 - 1, torch.randn(7, 10)
    loss = H.critic_loss(model, real, fake, 10.0, torch.Generator().manual_seed(0))
    expected = lin(fake).mean() - lin(real).mean() + 10.0 * (0.5 * 10 ** 0.5 - 1) ** 2
    torch.testing.assert_close(loss, expected)


def test_tf_rmsprop_starts_from_a_unit_mean_square():
    p = torch.nn.Parameter(torch.tensor([2.0]))
    opt = H.TFRMSprop([p], lr=0.1)
    p.grad = torch.tensor([3.0])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([2.0 - 0.1 * 3.0 / (0.9 + 0.1 * 9.0) ** 0.5]))


def test_adversarial_loop_trains_all_three_parts_and_resumes_exactly(tmp_path):
    x = torch.rand(64, 1, 28, 28) * 2 - 1

    def batch_fn(step):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(64, (4,), generator=g)
        return x[idx], torch.rand(4, 2, generator=g), x[idx].flip(-1)

    images_fn = lambda step, k: x[(step * 4 + k) % 60:(step * 4 + k) % 60 + 4]

    def trained(stop=None, ckpt=None, resume=False):
        from hyperbook.models.hypernets import AdversarialAutoencoder
        torch.manual_seed(0)
        model = AdversarialAutoencoder(2, channels=(4, 8), hidden=16)   # the authors' layers, narrow
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        kw = dict(steps=3, critic_steps=2, checkpoint=ckpt, checkpoint_every=2, progress=False)
        H.fit_adversarial_autoencoder(model, batch_fn, images_fn, stop_after=stop, **kw)
        if resume:
            H.fit_adversarial_autoencoder(model, batch_fn, images_fn, **kw)
        return model, before

    model, before = trained()
    changed = {n.split(".")[0].split("_")[0] for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"enc", "dec", "critic"}
    ckpt = tmp_path / "aae.pt"
    resumed, _ = trained(stop=2, ckpt=ckpt, resume=True)
    assert not ckpt.exists()
    for (n, p), q in zip(model.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, msg=n)


def test_trivial_baselines_and_the_per_digit_mean_floor():
    torch.manual_seed(0)
    inputs, targets = torch.rand(40, 1, 28, 28) * 2 - 1, torch.rand(40, 1, 28, 28) * 2 - 1
    labels = torch.arange(40) % 10
    base = H.trivial_errors(inputs, targets, labels)
    torch.testing.assert_close(base[0], (targets + 1).pow(2).flatten(1).mean(1))
    torch.testing.assert_close(base[1], (inputs - targets).pow(2).flatten(1).mean(1))
    # the per-digit mean image is the best constant image of each digit: no worse than blank or any input
    for d in range(10):
        m = labels == d
        assert base[2][m].mean() <= base[0][m].mean() + 1e-6
        assert base[2][m].mean() <= (inputs[m][:1] - targets[m]).pow(2).mean() + 1e-6


def test_six_nine_rates_count_what_the_classifier_reads():
    images = torch.rand(6, 1, 28, 28)
    labels = torch.tensor([6, 6, 6, 9, 9, 1])

    class Reads9(torch.nn.Module):                   # reads everything as a 9
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 9), 10).float()
    rates = H.six_nine_rates(lambda x: x, Reads9(), images, labels, [0.0, 180.0])
    np.testing.assert_allclose(rates["output"][0], [[0, 1, 0]] * 2)     # every 6 read as 9
    np.testing.assert_allclose(rates["output"][1], [[1, 0, 0]] * 2)     # every 9 read as itself


def test_configs_carry_precision_and_reject_an_unknown_one(mnist_dir, tmp_path):
    from dataclasses import replace
    from hyperbook.errors import UnknownChoiceError
    for name in H.RUNS:
        for profile in ("smoke", "reduced", "full"):
            assert H.config_for(name)(profile).precision == "fp32"
    ctx = RunContext.from_params("hypernets", "smoke", "cpu", mnist_dir, tmp_path, False, 0)
    with pytest.raises(UnknownChoiceError, match="bf16"):
        H.run_task(replace(H.config_for("affine_deep")("smoke"), precision="fp16"), ctx)


@pytest.mark.slow
def test_smoke_runs_of_the_baseline_and_compensation_record_their_extras(mnist_dir, tmp_path):
    ctx = RunContext.from_params("hypernets", "smoke", "cpu", mnist_dir, tmp_path, True, 0)
    rec = H.run(ctx, "compensate_autoencoder", overrides={"steps": 2, "critic_steps": 1, "batch_size": 4,
                                                           "classifier_steps": 2})
    assert rec.arrays["baseline_angle_loss"].shape == (3, 10, 8)
    assert rec.arrays["six_nine_output"].shape == (2, 8, 3)
    np.testing.assert_allclose(rec.arrays["six_nine_output"].sum(-1), 1.0)
    assert 0 <= rec.metrics["classifier_test_accuracy"] <= 1
    assert rec.metrics["test_images"] == 60

"""Theorems 1 and 4 of the HE-CNN document as numerical checks, and the ways they must fail."""
import pytest
import torch

from hyperbook.layers.group_ops import (assemble_filter, assemble_linear, flip, linear_orbits, linear_placement,
                                        rot, rotate_p4, rotation_permutation)
from hyperbook.layers.per_sample_conv import looped_conv2d, per_sample_conv2d, per_sample_linear
from hyperbook.models.hecnn import D4nHECNN, HyperCNN, build, small_cnn

TOL = 1e-8     # the checks run in float64, where exact equivariance shows as errors near 1e-15


@pytest.fixture(autouse=True)
def _float64_and_seed():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def spread(logits):
    """How much the logits vary between inputs (the constant part set by biases does not count)."""
    return (logits - logits.mean(0)).abs().max().clamp_min(1e-12)


def invariance_error(model, x, mode, scale="max"):
    """Largest change of the logits over the four turns (whole batch turned), relative to their largest value
    (scale='max') or to their spread over inputs (scale='spread': for showing that a model is NOT invariant,
    where a constant part set by biases must not hide the change)."""
    with torch.no_grad():
        ref = model(x, mode)
        denom = ref.abs().max() if scale == "max" else spread(ref)
        return max(((model(rot(x, g), mode) - ref).abs().max() / denom).item() for g in (1, 2, 3))


def test_per_sample_conv_matches_loop():
    x = torch.randn(5, 3, 9, 9)
    w, b = torch.randn(5, 4, 3, 3, 3), torch.randn(5, 4)
    for stride, pad in ((1, 0), (2, 1)):
        assert torch.allclose(per_sample_conv2d(x, w, b, stride, pad), looped_conv2d(x, w, b, stride, pad), atol=1e-10)
    shared = per_sample_conv2d(x, w[0], b[0])
    assert torch.allclose(shared, torch.nn.functional.conv2d(x, w[0], b[0]))
    v, wl, bl = torch.randn(5, 7), torch.randn(5, 3, 7), torch.randn(5, 3)
    assert torch.allclose(per_sample_linear(v, wl, bl), torch.stack([wl[i] @ v[i] + bl[i] for i in range(5)]), atol=1e-10)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_combined_filter_turns_with_input(k):
    """Pieces from the turned input (a cyclic shift of the four pieces) give the turned filter."""
    p = (k + 1) // 2
    pieces = torch.randn(4, 6, 3, p, p)
    w = assemble_filter(pieces, k)
    assert w.shape == (6, 3, k, k)
    shifted = torch.roll(pieces, -1, dims=0)          # b_i = a_{i+1}
    assert torch.allclose(assemble_filter(shifted, k), rot(w, 1), atol=1e-10)
    # the prose reading (pieces turned the other way) is not equivariant once pieces are larger than 1x1
    if p > 1:
        assert not torch.allclose(assemble_filter(shifted, k, "prose"), rot(assemble_filter(pieces, k, "prose"), 1), atol=1e-3)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
def test_linear_combiner_gives_invariant_output(d):
    orbits = linear_orbits(d)
    assert len(orbits) == (d * d + 3) // 4
    assert sorted(set(orbits.flatten().tolist())) == list(range(d * d))
    perm = rotation_permutation(d)
    v = torch.randn(d * d)
    assert torch.equal(rot(v.reshape(d, d), 1).flatten()[perm], v)
    cols = torch.randn(4, 10, 3, len(orbits))
    w = assemble_linear(cols, d)
    feats = torch.randn(3, d, d)
    w_turned = assemble_linear(torch.roll(cols, -1, dims=0), d)
    assert torch.allclose(w_turned @ rot(feats, 1).flatten(), w @ feats.flatten(), atol=1e-10)
    assert linear_placement(d).shape == (4, len(orbits))


@pytest.mark.parametrize("name", ["hecnn_l", "hecnn_n_l", "hecnn_l_regular"])
def test_hecnn_features_rotate_and_logits_are_invariant(name):
    model = build(name).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats = model(x, "sample", return_features=True)
        for g in (1, 2, 3):
            lg, fg = model(rot(x, g), "sample", return_features=True)
            assert rel(fg, rot(feats, g)) < TOL
            assert rel(lg, logits) < TOL
    assert invariance_error(model, x, "batch") < TOL


def test_per_sample_parameters_invariant_when_single_images_turn():
    """Per-sample parameters: turning one image changes nothing for the others."""
    model = build("hecnn_l").eval()
    x = torch.randn(3, 1, 28, 28)
    x2 = x.clone()
    x2[1] = rot(x[1], 1)
    with torch.no_grad():
        ref, ref_b = model(x, "sample"), model(x, "batch")
        assert ((model(x2, "sample") - ref).abs().max() / spread(ref)).item() < TOL
        # batch-averaged parameters change when only part of the batch turns
        assert ((model(x2, "batch") - ref_b).abs().max() / spread(ref_b)).item() > 1e-3


def test_generated_filters_rotate_mse():
    """E-F5: filters generated for x and its turn, turned back, agree (document: MSE < 1e-6)."""
    model = build("hecnn_l_regular").eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        p0, p1 = model.generate(x), model.generate(rot(x, 1))
    for (w0, _), (w1, _), (kind, *_rest) in zip(p0, p1, model.layout):
        if kind == "conv":
            assert ((rot(w1, -1) - w0) ** 2).mean().item() < 1e-10


@pytest.mark.parametrize("name", ["cnn", "dynamic_z4cnn", "dynamic_cnn"])
def test_non_equivariant_models_fail_the_check(name):
    """The check can fail: a plain CNN and plain dynamic hypernetworks are not invariant."""
    model = build(name).eval()
    x = torch.randn(2, 1, 28, 28)
    assert invariance_error(model, x, "sample", scale="spread") > 1e-2


@pytest.mark.parametrize("name", ["z4cnn", "p4cnn_regular"])
def test_group_cnn_invariant(name):
    model = build(name).eval()
    x = torch.randn(2, 1, 28, 28)
    assert invariance_error(model, x, "sample") < TOL
    with torch.no_grad():                               # Z4 only: a mirror changes the output
        ref = model(x)
        assert ((model(flip(x)) - ref).abs().max() / spread(ref)).item() > 1e-2


def test_p4_features_equivariant():
    model = build("z4cnn").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        _, f = model(x, return_features=True)
        _, f1 = model(rot(x, 1), return_features=True)
    assert rel(f1, rotate_p4(f, 1)) < TOL


def test_d4_extension_invariant_to_mirrors_and_turns():
    z4 = build("hecnn_l").eval()
    d4 = D4nHECNN(z4, n=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():     # a quarter turn and a mirror generate D4: checking both covers the group
        ref, ref_b = d4(x), d4(x, "batch")
        for t in (rot(x, 1), flip(x)):
            assert rel(d4(t), ref) < TOL
            assert rel(d4(t, "batch"), ref_b) < TOL
        ref = z4(x)
        assert ((z4(flip(x)) - ref).abs().max() / spread(ref)).item() > 1e-2


def test_d8_extension_exact_on_d4_part():
    """D8 (n=2): invariant under turns by 90 degrees and mirrors exactly; 45 degrees only up to resampling."""
    d8 = D4nHECNN(build("hecnn_l"), n=2).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        ref = d8(x)
        assert rel(d8(rot(x, 1)), ref) < TOL
        assert rel(d8(flip(x)), ref) < TOL


def test_equivariant_generator_collapses_filters():
    """E-F7 / appendix D.1: an equivariant NEP generator yields filters equal to their own turns."""
    eq, neq = build("hecnn_l_eqgen").eval(), build("hecnn_l").eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        w_eq, w_neq = eq.generate(x)[1][0], neq.generate(x)[1][0]
    assert rel(rot(w_eq, 1), w_eq) < TOL
    assert rel(rot(w_neq, 1), w_neq) > 1e-2

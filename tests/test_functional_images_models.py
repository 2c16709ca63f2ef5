"""Functional image representation: target network, hypernetwork, interpolation, up-scaling."""
import pytest
import torch

from hyperbook.models.functional_image import (SRCNN, BoundTarget, FunctionalImageModel, HyperNetwork,
                                               TargetNet, interpolate_weights, patch_origins, pixel_grid,
                                               rgb_to_y01, upscale, y01_to_gray_rgb)
from hyperbook.plots import layer_table
from hyperbook.train import fit, step_generator


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids oversubscription on a shared CPU (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small(use_alpha=False, channels=3):
    torch.manual_seed(0)
    return FunctionalImageModel(hidden=(8, 16, 32, 16), channels=channels, use_alpha=use_alpha,
                                hyper_channels=8, pool=2).eval()


def test_pixel_grid_is_pixel_centres():
    g = pixel_grid(2, 4)
    assert g.shape == (8, 2)
    assert torch.allclose(g[0], torch.tensor([0.25, 0.125]))
    assert torch.allclose(g[-1], torch.tensor([0.75, 0.875]))


def test_target_architecture_five_layers_up_then_down():
    t = TargetNet(hidden=(32, 64, 128, 64), out_channels=3)
    widths = [layer.n_out for layer in t.layers]
    assert len(t.layers) == 5 and widths == [32, 64, 128, 64, 3]
    assert [layer.residual for layer in t.layers] == [False, True, True, True, False]
    assert t.layers[-1].kind == "output"
    assert sum(p.numel() for p in t.parameters()) == 0          # weights come from the hypernetwork
    assert t.layer_sizes == [2 * 32 + 64, 32 * 64 + 128, 64 * 128 + 256, 128 * 64 + 128, 64 * 3 + 3]


def test_hypernetwork_eight_conv_layers_per_path_and_one_branch_per_layer():
    t = TargetNet(hidden=(8, 16, 32, 16))
    h = HyperNetwork(t, channels=8, kernel=5)
    trunk_convs = [m for m in h.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    branch_convs = [m for m in h.branches[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(trunk_convs) + len(branch_convs) == 8
    assert len(h.branches) == len(t.layers)
    kernels = [tuple(c.kernel_size) for c in trunk_convs + branch_convs]
    assert kernels == [(1, 5), (5, 1)] * 4                       # 1xn then nx1, always
    out = h(torch.rand(3, 3, 20, 20))
    assert [o.shape for o in out] == [(3, n) for n in t.layer_sizes]


def test_shapes_and_batched_evaluation_matches_per_image():
    m = small(use_alpha=True)
    x = torch.rand(4, 3, 16, 16)
    alpha = torch.tensor([2.0, 3.0, 4.0, 2.5])
    coords = pixel_grid(10, 12)
    with torch.no_grad():
        out = m(x, coords, alpha)
        assert out.shape == (4, 120, 3)
        assert (out >= 0).all() and (out <= 1).all()             # sigmoid output
        one = torch.cat([m(x[k:k + 1], coords, alpha[k:k + 1]) for k in range(4)])
    torch.testing.assert_close(out, one, rtol=1e-4, atol=1e-5)
    img = m.render(x, 10, 12, alpha)
    assert img.shape == (4, 3, 10, 12)
    torch.testing.assert_close(img.flatten(2).transpose(1, 2), out)


def test_target_is_a_function_of_coordinates_alone():
    """The value at a point does not depend on which other points are queried."""
    m = small()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        w = m.weights(x)
        dense = m.target(pixel_grid(16, 16), w)
        picked = m.target(pixel_grid(16, 16)[[5, 77, 200]], w)
    torch.testing.assert_close(dense[:, [5, 77, 200]], picked, rtol=1e-4, atol=1e-5)


def test_alpha_is_required_and_changes_the_output():
    m = small(use_alpha=True)
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError):
        m(x, pixel_grid(4, 4))
    with torch.no_grad():
        assert not torch.allclose(m(x, pixel_grid(4, 4), 2.0), m(x, pixel_grid(4, 4), 4.0))


def test_interpolation_endpoints_reproduce_both_target_networks_exactly():
    m = small()
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        wa, wb = m.weights(a), m.weights(b)
        grid = pixel_grid(16, 16)
        assert torch.equal(m.target(grid, interpolate_weights(wa, wb, 0.0)), m.target(grid, wa))
        assert torch.equal(m.target(grid, interpolate_weights(wa, wb, 1.0)), m.target(grid, wb))
        mid = interpolate_weights(wa, wb, 0.5)
        torch.testing.assert_close(mid[2], (wa[2] + wb[2]) / 2)
        # layer-wise: only the first i layers move
        first2 = interpolate_weights(wa, wb, 1.0, layers=range(2))
        assert all(torch.equal(first2[k], wb[k]) for k in range(2))
        assert all(torch.equal(first2[k], wa[k]) for k in range(2, 5))


def test_patch_origins_cover_the_image():
    assert patch_origins(40, 16, 8) == [0, 8, 16, 24]
    assert patch_origins(41, 16, 8) == [0, 8, 16, 24, 25]
    assert patch_origins(10, 16, 8) == [0]


@pytest.mark.parametrize("sy,sx", [(2, 2), (3, 3), (2.5, 1.0)])
def test_upscale_agrees_with_rendering_each_patch(sy, sx):
    """A random (untrained) target network per patch: with patches side by side (stride = patch), every
    output pixel must be exactly what its own patch's target network renders at that pixel (a
    misaligned patch or a shifted local coordinate breaks this; a constant image could not)."""
    m = small(use_alpha=True)
    p = 8
    lr = torch.rand(3, 2 * p, 3 * p, generator=torch.Generator().manual_seed(1))
    out = upscale(m, lr, sy, sx, patch=p, stride=p)
    assert out.shape == (3, round(2 * p * sy), round(3 * p * sx))
    hp, wp = round(p * sy), round(p * sx)
    alpha = max(sy, sx)
    with torch.no_grad():
        for py in range(2):
            for px in range(3):
                piece = lr[:, py * p:(py + 1) * p, px * p:(px + 1) * p][None]
                want = m.render(piece, hp, wp, alpha=alpha)[0]
                got = out[:, py * hp:(py + 1) * hp, px * wp:(px + 1) * wp]
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # with the default overlapping patches, a one-patch image is its network's rendering
    single = lr[:, :p, :p]
    with torch.no_grad():
        torch.testing.assert_close(upscale(m, single, sy, sx, patch=p),
                                   m.render(single[None], round(p * sy), round(p * sx), alpha=alpha)[0],
                                   rtol=0, atol=1e-5)


def test_smoke_training_beats_the_untrained_network():
    """A few steps on one image lower the reconstruction error of the rendered grid."""
    torch.manual_seed(0)
    m = small(channels=1).train()
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    img = (0.5 + 0.4 * torch.sin(6 * x) * torch.cos(4 * y)).view(1, 1, 16, 16)
    grid = pixel_grid(16, 16)
    with torch.no_grad():
        before = (m.eval().render(img, 16, 16) - img).pow(2).mean().item()
    res = fit(m, lambda mod, b: (mod(b[0], grid) - b[0].flatten(2).transpose(1, 2)).pow(2).mean(),
              lambda step: (img.expand(2, -1, -1, -1),), steps=60, lr=3e-3, progress=False)
    with torch.no_grad():
        after = (m.eval().render(img, 16, 16) - img).pow(2).mean().item()
    assert after < 0.25 * before, (before, after)
    assert res.items_per_s > 0


def test_layer_table_of_bound_target():
    m = small()
    w = m.weights(torch.rand(1, 3, 16, 16))
    table = layer_table(BoundTarget(m.target, w), pixel_grid(5, 5))
    assert list(table["type"]) == ["TargetLayer"] * 5
    assert table["output shape"].iloc[-1] == "(1, 25, 3)"


def test_srcnn_and_luminance_helpers():
    s = SRCNN()                                   # the published 9-5-5, 64/32 filters
    assert sum(p.numel() for p in s.parameters()) == 64 * 81 + 64 + 32 * 64 * 25 + 32 + 32 * 25 + 1
    assert s(torch.rand(2, 1, 20, 20)).shape == (2, 1, 20, 20)
    rgb = torch.rand(3, 8, 8) * 0.6 + 0.2
    y = rgb_to_y01(rgb)
    back = y01_to_gray_rgb(y + 0.05, rgb)
    torch.testing.assert_close(rgb_to_y01(back), y + 0.05)

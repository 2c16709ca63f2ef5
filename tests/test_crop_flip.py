"""The shared CIFAR augmentation (pad, random crop, horizontal flip), batched with one gather.

The reference is the per-image loop the i-RevNet chapter used before (one Python slice per image)."""
import pytest
import torch
import torch.nn.functional as F

from hyperbook.data.transforms import crop_flip_at, random_crop_flip


def per_image_reference(x, dy, dx, flip, pad):
    """Zero-pad, then slice and (maybe) mirror each image on its own."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    out = [xp[k, :, int(dy[k]):int(dy[k]) + h, int(dx[k]):int(dx[k]) + w] for k in range(n)]
    return torch.stack([o.flip(-1) if bool(flip[k]) else o for k, o in enumerate(out)])


def draws(seed, n, pad, order="dy dx"):
    """The offsets and flips a generator seeded `seed` yields, in the order the caller draws them."""
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    second = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    return (first, second, flip) if order == "dy dx" else (second, first, flip)


@pytest.mark.parametrize("shape,pad", [((64, 3, 32, 32), 4), ((7, 2, 9, 13), 2), ((3, 1, 5, 5), 0)])
def test_equals_the_per_image_loop_for_a_fixed_generator(shape, pad):
    x = torch.randn(shape)
    got = random_crop_flip(x, torch.Generator().manual_seed(3), pad=pad)
    dy, dx, flip = draws(3, shape[0], pad)
    torch.testing.assert_close(got, per_image_reference(x, dy, dx, flip, pad), rtol=0, atol=0)


def test_thesis_ch4_augmentation_keeps_its_draw_order():
    """thesis_steerable draws dx before dy; sharing the code must not change its stream (recorded runs)."""
    from hyperbook.experiments.thesis_steerable import _augment
    x = torch.randn(16, 3, 32, 32)
    dy, dx, flip = draws(5, 16, 4, order="dx dy")
    torch.testing.assert_close(_augment(x, torch.Generator().manual_seed(5)),
                               per_image_reference(x, dy, dx, flip, 4), rtol=0, atol=0)


def test_irevnet_training_batches_use_the_shared_augmentation():
    import inspect

    from hyperbook.experiments import thesis_irevnet as E
    assert E.random_crop_flip is random_crop_flip
    assert "random_crop_flip(train_x[idx], g)" in inspect.getsource(E.run_train)


def test_offsets_and_flips_follow_the_documented_distribution():
    """Padding 4, crop 32: offsets uniform on 0..8 in each axis, each image mirrored with probability 1/2,
    the padding zeros where the offset puts them. Decoded from the output of a coordinate-coded image."""
    n, size, pad = 4500, 32, 4
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    code = (rows * size + cols + 1).float()                       # > 0 inside the frame, padding gives 0
    out = random_crop_flip(code.expand(n, 1, size, size), torch.Generator().manual_seed(0), pad=pad)[:, 0]
    centre = out[:, 16, 16].long() - 1                            # always inside the frame for pad <= 4
    flipped = out[:, 16, 17] < out[:, 16, 16]                     # a mirrored row decreases
    dy = centre // size - (16 - pad)
    dx = centre % size - torch.where(flipped, torch.full_like(centre, size - 1 - 16 - pad),
                                     torch.full_like(centre, 16 - pad))
    assert dy.min() == 0 and dy.max() == 2 * pad and dx.min() == 0 and dx.max() == 2 * pad
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=2 * pad + 1).float()
        assert ((counts - n / 9).abs() < 110).all(), counts        # ~5 standard deviations of 500
    assert abs(flipped.float().mean().item() - 0.5) < 0.03
    # zero rows exactly where the crop reaches into the padding (top: dy < pad; bottom: dy > pad)
    top_zero = (out[:, 0, :] == 0).all(1)
    assert torch.equal(top_zero, dy < pad)
    assert torch.equal((out[:, -1, :] == 0).all(1), dy > pad)


def test_crop_flip_at_moves_values_only():
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    zero = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(crop_flip_at(x, zero + 2, zero + 2, torch.zeros(4, dtype=torch.bool), 2), x)
    torch.testing.assert_close(crop_flip_at(x, zero + 2, zero + 2, torch.ones(4, dtype=torch.bool), 2), x.flip(-1))

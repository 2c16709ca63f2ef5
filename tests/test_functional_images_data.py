"""Super-resolution metrics against scikit-image, the folder loader, the missing-dataset error, stand-ins."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hyperbook.data.checksums import md5sum
from hyperbook.data.sr_folders import (SR_DATASETS, STANDIN_TEST, STANDIN_TRAIN, load_lfw_faces,
                                       load_sr_folder, sr_available, to_tensor01, write_manifest)
from hyperbook.errors import ChecksumError, DatasetMissingError, UnknownChoiceError
from hyperbook.experiments.functional_images import PatchSampler
from hyperbook.metrics import (bicubic_baseline, bicubic_upscale, downscale, imresize, luminance, make_lr, modcrop,
                               psnr, quantise, resize_matrix, ssim)

DATA = Path(__file__).resolve().parents[1] / "data"


def pair(seed=0, h=40, w=48):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    noisy = np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    return ref, noisy


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_psnr_ssim_match_scikit_image_on_luminance_with_border_crop(scale):
    ref, noisy = pair(scale)
    y_ref = rgb2ycbcr(ref)[..., 0][scale:-scale, scale:-scale]
    y_out = rgb2ycbcr(noisy)[..., 0][scale:-scale, scale:-scale]
    want_p = peak_signal_noise_ratio(y_ref, y_out, data_range=255)
    want_s = structural_similarity(y_ref, y_out, data_range=255, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False)
    # our functions take [0,1] floats, channel-first tensors or channel-last arrays
    assert psnr(ref / 255.0, torch.from_numpy(noisy / 255.0).permute(2, 0, 1), scale) == pytest.approx(want_p, abs=1e-9)
    assert ssim(ref / 255.0, noisy / 255.0, scale) == pytest.approx(want_s, abs=1e-9)


def test_known_values():
    ref = np.full((20, 20, 3), 0.5)
    out = ref.copy()
    assert psnr(ref, out, 2) == float("inf")
    assert ssim(ref, out, 2) == pytest.approx(1.0)
    # a uniform luminance error of 2.19 on Y (R=G=B shifted by 2.55/255 ... one 8-bit step on all three)
    out = ref + 1 / 255.0
    y_err = luminance(out) - luminance(ref)
    assert np.allclose(y_err, y_err.flat[0])
    assert psnr(ref, out, 2) == pytest.approx(20 * np.log10(255 / abs(y_err.flat[0])), abs=1e-9)


def test_quantise_and_luminance_range():
    x = np.linspace(-0.2, 1.2, 30).reshape(1, 10, 3).repeat(2, 0)
    q = quantise(x)
    assert q.min() == 0 and q.max() == 1 and np.allclose(q * 255, np.round(q * 255))
    y = luminance(np.ones((4, 4, 3)))
    assert np.allclose(y, 235.0)


def test_bicubic_baseline_and_downscale():
    hr = torch.rand(3, 35, 42)
    assert modcrop(hr, 4).shape == (3, 32, 40)
    assert downscale(modcrop(hr, 4), 4).shape == (3, 8, 10)
    x = torch.linspace(0, 1, 64).view(1, 64).expand(64, 64)
    smooth = torch.stack([x, x.T, (x + x.T) / 2])
    p2, s2 = bicubic_baseline(smooth, 2)
    p4, s4 = bicubic_baseline(torch.rand(3, 64, 64), 4)
    assert p2 > 35 and s2 > 0.95          # a smooth ramp survives bicubic down/up-scaling
    assert p4 < p2 and s4 < s2            # noise does not


def write_images(folder, n, size=(12, 10), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        arr = rng.integers(0, 256, size + ((3,) if k % 2 == 0 else ())).astype(np.uint8)  # RGB and grey
        Image.fromarray(arr).save(folder / f"{k:04d}.png")


def test_folder_loader_on_tiny_pngs_with_manifest(tmp_path):
    folder = tmp_path / SR_DATASETS["Set5"][0]
    write_images(folder, 5)
    images = load_sr_folder(tmp_path, "Set5")
    assert len(images) == 5 and all(im.shape == (12, 10, 3) and im.dtype == np.uint8 for im in images)
    assert np.array_equal(images[0], np.asarray(Image.open(folder / "0000.png")))
    assert np.array_equal(images[1][..., 0], images[1][..., 2])          # grey replicated
    manifest = write_manifest(folder)
    assert md5sum(folder / "0003.png") in manifest.read_text()
    assert len(load_sr_folder(tmp_path, "Set5")) == 5                      # verified against the manifest
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(folder / "0003.png")
    with pytest.raises(ChecksumError):
        load_sr_folder(tmp_path, "Set5")


def test_missing_dataset_names_folder_and_command(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        load_sr_folder(tmp_path, "Urban100")
    msg = str(err.value)
    assert "Urban100" in msg and str(tmp_path / "benchmark" / "Urban100" / "HR") in msg and "make data" in msg
    write_images(tmp_path / SR_DATASETS["Set14"][0], 3)                   # incomplete: 3 of 14
    with pytest.raises(DatasetMissingError, match="found 3"):
        load_sr_folder(tmp_path, "Set14")
    assert not sr_available(tmp_path)
    with pytest.raises(UnknownChoiceError):
        load_sr_folder(tmp_path, "Set6")


def test_standin_sets_are_disjoint_and_faces_are_the_lfw_faces():
    assert not set(STANDIN_TRAIN) & set(STANDIN_TEST)
    assert "cat" not in STANDIN_TRAIN + STANDIN_TEST                    # the same photograph as chelsea
    faces = load_lfw_faces()
    assert faces.shape == (100, 25, 25) and 0 <= faces.min() and faces.max() <= 1


def test_patch_sampler_pairs_are_aligned():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 52, 3)).astype(np.uint8), rng.integers(0, 256, (33, 30, 3)).astype(np.uint8)]
    s = PatchSampler(images, (2, 3), "cpu")
    lr, hr = s.sample(3, 6, 5, torch.Generator().manual_seed(0))
    assert lr.shape == (6, 3, 5, 5) and hr.shape == (6, 3, 15, 15)
    # the LR patch is (up to 8-bit rounding and the border of the kernel) the down-scaled HR patch
    inner = (downscale(hr, 3) - lr)[..., 2:-2, 2:-2].abs()
    assert inner.mean() < 0.03


def _padded_reference_sample(images, scale, batch, patch, g):
    """The old sampler's algorithm (every image padded to the largest size, one gather), for comparison."""
    hrs = [modcrop(torch.from_numpy(im).permute(2, 0, 1), scale) for im in images]
    lrs = [(make_lr(h.float() / 255, scale) * 255).round().to(torch.uint8) for h in hrs]
    n = torch.randint(len(images), (batch,), generator=g)
    sizes = torch.tensor([l.shape[-2:] for l in lrs])[n]
    pos = (torch.rand(batch, 2, generator=g) * (sizes - patch + 1).clamp(min=1)).long()
    lr = torch.stack([lrs[k][:, y:y + patch, x:x + patch] for k, (y, x) in zip(n.tolist(), pos.tolist())])
    hr = torch.stack([hrs[k][:, y * scale:(y + patch) * scale, x * scale:(x + patch) * scale]
                      for k, (y, x) in zip(n.tolist(), pos.tolist())])
    return lr.float() / 255, hr.float() / 255


def test_patch_sampler_keeps_images_unpadded_and_draws_the_same_crops():
    """Memory: no tensor padded to the largest image (the old sampler's ~10 GB per scale on DIV2K);
    distribution: the same crops as the padded sampler for the same generator state."""
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (40, 90, 3)).astype(np.uint8), rng.integers(0, 256, (80, 24, 3)).astype(np.uint8)]
    s = PatchSampler(images, (2, 4), "cpu")
    stored = list(s.hr) + [t for lrs in s.lr.values() for t in lrs]
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in stored)
    assert sum(t.numel() for t in stored) < 1.5 * 3 * (40 * 90 + 80 * 24)   # padded: 2 x 3 x 80 x 90 per scale
    assert [tuple(t.shape) for t in s.lr[4]] == [(3, 10, 22), (3, 20, 6)]
    for scale in (2, 4):
        got = s.sample(scale, 32, 5, torch.Generator().manual_seed(3))
        want = _padded_reference_sample(images, scale, 32, 5, torch.Generator().manual_seed(3))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    # uniform over images and over every valid corner (here 6 x 18 and 16 x 2 corners at x4)
    g = torch.Generator().manual_seed(0)
    lr, hr = s.sample(4, 4000, 5, g)
    assert hr.shape == (4000, 3, 20, 20)
    with pytest.raises(ValueError, match="smaller than"):
        s.sample(4, 2, 7, g)


def test_sampler_and_loader_fall_back_only_when_allowed(tmp_path):
    from hyperbook.experiments.functional_images import STANDIN_SET, load_sr_data
    with pytest.raises(DatasetMissingError, match="Set5"):
        load_sr_data("benchmarks", tmp_path, allow_standin=False)
    test, train, label = load_sr_data("benchmarks", tmp_path, allow_standin=True)
    assert list(test) == [STANDIN_SET] and "stand-in" in label and len(train) == 11
    with pytest.raises(UnknownChoiceError):
        load_sr_data("div3k", tmp_path)


def test_full_profiles_never_use_a_standin():
    from hyperbook.experiments.functional_images import SRCNNConfig, SRConfig
    for cfg in (SRConfig.for_profile("full"), SRCNNConfig.for_profile("full")):
        assert cfg.allow_standin is False and cfg.data == "benchmarks" and cfg.precision == "fp32"


# ----------------------------------------------------------------------------- the bicubic kernel
@pytest.mark.parametrize("size", [(80, 104), (120, 156), (20, 26), (13, 17)])
def test_bicubic_is_matlab_and_pil_bicubic(size):
    """Up- and down-scaling match PIL's BICUBIC (a = -0.5, antialiased; MATLAB's kernel) away from the
    border (PIL renormalises at the border, MATLAB mirrors). torch's non-antialiased bicubic (a = -0.75,
    the old up-scaling) differs by ~0.07 here."""
    x = torch.rand(40, 52, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = imresize(x, size=size).numpy()
    pil = np.asarray(Image.fromarray(x.numpy().astype(np.float32), "F").resize(size[::-1], Image.BICUBIC))
    b = 4
    assert np.abs(ours - pil)[b:-b, b:-b].max() < 1e-5
    if size[0] > 40:
        up = bicubic_upscale(x[None].float(), size)[0].numpy()
        assert np.abs(up - np.clip(pil, 0, 1))[b:-b, b:-b].max() < 1e-5


def test_matlab_resize_rows_and_mirrored_border():
    m = resize_matrix(32, 16)                            # x1/2, antialiased: the kernel spans 8 input pixels
    torch.testing.assert_close(m.sum(1), torch.ones(16, dtype=torch.float64))
    assert torch.allclose(m[5], m[6].roll(-2))          # interior rows are shifted copies
    assert (m[6] != 0).sum() == 8
    assert m[0, 0] > m[0, 1] > 0                        # mirrored border: the first pixel weighs more
    assert imresize(torch.rand(3, 9, 10), scale=0.5).shape == (3, 5, 5)     # ceil, as MATLAB
    with pytest.raises(ValueError):
        imresize(torch.rand(3, 9, 10))


# The bicubic reference: document 001's Table 1, bicubic column (mean PSNR per set on Y, border = scale),
# transcribed in functional_images.DOC_PSNR. SRCNN's own Set5 means (Dong et al., TPAMI 2016, table 2:
# 33.66 / 30.39 / 28.42, as quoted e.g. in the README of the public InsightDev/SRCNN-keras repository) lie
# within the same 0.05 dB. (Per-image Set5 values recalled from the SRCNN paper stood here before; no stored
# source could confirm them, so the check is now on the published set means.)
@pytest.mark.skipif(not sr_available(DATA, ("Set5", "Set14")), reason="Set5 / Set14 not in data/")
@pytest.mark.parametrize("name", ["Set5", "Set14"])
def test_bicubic_psnr_matches_the_documents_bicubic_column(name):
    """The whole pipeline (mod-crop, MATLAB bicubic down, 8 bits, bicubic up, Y, border crop) on every image
    of the set lands on the document's bicubic PSNR (torch's non-antialiased a=-0.75 kernel: +0.1 to +0.45 dB)."""
    from hyperbook.experiments.functional_images import DOC_PSNR
    images = [to_tensor01(img) for img in load_sr_folder(DATA, name)]
    for scale in (2, 3, 4):
        mean = float(np.mean([bicubic_baseline(hr, scale)[0] for hr in images]))
        assert mean == pytest.approx(DOC_PSNR[(name, scale)][0], abs=0.05), (name, scale, mean)


def test_prepare_sr_writes_manifests_and_reports_missing(tmp_path):
    from hyperbook.data.sr_folders import prepare_sr
    from hyperbook.data.sr_folders import PREPARED_SR
    for name in PREPARED_SR:
        rel, count = SR_DATASETS[name]
        if name != "Urban100":
            write_images(tmp_path / rel, count, size=(4, 4))
    with pytest.raises(DatasetMissingError, match="Urban100"):
        prepare_sr(tmp_path)
    write_images(tmp_path / SR_DATASETS["Urban100"][0], 100, size=(4, 4))
    prepare_sr(tmp_path)
    assert all((tmp_path / SR_DATASETS[n][0] / "MANIFEST.md5").exists() for n in PREPARED_SR)
    assert sr_available(tmp_path)

"""Super-resolution metrics against scikit-image, the folder loader, the missing-dataset error, stand-ins."""
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hyperbook.data.checksums import md5sum
from hyperbook.data.sr_folders import (SR_DATASETS, STANDIN_TEST, STANDIN_TRAIN, load_lfw_faces,
                                       load_sr_folder, sr_available, write_manifest)
from hyperbook.errors import ChecksumError, DatasetMissingError, UnknownChoiceError
from hyperbook.experiments.functional_images import PatchSampler
from hyperbook.metrics import bicubic_baseline, downscale, luminance, modcrop, psnr, quantise, ssim


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
    inner = (downscale(hr, 3) - lr)[..., 1:-1, 1:-1].abs()
    assert inner.mean() < 0.03


def test_prepare_sr_writes_manifests_and_reports_missing(tmp_path):
    from hyperbook.data.sr_folders import prepare_sr
    for name, (rel, count) in SR_DATASETS.items():
        if name != "Urban100":
            write_images(tmp_path / rel, count, size=(4, 4))
    with pytest.raises(DatasetMissingError, match="Urban100"):
        prepare_sr(tmp_path)
    write_images(tmp_path / SR_DATASETS["Urban100"][0], 100, size=(4, 4))
    prepare_sr(tmp_path)
    assert all((tmp_path / rel / "MANIFEST.md5").exists() for rel, _ in SR_DATASETS.values())
    assert sr_available(tmp_path)

"""Functional image representation experiments (document 001, section 4).

* `faces`: train the hypernetwork to represent face images, then interpolate
  target-network weights between two images (whole and layer-wise) and compare
  with pixel interpolation (F-F1, F-F6, F-F7). CelebA (central 128 crop at
  64x64) in the full profile; offline, the 100 faces of scikit-image's
  `lfw_subset` (25x25 grey), a labelled stand-in.
* `sr_hypernet`: one hypernetwork for scales x2, x3, x4 (alpha given to the
  target network), trained on bicubic-down-scaled patches, tested with
  overlapping patches averaged (section 4.2); bicubic measured on the same
  images; renders for F-F2 (x4) and F-F3 (2.5 x 1); PSNR/SSIM for F-T1/F-T2.
* `sr_srcnn`: SRCNN as published (9-5-5, 64/32 filters, padding-free training
  on 33x33 sub-images; Adam instead of SGD) trained by us under the same
  protocol (same images, same down-scaling, one model per scale), scored the same way.

Data for super-resolution: BSD200 (BSDS500 train, the usual substitute for
DIV2K, which is absent) for training; the real Set5, Set14 and B100 for testing
(Urban100 is absent: its rows stay quoted). Evaluation as in the SR literature
(`hyperbook.metrics`): HR mod-cropped to the scale, LR by MATLAB's antialiased
bicubic, PSNR/SSIM on Y with a `scale`-pixel border cropped. Without the folders,
smoke and reduced fall back to scikit-image's photographs (labelled, not
comparable); `full` stops with an error naming the missing dataset.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..profiles import check_training_profile
from ..data.sr_folders import (SR_TEST_SETS, load_celeba, load_lfw_faces, load_sr_folder,
                               standin_photographs, to_tensor01)
from ..errors import DatasetMissingError, UnknownChoiceError
from ..metrics import bicubic_upscale, make_lr, modcrop, psnr, ssim
from ..models.functional_image import (SRCNN, FunctionalImageModel, interpolate_weights, pixel_grid,
                                       rgb_to_y01, upscale, y01_to_gray_rgb)
from ..results import config_hash
from ..train import checkpoint_path, fit, seed_everything, step_generator

CHAPTER = "functional_images"
EXPERIMENTS = ("faces", "sr_hypernet", "sr_srcnn")

# The document's tables 1 and 2: (dataset, scale) -> (bicubic, SRCNN, RDN, hypernetwork)
DOC_PSNR = {
    ("Set5", 2): (33.64, 36.66, 38.30, 36.09), ("Set5", 3): (30.41, 32.75, 34.78, 32.85),
    ("Set5", 4): (28.42, 30.49, 32.61, 30.69),
    ("Set14", 2): (30.33, 32.45, 34.10, 32.30), ("Set14", 3): (27.63, 29.30, 30.67, 29.37),
    ("Set14", 4): (26.08, 27.50, 28.92, 27.61),
    ("B100", 2): (29.48, 31.36, 32.40, 31.11), ("B100", 3): (27.12, 28.41, 29.33, 28.31),
    ("B100", 4): (25.87, 26.90, 27.80, 26.86),
    ("Urban100", 2): (26.85, 29.50, 33.09, 29.43), ("Urban100", 3): (24.43, 26.24, 29.00, 26.26),
    ("Urban100", 4): (23.11, 24.52, 26.82, 24.56),
}
DOC_SSIM = {
    ("Set5", 2): (0.930, 0.9542, 0.9616, 0.9505), ("Set5", 3): (0.869, 0.909, 0.930, 0.910),
    ("Set5", 4): (0.812, 0.863, 0.900, 0.869),
    ("Set14", 2): (0.869, 0.907, 0.922, 0.900), ("Set14", 3): (0.775, 0.822, 0.848, 0.816),
    ("Set14", 4): (0.703, 0.751, 0.789, 0.751),
    ("B100", 2): (0.843, 0.888, 0.902, 0.879), ("B100", 3): (0.738, 0.786, 0.811, 0.778),
    ("B100", 4): (0.666, 0.710, 0.743, 0.706),
    ("Urban100", 2): (0.839, 0.895, 0.937, 0.891), ("Urban100", 3): (0.733, 0.799, 0.868, 0.798),
    ("Urban100", 4): (0.656, 0.722, 0.807, 0.723),
}
DOC_METHODS = ("bicubic", "SRCNN", "RDN (quoted)", "hypernetwork")
STANDIN_SET = "skimage-photos (stand-in)"
# bicubic is scored on whole sets in `sr_srcnn` (it is SRCNN's input); `sr_hypernet` scores it again on the
# images it evaluates (its reduced run evaluates part of Set14 and B100), for its own gains
BICUBIC_SUBSET = "bicubic (hypernetwork's images)"



# ============================================================================ faces
@dataclass(frozen=True)
class FacesConfig:
    source: str                      # 'lfw_subset' (offline stand-in) or 'celeba'
    n_train: int
    n_test: int
    hidden: tuple = (16, 32, 64, 32)
    hyper_channels: int = 32
    pool: int = 2
    kernel: int = 5
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    n_pairs: int = 4                 # interpolation rows of F-F6 (plus one failure row)
    n_candidates: int = 16           # pairs searched for the failure row
    n_steps_interp: int = 8          # columns: t = 0 .. 1
    flip: bool = True                # random horizontal flips of training faces (ours; the document says nothing)
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 1

    @classmethod
    def for_profile(cls, profile: str) -> "FacesConfig":
        check_training_profile(profile)
        if profile == "smoke":
            return cls("lfw_subset", n_train=80, n_test=20, hidden=(8, 16, 32, 16), hyper_channels=8,
                       steps=30, batch_size=16, n_candidates=6, n_steps_interp=5)
        if profile == "reduced":     # about 5 minutes on 2 idle cores (800 steps took 33 min under load ~17)
            return cls("lfw_subset", n_train=80, n_test=20, steps=300, batch_size=32)
        # the document: CelebA, central 128 crop resized to 64x64 (training length not stated)
        return cls("celeba", n_train=162_770, n_test=1000, hidden=(32, 64, 128, 64), hyper_channels=64,
                   pool=4, steps=100_000, batch_size=64, n_candidates=64)


def load_faces(config: FacesConfig, data_dir, device):
    """(train, test) float [N, C, H, W] in [0, 1], and a label of the source."""
    if config.source == "lfw_subset":
        faces = torch.from_numpy(load_lfw_faces()).unsqueeze(1)
        g = torch.Generator().manual_seed(1)
        order = torch.randperm(len(faces), generator=g)
        faces = faces[order]
        label = "scikit-image lfw_subset faces (25x25 grey), a stand-in for CelebA"
        return (faces[:config.n_train].to(device), faces[config.n_train:config.n_train + config.n_test].to(device),
                label)
    if config.source == "celeba":
        train = load_celeba(data_dir, "train", config.n_train)
        test = load_celeba(data_dir, "test", config.n_test)
        return train.to(device), test.to(device), "CelebA, central 128x128 crop resized to 64x64"
    raise UnknownChoiceError("face source", config.source, ("lfw_subset", "celeba"))


def _nearest_distance(images: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance from each image to its nearest image in `bank`."""
    d = torch.cdist(images.flatten(1), bank.flatten(1)) / images[0].numel() ** 0.5
    return d.min(1).values


@torch.no_grad()
def _interpolation_rows(model, a, b, ts, layers=None):
    """Weight-space interpolation between images a, b [n, C, H, W]: [n, len(ts), C, H, W]."""
    wa, wb = model.weights(a), model.weights(b)
    h, w = a.shape[-2:]
    frames = [model.target.render(interpolate_weights(wa, wb, float(t), layers), h, w) for t in ts]
    return torch.stack(frames, 1)


def run_faces(config: FacesConfig, ctx):
    device = ctx.device
    seed_everything(config.seed)
    train, test, source = load_faces(config, ctx.data_dir, device)
    channels, size = train.shape[1], train.shape[-1]
    model = FunctionalImageModel(hidden=config.hidden, channels=channels, use_alpha=False,
                                 hyper_channels=config.hyper_channels, kernel=config.kernel,
                                 pool=config.pool).to(device)
    grid = pixel_grid(size, size, device=device)

    def batch_fn(step):
        g = step_generator(config.seed, step)
        idx = torch.randint(len(train), (config.batch_size,), generator=g)
        flip = (torch.rand(config.batch_size, generator=g) < 0.5) & config.flip
        x = train[idx.to(device)]
        x = torch.where(flip.to(device).view(-1, 1, 1, 1), x.flip(-1), x)
        return (x,)

    def loss_fn(m, batch):
        (x,) = batch
        out = m(x, grid)                                       # [B, H*W, C]
        return (out - x.flatten(2).transpose(1, 2)).pow(2).mean()

    result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, device=device,
                 precision=config.precision,
                 checkpoint=checkpoint_path(ctx.results_dir, CHAPTER, "faces", config_hash(config)),
                 checkpoint_every=500, log_every=max(1, config.steps // 50), desc="faces")
    model.eval()
    ts = torch.linspace(0, 1, config.n_steps_interp).tolist()
    with torch.no_grad():
        rec_test = model.render(test, size, size)
        rec_train = model.render(train[:len(test)], size, size)
        mse_test = (rec_test - test).pow(2).flatten(1).mean(1)
        mse_train = (rec_train - train[:len(test)]).pow(2).flatten(1).mean(1)
        # pairs of test images: the first n_pairs rows, and n_candidates searched for the failure row
        g = torch.Generator().manual_seed(config.seed + 7)
        cand = torch.stack([torch.randperm(len(test), generator=g)[:2] for _ in range(config.n_candidates)])
        a, b = test[cand[:, 0]], test[cand[:, 1]]
        weight_rows = _interpolation_rows(model, a, b, ts)                   # [n_cand, T, C, H, W]
        tt = torch.tensor(ts, device=device).view(1, -1, 1, 1, 1)
        pixel_rows = (1 - tt) * a.unsqueeze(1) + tt * b.unsqueeze(1)
        bank = torch.cat([train, test])
        inner = slice(1, len(ts) - 1)
        d_weight = _nearest_distance(weight_rows[:, inner].flatten(0, 1), bank).view(len(cand), -1)
        d_pixel = _nearest_distance(pixel_rows[:, inner].flatten(0, 1), bank).view(len(cand), -1)
        # the failure row: the pair whose weight interpolation strays farthest from every real face
        fail = int(d_weight.max(1).values[config.n_pairs:].argmax()) + config.n_pairs \
            if len(cand) > config.n_pairs else len(cand) - 1
        rows = list(range(min(config.n_pairs, len(cand)))) + [fail]
        # endpoints reproduce the two target networks exactly
        wa, wb = model.weights(a[:1]), model.weights(b[:1])
        end0 = (model.target.render(interpolate_weights(wa, wb, 0.0), size, size)
                - model.target.render(wa, size, size)).abs().max().item()
        end1 = (model.target.render(interpolate_weights(wa, wb, 1.0), size, size)
                - model.target.render(wb, size, size)).abs().max().item()
        # layer-wise (F-F7): row i interpolates the first i layers, pair 0
        layer_rows = torch.cat([_interpolation_rows(model, a[:1], b[:1], ts, layers=range(i))
                                for i in range(1, len(model.target.layers) + 1)])
        # similar images, similar weights: correlation of pairwise distances on the test set
        wt = torch.cat([w for w in model.weights(test)], 1)
        iu = torch.triu_indices(len(test), len(test), 1)
        dw = torch.cdist(wt, wt)[iu[0], iu[1]]
        dp = torch.cdist(test.flatten(1), test.flatten(1))[iu[0], iu[1]]
        corr = float(torch.corrcoef(torch.stack([dw, dp]))[0, 1])
    metrics = {
        "targets": ["F-F1", "F-F6", "F-F7"], "data_source": source,
        "throughput": round(result.items_per_s, 1), "train_wall_s": round(result.wall_s, 1),
        "steps": config.steps, "batch_size": config.batch_size, "flip": config.flip,
        "hyper_parameters": sum(p.numel() for p in model.parameters()),
        "target_weights_per_image": sum(model.target.layer_sizes),
        "test_psnr": float((10 * torch.log10(1 / mse_test)).mean()),
        "train_psnr": float((10 * torch.log10(1 / mse_train)).mean()),
        "endpoint_max_abs_diff": [end0, end1],
        "nearest_face_rms_weight_interp": float(d_weight[rows[:-1]].mean()),
        "nearest_face_rms_pixel_interp": float(d_pixel[rows[:-1]].mean()),
        "failure_row_pair": cand[fail].tolist(),
        "weight_pixel_distance_correlation": corr,
    }
    u8 = lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()  # noqa: E731
    arrays = {
        "loss_curve": np.array(result.losses, dtype=np.float32),
        "ts": np.array(ts, dtype=np.float32),
        "weight_rows": u8(weight_rows[rows]), "pixel_rows": u8(pixel_rows[rows]),
        "layer_rows": u8(layer_rows), "test_images": u8(test[:8]), "test_recon": u8(rec_test[:8]),
        "row_is_failure": np.array([False] * (len(rows) - 1) + [True]),
        "nearest_weight": d_weight[rows].cpu().numpy(), "nearest_pixel": d_pixel[rows].cpu().numpy(),
    }
    return metrics, arrays


# ============================================================================ super-resolution data
BENCHMARK_SETS = ("Set5", "Set14", "B100")          # present here; Urban100 is absent, its rows stay quoted
TRAIN_SET = "BSD200"


def load_sr_data(data: str, data_dir, allow_standin: bool = False, train_limit: int = 0, test_limit: int = 0):
    """({set name: [uint8 HxWx3, ...]} for testing, [uint8 ...] for training, label of the data).

    'benchmarks': BSD200 (the 200 BSDS500 training images, the usual substitute for DIV2K) for
    training; Set5, Set14, B100 for testing. 'div2k': DIV2K and all four test sets (the document).
    A missing dataset raises DatasetMissingError naming it, unless `allow_standin` (never in the
    `full` profile), which falls back to scikit-image's photographs, labelled as a stand-in.
    """
    if data not in ("standin", "benchmarks", "div2k"):
        raise UnknownChoiceError("super-resolution data", data, ("standin", "benchmarks", "div2k"))
    if data != "standin":
        train_name, test_names = ("DIV2K", SR_TEST_SETS) if data == "div2k" else (TRAIN_SET, BENCHMARK_SETS)
        try:
            test = {name: load_sr_folder(data_dir, name, limit=test_limit) for name in test_names}
            train = load_sr_folder(data_dir, train_name, limit=train_limit)
        except DatasetMissingError:
            if not allow_standin:
                raise
        else:
            label = (f"{train_name} ({len(train)} training images"
                     + (", BSDS500 train: the usual substitute for DIV2K, which is absent" if data == "benchmarks"
                        else "") + "); test: " + ", ".join(f"{k} ({len(v)})" for k, v in test.items()))
            return test, train, label
    train = list(standin_photographs("train").values())
    test = {STANDIN_SET: list(standin_photographs("test").values())}
    return test, train, ("scikit-image's bundled photographs (train: 11, test: 4, disjoint), "
                         "a stand-in for the training set and the test sets (not comparable)")


class PatchSampler:
    """Random aligned (LR, HR) patch pairs, cropped from a list of whole images (no padding).

    The HR images are kept once (uint8, each at its own size); per scale, the benchmark
    protocol's LR image (`make_lr`: MATLAB bicubic of the mod-cropped HR, 8-bit) is made once.
    A batch draws an image index and a uniform top-left corner (in LR pixels) per patch, from
    the generator, then crops each pair. Every image must hold one LR patch at every scale.
    """

    def __init__(self, images_u8, scales, device):
        self.scales, self.device = tuple(scales), device
        self.hr = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).contiguous().to(device)
                   for im in images_u8]
        self.lr, self.lr_sizes = {}, {}
        for s in self.scales:
            lrs = [(make_lr(to_tensor01(im), s) * 255).round().to(torch.uint8).to(device) for im in images_u8]
            self.lr[s] = lrs
            self.lr_sizes[s] = torch.tensor([l.shape[-2:] for l in lrs], device=device)

    def sample(self, scale: int, batch: int, patch: int, g: torch.Generator):
        sizes_all = self.lr_sizes[scale]
        if int(sizes_all.min()) < patch:
            raise ValueError(f"an LR training image at x{scale} is smaller than the {patch}-pixel patch")
        n = torch.randint(len(sizes_all), (batch,), generator=g)
        sizes = sizes_all[n.to(sizes_all.device)].cpu()
        u = torch.rand(batch, 2, generator=g)
        pos = (u * (sizes - patch + 1).clamp(min=1)).long()            # top-left corner in LR pixels
        lrs, hrs = [], []
        for k, (y, x) in zip(n.tolist(), pos.tolist()):
            lrs.append(self.lr[scale][k][:, y:y + patch, x:x + patch])
            hrs.append(self.hr[k][:, y * scale:(y + patch) * scale, x * scale:(x + patch) * scale])
        return torch.stack(lrs).float() / 255.0, torch.stack(hrs).float() / 255.0


def _test_pairs(test_sets, scale, max_side, device):
    """Per test set: list of (index, HR [3,H,W], LR [3,h,w]): HR mod-cropped (after an optional centre crop
    to max_side), LR = `make_lr` (MATLAB bicubic, 8-bit), as the benchmarks' LR images are made."""
    out = {}
    for set_name, images in test_sets.items():
        pairs = []
        for k, im in enumerate(images):
            hr = to_tensor01(im, device)
            if max_side:
                h, w = hr.shape[-2:]
                top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
                hr = hr[:, top:top + max_side, left:left + max_side]
            hr = modcrop(hr, scale)
            pairs.append((k, hr, make_lr(hr, scale)))
        out[set_name] = pairs
    return out


# ============================================================================ hypernetwork SR
@dataclass(frozen=True)
class SRConfig:
    data: str                        # 'benchmarks' (BSD200 + Set5/Set14/B100), 'div2k' or 'standin'
    scales: tuple = (2, 3, 4)
    patch: int = 16                  # LR patch side seen by the hypernetwork
    hidden: tuple = (16, 32, 64, 32)
    hyper_channels: int = 32
    pool: int = 2
    kernel: int = 5
    steps: int = 1500
    batch_size: int = 16
    lr: float = 1e-3
    test_max_side: int = 0           # 0: whole test images; else a centre crop of that side
    test_limit: int = 0              # 0: every test image
    train_limit: int = 0             # 0: every training image
    test_sets: tuple = BENCHMARK_SETS    # which of the real test sets to evaluate (all with the stand-in)
    time_1024: bool = True           # also time a 256 -> 1024 render (skipped in smoke)
    allow_standin: bool = True       # False in `full`: a missing dataset is an error
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 2

    @classmethod
    def for_profile(cls, profile: str) -> "SRConfig":
        check_training_profile(profile)
        if profile == "smoke":
            return cls("benchmarks", hidden=(8, 16, 32, 16), hyper_channels=8, steps=24, batch_size=4,
                       test_max_side=48, test_limit=2, train_limit=4, time_1024=False)
        if profile == "reduced":     # sized for ~5 min on 2 cores (680 ms/step at the full size): very short
            return cls("benchmarks", pool=4, steps=200, batch_size=16, test_sets=("Set5",), time_1024=False)
        return cls("benchmarks", hidden=(32, 64, 128, 64), hyper_channels=64, pool=4, steps=300_000,
                   batch_size=16, patch=24, allow_standin=False)


@dataclass(frozen=True)
class SRCNNConfig:
    """SRCNN as published (Dong et al. 2016, 9-5-5, 64/32 filters, trained on 33x33 sub-images
    without padding: the loss sees only the centre that no padding reaches). Departures: Adam
    (published: SGD, rates 1e-4 / 1e-5 for the last layer, ~10^8 back-propagations) because
    our budgets are 10^3-10^5 steps; replicate 'same' padding at test time (as SRCNN's own
    MATLAB demo filters with 'same', 'replicate')."""
    data: str
    scales: tuple = (2, 3, 4)
    filters: tuple = (9, 5, 5)
    channels: tuple = (64, 32)
    sub_image: int = 33              # HR-side training sub-image (LR patch = ceil(33 / scale))
    steps_per_scale: int = 500
    batch_size: int = 16
    lr: float = 1e-3
    test_max_side: int = 0
    test_limit: int = 0
    train_limit: int = 0
    test_sets: tuple = BENCHMARK_SETS
    allow_standin: bool = True
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 2

    @classmethod
    def for_profile(cls, profile: str) -> "SRCNNConfig":
        check_training_profile(profile)
        if profile == "smoke":
            return cls("benchmarks", steps_per_scale=8, batch_size=4, test_max_side=48, test_limit=2, train_limit=4)
        if profile == "reduced":     # whole Set5 and Set14 (the bicubic check needs whole sets); B100 in `full`
            return cls("benchmarks", steps_per_scale=150, batch_size=16, test_sets=("Set5", "Set14"))
        return cls("benchmarks", steps_per_scale=200_000, batch_size=128, allow_standin=False)


def _relabel(source: str, test_sets) -> str:
    """The data label with the test sets actually evaluated (and their image counts)."""
    if "; test: " not in source:
        return source
    return source.split("; test: ")[0] + "; test: " + ", ".join(f"{k} ({len(v)})" for k, v in test_sets.items())


def _limit(test_sets, limit, names=None):
    """The first `limit` images (0: all) of the sets named in `names` (a stand-in set is always kept)."""
    keep = {k: v for k, v in test_sets.items() if names is None or k in names or k == STANDIN_SET}
    return {k: (v[:limit] if limit else v) for k, v in keep.items()}


def _score_table(rows):
    """rows of (method, set, scale, image, psnr, ssim) -> mean per (method, set, scale)."""
    table = {}
    for method, set_name, scale, _, p, s in rows:
        table.setdefault((method, set_name, scale), []).append((p, s))
    return [{"method": m, "set": st, "scale": sc, "psnr": float(np.mean([v[0] for v in vals])),
             "ssim": float(np.mean([v[1] for v in vals])), "images": len(vals)}
            for (m, st, sc), vals in sorted(table.items())]


def run_sr_hypernet(config: SRConfig, ctx):
    device = ctx.device
    seed_everything(config.seed)
    test_sets, train_images, source = load_sr_data(config.data, ctx.data_dir, config.allow_standin,
                                                   config.train_limit, config.test_limit)
    test_sets = _limit(test_sets, config.test_limit, config.test_sets)
    source = _relabel(source, test_sets)
    sampler = PatchSampler(train_images, config.scales, device)
    model = FunctionalImageModel(hidden=config.hidden, channels=3, use_alpha=True,
                                 hyper_channels=config.hyper_channels, kernel=config.kernel,
                                 pool=config.pool).to(device)

    def batch_fn(step):
        g = step_generator(config.seed, step)
        scale = config.scales[step % len(config.scales)]
        lr, hr = sampler.sample(scale, config.batch_size, config.patch, g)
        return lr.to(device), hr.to(device), scale

    def loss_fn(m, batch):
        lr, hr, scale = batch
        side = config.patch * scale
        out = m(lr, pixel_grid(side, side, device=lr.device), alpha=float(scale))
        return (out - hr.flatten(2).transpose(1, 2)).pow(2).mean()

    result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, device=device,
                 lr_schedule=lambda s: 0.1 if s >= 0.8 * config.steps else 1.0, precision=config.precision,
                 checkpoint=checkpoint_path(ctx.results_dir, CHAPTER, "sr_hypernet", config_hash(config)),
                 checkpoint_every=250, log_every=max(1, config.steps // 50), desc="sr_hypernet")
    model.eval()
    rows, figure = [], {}
    t_eval = time.perf_counter()
    for scale in config.scales:
        for set_name, pairs in _test_pairs(test_sets, scale, config.test_max_side, device).items():
            for k, hr, lr in pairs:
                bic = bicubic_upscale(lr, hr.shape[-2:])
                hyp = upscale(model, lr, scale, patch=config.patch)
                rows.append((BICUBIC_SUBSET, set_name, scale, k, psnr(hr, bic, scale), ssim(hr, bic, scale)))
                rows.append(("hypernetwork", set_name, scale, k, psnr(hr, hyp, scale), ssim(hr, hyp, scale)))
                if scale == 4 and k == 1 and not figure:     # F-F2: the second image of the first set
                    figure = {"f2_hr": hr, "f2_lr": lr, "f2_bicubic": bic, "f2_hypernetwork": hyp}
    eval_wall = time.perf_counter() - t_eval
    if not figure:
        _, hr, lr = _test_pairs(test_sets, 4, config.test_max_side, device)[next(iter(test_sets))][0]
        figure = {"f2_hr": hr, "f2_lr": lr, "f2_bicubic": bicubic_upscale(lr, hr.shape[-2:]),
                  "f2_hypernetwork": upscale(model, lr, 4, patch=config.patch)}
    # F-F3: resize to 2.5 x 1 (rows x2.5, columns x1), from the F-F2 low-resolution input
    f3_in = figure["f2_lr"]
    f3_out = upscale(model, f3_in, 2.5, 1.0, patch=config.patch)
    f3_bic = bicubic_upscale(f3_in, f3_out.shape[-2:])
    # speed: render a x4 up-scaled 256x256 image from a 64x64 input, and 1024x1024 from 256x256
    timing = {}
    for side in ((64, 256) if config.time_1024 else (64,)):
        probe = torch.rand(3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
        upscale(model, probe, 4, patch=config.patch)                    # warm-up
        times = []
        for _ in range(2 if side == 256 else 3):
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            upscale(model, probe, 4, patch=config.patch)
            if str(device).startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        timing[f"render_x4_{side * 4}px_s"] = float(min(times))
    u8 = lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()  # noqa: E731
    metrics = {
        "targets": ["F-F2", "F-F3", "F-T1", "F-T2"], "data_source": source,
        "throughput": round(result.items_per_s, 1), "train_wall_s": round(result.wall_s, 1),
        "eval_wall_s": round(eval_wall, 1), "steps": config.steps, "batch_size": config.batch_size,
        "throughput_unit": "training patches/s", "hyper_parameters": sum(p.numel() for p in model.parameters()),
        "target_weights_per_patch": sum(model.target.layer_sizes),
        "scores": _score_table(rows), "per_image": [list(r) for r in rows], **timing,
        "test_crop": config.test_max_side, "test_limit": config.test_limit,
        "f2_image": f"{next(iter(test_sets))} image {1 if len(next(iter(test_sets.values()))) > 1 else 0}",
    }
    arrays = {"loss_curve": np.array(result.losses, dtype=np.float32),
              **{k: u8(v) for k, v in figure.items()},
              "f3_in": u8(f3_in), "f3_out": u8(f3_out), "f3_bicubic": u8(f3_bic)}
    return metrics, arrays


# ============================================================================ SRCNN baseline
def srcnn_upscale(model: SRCNN, lr: torch.Tensor, size) -> torch.Tensor:
    """SRCNN on the luminance of the bicubic up-scale; chroma from bicubic. RGB [3, H, W] in [0, 1]."""
    bic = bicubic_upscale(lr, size)
    with torch.no_grad():
        y = model(rgb_to_y01(bic)[None])[0]
    return y01_to_gray_rgb(y, bic)


def srcnn_margin(config: SRCNNConfig) -> int:
    """Pixels on each side of a training sub-image that a padding-free SRCNN cannot predict."""
    return sum(f // 2 for f in config.filters)


def run_sr_srcnn(config: SRCNNConfig, ctx):
    device = ctx.device
    seed_everything(config.seed)
    test_sets, train_images, source = load_sr_data(config.data, ctx.data_dir, config.allow_standin,
                                                   config.train_limit, config.test_limit)
    test_sets = _limit(test_sets, config.test_limit, config.test_sets)
    source = _relabel(source, test_sets)
    sampler = PatchSampler(train_images, config.scales, device)
    margin = srcnn_margin(config)
    rows, throughputs, walls, curves = [], [], [], []
    for scale in config.scales:                          # one model per scale, as in SRCNN
        model = SRCNN(*config.filters, *config.channels).to(device)
        patch = -(-config.sub_image // scale)

        def batch_fn(step, scale=scale, patch=patch):
            g = step_generator(config.seed + scale, step)
            lr, hr = sampler.sample(scale, config.batch_size, patch, g)
            lr, hr = lr.to(device), hr.to(device)
            return rgb_to_y01(bicubic_upscale(lr, hr.shape[-2:])), rgb_to_y01(hr)

        def loss_fn(m, batch):
            x, y = batch                                 # loss on the centre only: no padding is seen
            return (m(x) - y)[..., margin:-margin, margin:-margin].pow(2).mean()

        result = fit(model, loss_fn, batch_fn, steps=config.steps_per_scale, lr=config.lr, device=device,
                     lr_schedule=lambda s: 0.1 if s >= 0.8 * config.steps_per_scale else 1.0,
                     precision=config.precision,
                     checkpoint=checkpoint_path(ctx.results_dir, CHAPTER, f"sr_srcnn_x{scale}", config_hash(config)),
                     checkpoint_every=250, log_every=max(1, config.steps_per_scale // 25), desc=f"srcnn x{scale}")
        model.eval()
        throughputs.append(result.items_per_s)
        walls.append(result.wall_s)
        curves.append(np.array(result.losses, dtype=np.float32))
        for set_name, pairs in _test_pairs(test_sets, scale, config.test_max_side, device).items():
            for k, hr, lr in pairs:
                bic = bicubic_upscale(lr, hr.shape[-2:])
                out = srcnn_upscale(model, lr, hr.shape[-2:])
                rows.append(("bicubic", set_name, scale, k, psnr(hr, bic, scale), ssim(hr, bic, scale)))
                rows.append(("SRCNN", set_name, scale, k, psnr(hr, out, scale), ssim(hr, out, scale)))
    metrics = {"targets": ["F-T1", "F-T2"], "data_source": source,
               "throughput": round(float(np.mean(throughputs)), 1), "throughput_unit": "training patches/s",
               "train_wall_s": round(float(sum(walls)), 1), "scores": _score_table(rows),
               "steps_per_scale": config.steps_per_scale, "batch_size": config.batch_size,
               "per_image": [list(r) for r in rows], "test_crop": config.test_max_side,
               "test_limit": config.test_limit,
               "srcnn": f"{'-'.join(map(str, config.filters))}, {config.channels[0]}/{config.channels[1]} filters"}
    arrays = {f"loss_curve_x{s}": c for s, c in zip(config.scales, curves)}
    return metrics, arrays


# ============================================================================ entry points
RUNNERS = {
    "faces": (FacesConfig.for_profile, run_faces),
    "sr_hypernet": (SRConfig.for_profile, run_sr_hypernet),
    "sr_srcnn": (SRCNNConfig.for_profile, run_sr_srcnn),
}


def run(ctx, experiment: str, overrides: dict | None = None):
    """Record (or load) one experiment of this chapter in `ctx`."""
    if experiment not in RUNNERS:
        raise UnknownChoiceError("functional-images experiment", experiment, RUNNERS)
    config_for, fn = RUNNERS[experiment]
    return ctx.run(experiment, config_for, fn, overrides)


# ============================================================================ tables (the chapter's)
BICUBIC_TOLERANCE_DB = 0.05
SET_SIZES = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}


def score_rows(records: dict) -> dict:
    """{(method, set, scale): score row} over the records' `scores` (one entry per set and scale)."""
    out = {}
    for rec in records.values():
        metrics = rec.metrics if hasattr(rec, "metrics") else rec
        for row in metrics["scores"]:
            out[(row["method"], row["set"], row["scale"])] = {**row, "whole_set": (
                not metrics.get("test_crop") and row["images"] == SET_SIZES.get(row["set"], -1))}
    return out


def comparison_frame(records: dict, metric: str = "psnr"):
    """Long table: every (set, scale, method) of ours beside the document's value and the difference.

    Rows for sets we do not have (Urban100) carry the document's value only ('quoted'); RDN is
    always quoted. A row of a stand-in set, a centre crop or part of a set is 'not comparable'.
    """
    import pandas as pd
    if metric not in ("psnr", "ssim"):
        raise UnknownChoiceError("metric", metric, ("psnr", "ssim"))
    doc = DOC_PSNR if metric == "psnr" else DOC_SSIM
    digits = 2 if metric == "psnr" else 4
    ours = score_rows(records)
    out = []
    for set_name in list(SR_TEST_SETS) + sorted({k[1] for k in ours} - set(SR_TEST_SETS)):
        for scale in (2, 3, 4):
            for j, method in enumerate(DOC_METHODS):
                mine = ours.get((method, set_name, scale))
                d = doc.get((set_name, scale), (None,) * 4)[j]
                if mine is None and d is None:
                    continue
                comparable = mine is not None and d is not None and mine["whole_set"]
                if mine is None:
                    status = "quoted (RDN not run)" if method.startswith("RDN") else "quoted (set absent here)"
                elif not comparable:
                    status = "not comparable (stand-in or part of the set)"
                else:
                    status = "ours vs document"
                out.append({"set": set_name, "scale": f"x{scale}", "method": method,
                            "ours": None if mine is None else round(mine[metric], digits),
                            "document": d, "difference": round(mine[metric] - d, digits) if comparable else None,
                            "images": None if mine is None else mine["images"], "status": status})
    return pd.DataFrame(out)


def gains(records: dict, metric: str = "psnr"):
    """Gain over bicubic of SRCNN and the hypernetwork, per (set, scale): ours beside the document's
    gain on the same set (None where the set is a stand-in or not measured whole)."""
    import pandas as pd
    doc = DOC_PSNR if metric == "psnr" else DOC_SSIM
    digits = 2 if metric == "psnr" else 4
    ours = score_rows(records)
    out = []
    for (method, set_name, scale), row in sorted(ours.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if method in ("bicubic", BICUBIC_SUBSET):
            continue
        base = ours.get((BICUBIC_SUBSET, set_name, scale)) if method == "hypernetwork" else None
        base = base or ours.get(("bicubic", set_name, scale))
        if base is None:
            continue
        mine = row[metric] - base[metric]
        d = doc.get((set_name, scale))
        comparable = d is not None and row["whole_set"] and base["whole_set"]
        doc_gain = d[DOC_METHODS.index(method)] - d[0] if d is not None else None
        out.append({"metric": metric.upper(), "set": set_name, "scale": f"x{scale}", "method": method,
                    "our gain over bicubic": round(mine, digits),
                    "document gain over bicubic": None if doc_gain is None else round(doc_gain, digits),
                    "difference": round(mine - doc_gain, digits) if comparable else None,
                    "comparable": comparable})
    return pd.DataFrame(out)


def bicubic_check(records: dict):
    """The evaluation's self-check: our bicubic PSNR on Set5 and Set14 against the document's."""
    import pandas as pd
    ours = score_rows(records)
    out = []
    for set_name in ("Set5", "Set14"):
        for scale in (2, 3, 4):
            mine = ours.get(("bicubic", set_name, scale))
            d = DOC_PSNR[(set_name, scale)][0]
            ok = mine is not None and mine["whole_set"]
            diff = round(mine["psnr"] - d, 3) if ok else None
            out.append({"set": set_name, "scale": f"x{scale}", "ours": None if mine is None else round(mine["psnr"], 3),
                        "document": d, "difference": diff,
                        "check": ("pass" if abs(diff) <= BICUBIC_TOLERANCE_DB else "FAIL") if ok
                        else "not comparable (set absent, cropped or partial)"})
    return pd.DataFrame(out)


def summary_scores(records: dict, method: str, metric: str = "psnr") -> str:
    """One line per set: 'Set5 x2 36.1 (document 36.09)' for one method, every (set, scale) recorded."""
    doc = DOC_PSNR if metric == "psnr" else DOC_SSIM
    digits = 2 if metric == "psnr" else 3
    j = DOC_METHODS.index(method)
    parts = []
    for (m, set_name, scale), row in sorted(score_rows(records).items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if m != method:
            continue
        d = doc.get((set_name, scale))
        ref = (f" (document {d[j]})" if d is not None and row["whole_set"] else " (not comparable)")
        parts.append(f"{set_name} x{scale} {row[metric]:.{digits}f}{ref}")
    return "; ".join(parts)


def findings(records: dict) -> str:
    """The chapter's closing prose (markdown), every number and every comparison computed from the records."""
    f, h, c = (records[k].metrics for k in ("faces", "sr_hypernet", "sr_srcnn"))
    out = []
    check = bicubic_check({k: records[k] for k in ("sr_hypernet", "sr_srcnn")})
    judged = check[check["difference"].notna()]
    if len(judged):
        passed = int((judged["check"] == "pass").sum())
        out.append(f"**Evaluation check.** Our bicubic PSNR is within {BICUBIC_TOLERANCE_DB} dB of the document's on "
                   f"{passed} of {len(judged)} Set5/Set14 rows (largest |difference| "
                   f"{judged['difference'].abs().max():.3f} dB), so the protocol (mod-crop, MATLAB bicubic, Y, border) "
                   + ("is the document's." if passed == len(judged) else "departs from the document's somewhere."))
    else:
        out.append("**Evaluation check.** Not made in this run: its test images are cropped, partial or stand-ins, "
                   "so no number below is comparable with the document's.")
    full = SRConfig.for_profile("full")
    steps = h.get("steps")
    share = f", {full.steps / steps:,.0f} times fewer than the full profile's {full.steps:,}" if steps else ""
    out.append(f"**Training length.** The SR hypernetwork ran {steps or '?'} steps of {h.get('batch_size', '?')} "
               f"patches ({h['train_wall_s']:.0f} s){share}, on {h['data_source']}. SRCNN ({c.get('srcnn', '9-5-5')}) ran "
               f"{c.get('steps_per_scale', '?')} steps of {c.get('batch_size', '?')} sub-images per scale; the "
               "published model saw about 10^8 back-propagations.")
    g = pd_gains = gains({k: records[k] for k in ("sr_hypernet", "sr_srcnn")}, "psnr")
    comp = g[g["comparable"]]
    for method in ("SRCNN", "hypernetwork"):
        part = comp[comp["method"] == method]
        if not len(part):
            continue
        above = int((part["our gain over bicubic"] > 0).sum())
        out.append(f"**{method} against bicubic** (PSNR, every measured (set, scale)): above bicubic on {above} of "
                   f"{len(part)}; mean gain {part['our gain over bicubic'].mean():+.2f} dB against the document's "
                   f"{part['document gain over bicubic'].mean():+.2f} dB on the same rows.")
    if not len(comp):
        out.append(f"**Super-resolution scores**: {len(pd_gains)} (set, scale, method) rows measured, none comparable "
                   "with the document's (stand-in, cropped or partial test sets).")
    closer = ("closer to" if f["nearest_face_rms_weight_interp"] < f["nearest_face_rms_pixel_interp"]
              else "farther from")
    out.append(f"**Faces** ({f['data_source']}; {f.get('steps', '?')} steps of {f.get('batch_size', '?')} faces, "
               + ("with random horizontal flips (our augmentation; the document states none)" if f.get("flip", True)
                  else "no flips") +
               f"): held-out faces are reconstructed at {f['test_psnr']:.1f} dB (training faces {f['train_psnr']:.1f} dB); "
               f"weight-space intermediates lie {closer} real faces than pixel blends "
               f"({f['nearest_face_rms_weight_interp']:.3f} against {f['nearest_face_rms_pixel_interp']:.3f} RMS); "
               f"pairwise weight and image distances correlate at {f['weight_pixel_distance_correlation']:.2f}. "
               "The stand-in faces are not comparable with the document's CelebA figures.")
    return "\n\n".join(out)


# ============================================================================ the chapter's figures and tables
SR_RUNS = ("sr_hypernet", "sr_srcnn")


def runs_table(records):
    from .. import tables
    return tables.runs_table(records)


def sr_model(config: "SRConfig"):
    """The super-resolution model of a config, seeded, in evaluation mode (for the architecture figures)."""
    torch.manual_seed(0)
    return FunctionalImageModel(hidden=config.hidden, channels=3, use_alpha=True, hyper_channels=config.hyper_channels,
                                kernel=config.kernel, pool=config.pool).eval()


def target_table(model, patch: int):
    """F-F4 as a table: every target-network layer of `model` bound to the weights generated for one random
    patch (8x8 query grid, alpha = 4), with its widths, operation, output shape and generated weights."""
    from ..models.functional_image import BoundTarget
    from ..plots import layer_table
    weights = model.weights(torch.rand(1, 3, patch, patch, generator=torch.Generator().manual_seed(0)))
    table = layer_table(BoundTarget(model.target, weights, alpha=4.0), pixel_grid(8, 8))
    table["generated weights"] = model.target.layer_sizes
    table["width"] = [f"{l.n_in} -> {l.n_out}" for l in model.target.layers]
    table["operation"] = ["cos(norm(W x))" + (" + skip" if l.residual else "") if l.kind == "hidden"
                          else "sigmoid(W x + b)" for l in model.target.layers]
    return table[["layer", "width", "operation", "output shape", "generated weights"]]


def target_figure(table):
    """F-F4: the target network as a block diagram ('params' = weights generated per image)."""
    from ..plots import draw_layer_diagram
    diagram = table.rename(columns={"operation": "type", "generated weights": "parameters"})
    return draw_layer_diagram(diagram[["layer", "type", "output shape", "parameters"]]).figure


def hyper_layers(model, patch: int):
    from ..plots import layer_table
    return layer_table(model.hyper, torch.rand(2, 3, patch, patch, generator=torch.Generator().manual_seed(0)))


def hyper_path_table(model, layers):
    """F-F5 as a table: the convolutions, pooling and head on one path (trunk, then branch 0), with kernels."""
    import pandas as pd
    convs = layers[layers["type"].isin(["Conv2d", "Linear", "AdaptiveAvgPool2d"])].reset_index(drop=True)
    kernels = {n: "x".join(map(str, m.kernel_size)) for n, m in model.hyper.named_modules()
               if isinstance(m, torch.nn.Conv2d)}
    convs["kernel"] = [kernels.get(n, "") for n in convs["layer"]]
    path = pd.concat([convs[convs["layer"].str.startswith("trunk")],
                      convs[convs["layer"].str.startswith("branches.0.")]])
    return path[["layer", "type", "kernel", "output shape", "parameters"]]


def hyper_figure(model, layers):
    """F-F5: the shared trunk (left) and the branches, one per target layer (right), as block diagrams."""
    import matplotlib.pyplot as plt
    from ..plots import draw_layer_diagram
    keep = ["Conv2d", "AdaptiveAvgPool2d", "Linear"]          # each Conv2d is followed by BatchNorm2d and ReLU
    n = len(model.hyper.branches)
    fig = plt.figure(figsize=(10, 2.0 * n), layout="constrained")
    grid = fig.add_gridspec(n, 2)
    part = layers[layers["layer"].str.startswith("trunk") & layers["type"].isin(keep)].reset_index(drop=True)
    draw_layer_diagram(part, fig.add_subplot(grid[:, 0]), "shared trunk (trunk.2 = the residual pair)",
                       highlight={"trunk.2.row.0": "#f6d7a7", "trunk.2.col.0": "#f6d7a7"})
    for k in range(n):
        part = layers[layers["layer"].str.startswith(f"branches.{k}.") & layers["type"].isin(keep)]
        part = part.reset_index(drop=True).assign(layer=lambda t: t["layer"].str.replace(f"branches.{k}.", "",
                                                                                        regex=False))
        draw_layer_diagram(part, fig.add_subplot(grid[k, 1]), f"branch {k}: weights of target layer {k + 1}")
    return fig


def interpolation_figure(rec, key: str, labels, rows=None):
    """Rows of a faces record's interpolation array (`weight_rows`, `pixel_rows`, `layer_rows`), t = 0 .. 1."""
    from ..plots import image_grid
    g = rec.arrays[key][:, :, 0] if rows is None else rows
    ts = rec.arrays["ts"]
    return image_grid(g.reshape(-1, *g.shape[-2:]), g.shape[0], len(ts), vmin=0, vmax=255, scale=0.9,
                      row_labels=labels, col_labels=[f"t={t:.2f}" for t in ts])


def weights_vs_pixels_figure(rec):
    """F-F1: the first pair, interpolated in weight space (upper row) and in pixel space (lower row)."""
    rows = np.concatenate([rec.arrays["weight_rows"][:1], rec.arrays["pixel_rows"][:1]])[:, :, 0]
    return interpolation_figure(rec, "", ["weights", "pixels"], rows)


def pair_labels(rec) -> list[str]:
    n = len(rec.arrays["weight_rows"])
    return [f"pair {k + 1}" for k in range(n - 1)] + ["failure row"]


def interpolation_table(rec):
    """The numbers under F-F6: endpoint check, distances to real faces, weight-pixel correlation, PSNR."""
    import pandas as pd
    from .. import tables
    m = rec.metrics
    frame = pd.DataFrame([
        {"quantity": "max |render(interp(t=0)) - render(w_a)|, same at t=1", "ours": m["endpoint_max_abs_diff"],
         "document": "exact by construction"},
        {"quantity": "RMS distance of intermediate images to the nearest real face, weight interpolation",
         "ours": m["nearest_face_rms_weight_interp"], "document": "not measured (visual claim)"},
        {"quantity": "the same, pixel interpolation", "ours": m["nearest_face_rms_pixel_interp"],
         "document": "not measured"},
        {"quantity": "correlation of pairwise weight and pixel distances (held-out faces)",
         "ours": m["weight_pixel_distance_correlation"], "document": "claimed positive ('similar images, similar weights')"},
        {"quantity": "reconstruction PSNR, held-out faces (dB)", "ours": m["test_psnr"], "document": "not reported"},
        {"quantity": "reconstruction PSNR, training faces (dB)", "ours": m["train_psnr"], "document": "not reported"},
    ])
    return tables.show(frame, digits=3, caption=tables.caption(rec))


def sr_example_figure(rec):
    """F-F2: bicubic x4, the hypernetwork's x4, the low-resolution input and the original."""
    import matplotlib.pyplot as plt
    S = rec.arrays
    fig, axes = plt.subplots(2, 2, figsize=(8, 8), layout="constrained")
    for ax, (name, img) in zip(axes.flat, [("bicubic x4", S["f2_bicubic"]), ("hypernetwork x4", S["f2_hypernetwork"]),
                                           ("low-resolution input", S["f2_lr"]), ("original", S["f2_hr"])]):
        ax.imshow(np.moveaxis(img, 0, -1), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    return fig


def resize_figure(rec):
    """F-F3: the low-resolution input rendered on a 2.5 x 1 grid, by the hypernetwork and by bicubic."""
    import matplotlib.pyplot as plt
    S = rec.arrays
    fig, axes = plt.subplots(1, 3, figsize=(10, 5), layout="constrained")
    for ax, (name, img) in zip(axes, [("input", S["f3_in"]), ("hypernetwork 2.5 x 1", S["f3_out"]),
                                      ("bicubic 2.5 x 1", S["f3_bicubic"])]):
        ax.imshow(np.moveaxis(img, 0, -1), interpolation="nearest", aspect="equal")
        ax.set_title(f"{name}, {img.shape[1]}x{img.shape[2]}", fontsize=9)
        ax.axis("off")
    return fig


def document_table(metric: str = "psnr"):
    """The document's Table 1 (PSNR) or 2 (SSIM) as printed, RDN quoted."""
    import pandas as pd
    from .. import tables
    values = DOC_PSNR if metric == "psnr" else DOC_SSIM
    methods = [m.replace(" (quoted)", ", quoted") for m in DOC_METHODS]
    frame = pd.DataFrame([{"set": s, "scale": f"x{k}", **dict(zip(methods, v))} for (s, k), v in values.items()])
    return tables.show(frame, units={m: "dB" for m in methods} if metric == "psnr" else None,
                       caption=f"the document's table {1 if metric == 'psnr' else 2}, as printed")


def _sr(records):
    return {k: records[k] for k in SR_RUNS}


def bicubic_check_table(records):
    from .. import tables
    return tables.show(bicubic_check(_sr(records)), units={"ours": "dB", "document": "dB", "difference": "dB"},
                       caption=tables.caption(records["sr_hypernet"], "bicubic on the hypernetwork run's test images"))


def scores_table(records):
    """Every (set, scale, method) of ours beside the document's, PSNR (dB) then SSIM."""
    import pandas as pd
    from .. import tables
    frame = pd.concat([comparison_frame(_sr(records), "psnr").assign(metric="PSNR (dB)"),
                       comparison_frame(_sr(records), "ssim").assign(metric="SSIM")]).reset_index(drop=True)
    return tables.show(frame[["metric"] + [c for c in frame.columns if c != "metric"]],
                       caption=tables.caption(list(_sr(records).values())))


def gains_table(records):
    """Each method's gain over bicubic, per (set, scale), beside the document's gain on the same set."""
    import pandas as pd
    from .. import tables
    frame = pd.concat([gains(_sr(records), "psnr"), gains(_sr(records), "ssim")]).reset_index(drop=True)
    return tables.show(frame, caption=tables.caption(list(_sr(records).values())))


def speed_table(records):
    """Training throughput and render times from the records; bicubic and SRCNN timed when the page is built."""
    import pandas as pd
    from .. import tables
    from ..bench import best_time
    rs = records["sr_hypernet"]
    rows = [{"what": "hypernetwork training (sr_hypernet)", "value": rs.metrics["throughput"], "unit": "patches/s",
             "run": tables.run_label(rs)},
            {"what": "SRCNN training (sr_srcnn)", "value": records["sr_srcnn"].metrics["throughput"],
             "unit": "patches/s", "run": tables.run_label(records["sr_srcnn"])},
            {"what": "hypernetwork training on faces", "value": records["faces"].metrics["throughput"],
             "unit": "images/s", "run": tables.run_label(records["faces"])},
            {"what": "hypernetwork render x4: 64x64 -> 256x256", "value": rs.metrics["render_x4_256px_s"], "unit": "s",
             "run": tables.run_label(rs)}]
    if "render_x4_1024px_s" in rs.metrics:
        rows.append({"what": "hypernetwork render x4: 256x256 -> 1024x1024", "value": rs.metrics["render_x4_1024px_s"],
                     "unit": "s", "run": tables.run_label(rs)})
    probe = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    srcnn = SRCNN().eval()
    with torch.no_grad():
        for name, fn in (("bicubic", lambda: bicubic_upscale(probe, (256, 256))),
                         ("SRCNN (untrained weights: the time does not depend on them)",
                          lambda: srcnn_upscale(srcnn, probe, (256, 256)))):
            rows.append({"what": f"{name} x4: 64x64 -> 256x256", "value": best_time(fn, repeat=3), "unit": "s",
                         "run": "timed when this page was built"})
    return tables.show(pd.DataFrame(rows), digits=3,
                       caption=tables.caption(records) + "; " + tables.here("timed rows: measured when this page was built"))


def summary_table(records):
    """Each target, our number beside the document's claim."""
    import pandas as pd
    from .. import tables
    f, fr, hr = records["faces"].metrics, records["faces"], records["sr_hypernet"]
    face, sr = tables.run_label(fr), tables.run_label(hr)
    frame = pd.DataFrame([
        {"target": "F-F1", "document": "weight interpolation looks natural, pixel interpolation superimposes",
         "ours": f"figure; held-out reconstruction {f['test_psnr']:.1f} dB", "run": face},
        {"target": "F-F2", "document": "x4: hypernetwork visibly sharper than bicubic", "ours": "figure", "run": sr},
        {"target": "F-F3", "document": "2.5 x 1 resize", "ours": "figure (any scale renders)", "run": sr},
        {"target": "F-F4", "document": "5 FC layers, up then down, BN, cos, residual, sigmoid",
         "ours": "diagram from the model", "run": tables.CODE},
        {"target": "F-F5", "document": "8 conv layers, 1 residual, 1xn/nx1, branch per layer",
         "ours": "diagram from the model", "run": tables.CODE},
        {"target": "F-F6", "document": "4 good rows + 1 failure row; pixel rows superimpose",
         "ours": f"figure; weight-pixel distance correlation {f['weight_pixel_distance_correlation']:.2f}", "run": face},
        {"target": "F-F7", "document": "row i interpolates first i layers", "ours": "figure", "run": face},
        {"target": "F-T1 (hypernetwork, PSNR)", "document": "see the tables above",
         "ours": summary_scores(_sr(records), "hypernetwork"), "run": sr},
        {"target": "F-T1 (SRCNN 9-5-5, Adam, PSNR)", "document": "see the tables above",
         "ours": summary_scores(_sr(records), "SRCNN"), "run": tables.run_label(records["sr_srcnn"])},
        {"target": "F-T2 (hypernetwork, SSIM)", "document": "see the tables above",
         "ours": summary_scores(_sr(records), "hypernetwork", "ssim"), "run": sr},
    ])
    return tables.show(frame, caption=tables.caption(records))

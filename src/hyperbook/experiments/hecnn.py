"""HE-CNN experiments: MNIST / R-MNIST / 90-MNIST classification (Tables 1, 2, 5, 6, appendix B.1), generated
filters (Figures 5, 7), and the speed of per-sample filters.

Data. MNIST (real, from the foundation's loader). R-MNIST is MNIST with every
image turned by its own angle drawn uniformly from [0, 360) degrees (bilinear,
background 0, seeds fixed: training set seed 1, test set seed 2); 90-MNIST is
the test set turned by exactly 90 degrees counter-clockwise. Both have 60k / 10k
images, like the document's. Pixels are scaled to [-1, 1].

Parameter mode. Hypernetwork models are trained and tested with parameters
averaged over the batch (the document's choice, appendix C.2) unless a config
says 'sample'. Test batches keep a fixed order, so each 90-MNIST batch is the
exact turn of the matching MNIST batch and the models' invariance carries over
to accuracy.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..profiles import unknown_training_profile
from ..data.mnist import load_mnist, to_signed
from ..data.transforms import rotate
from ..errors import UnknownChoiceError
from ..layers.group_ops import rot
from ..models.hecnn import D4nHECNN, HyperCNN, StaticNet, build, count_parameters
from ..results import config_hash
from ..train import checkpoint_path, fit, seed_everything, step_generator

CHAPTER = "hecnn"
TEST_SETS = ("MNIST", "R-MNIST", "90-MNIST")
HYPER_LR_SMALL = 2e-4      # C.3: 0.001 for CNN and Z4-CNN, 0.0002 for HE-CNN
STATIC_LR = 1e-3
REGULAR_LR = 7.5e-5        # C.3, second experiment: the rate for HE-CNN's hypernetwork models
# E-T2's CNN and P4-CNN baselines: the document gives 7.5e-5 for its hypernetworks only. They are ordinary
# networks (Cohen & Welling's Z2CNN / P4CNN shapes), so they get Adam at 1e-3, the rate C.3 gives the document's
# own plain baselines (CNN, Z4-CNN) and Adam's usual default.
BASELINE_REGULAR_LR = 1e-3

# experiment -> (model, training set, targets)
RUNS = {
    "t1_cnn_mnist": ("cnn", "mnist", ["E-T1", "E-F1"]),
    "t1_z4cnn_mnist": ("z4cnn", "mnist", ["E-T1", "E-F1"]),
    "t1_hecnn_l_mnist": ("hecnn_l", "mnist", ["E-T1", "E-F1"]),
    "t1_cnn_rmnist": ("cnn", "rmnist", ["E-T1", "E-F1"]),
    "t1_z4cnn_rmnist": ("z4cnn", "rmnist", ["E-T1", "E-F1", "E-T5"]),
    "t1_hecnn_l_rmnist": ("hecnn_l", "rmnist", ["E-T1", "E-F1", "E-T5"]),
    "t5_dynamic_z4cnn_rmnist": ("dynamic_z4cnn", "rmnist", ["E-T5"]),
    "b1_rotation_loss_mnist": ("dynamic_cnn", "mnist", ["E-B1"]),
    "t2_cnn_regular": ("cnn_regular", "rmnist", ["E-T2"]),
    "t2_p4cnn_regular": ("p4cnn_regular", "rmnist", ["E-T2"]),
    "t2_hecnn_regular": ("hecnn_regular", "rmnist", ["E-T2", "E-T6"]),
    "t2_hecnn_l_regular": ("hecnn_l_regular", "rmnist", ["E-T2", "E-T6"]),
    "t2_d8_hecnn_l_regular": ("d8_hecnn_l_regular", "rmnist", ["E-T2"]),
    "t2_d16_hecnn_l_regular": ("d16_hecnn_l_regular", "rmnist", ["E-T2"]),
    "t6_hecnn_n_regular": ("hecnn_n_regular", "rmnist", ["E-T6"]),
}
SMALL_RUNS = [k for k in RUNS if not k.startswith(("t2", "t6"))]
REGULAR_RUNS = [k for k in RUNS if k.startswith(("t2", "t6"))]


@dataclass(frozen=True)
class TrainConfig:
    model: str
    train_set: str            # 'mnist' | 'rmnist'
    steps: int
    batch_size: int
    lr: float
    param_mode: str = "batch"
    n_test: int = 10_000      # images per test set (first n of the 10k)
    rotation_loss: float = 0.0   # weight of appendix B.1's rotation loss (dynamic_cnn only)
    seed: int = 0
    code_version: int = 2     # 2: He-scale generated filters, baseline rates, test batches of the training size


def _lr(model: str) -> float:
    if model in ("cnn_regular", "p4cnn_regular"):
        return BASELINE_REGULAR_LR
    if model.endswith("regular"):
        return REGULAR_LR
    return STATIC_LR if model in ("cnn", "z4cnn") else HYPER_LR_SMALL


def config_for(experiment: str):
    if experiment not in RUNS:
        raise UnknownChoiceError("HE-CNN experiment", experiment, RUNS)
    model, train_set, _ = RUNS[experiment]
    regular = experiment in REGULAR_RUNS
    rot_loss = 1.0 if experiment.startswith("b1") else 0.0

    def make(profile: str) -> TrainConfig:
        if profile == "smoke":
            return TrainConfig(model, train_set, steps=6 if regular else 12, batch_size=8, lr=_lr(model),
                               n_test=64, rotation_loss=rot_loss)
        if profile == "reduced":   # a fraction of one epoch at the document's batch size, on 2 CPU cores
            return TrainConfig(model, train_set, steps=300 if regular else 900, batch_size=32, lr=_lr(model),
                               n_test=1000 if regular else 2000, rotation_loss=rot_loss)
        if profile == "full":      # C.3: batch 32; the document trains 150-250+ epochs before accuracy rises
            epochs = 250
            return TrainConfig(model, train_set, steps=epochs * 60_000 // 32, batch_size=32, lr=_lr(model),
                               n_test=10_000, rotation_loss=rot_loss)
        raise unknown_training_profile(profile)
    return make


# ----------------------------------------------------------------------------- data
def rmnist_angles(n: int, seed: int) -> torch.Tensor:
    """The angle of every image of an R-MNIST split: uniform in [0, 360) degrees, fixed by the seed."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 360.0


def turn_u8(images_u8: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Turn uint8 images [N, 28, 28] by their angles (bilinear, background 0), rounded back to uint8."""
    x = images_u8.float().unsqueeze(1)
    return rotate(x, angles.to(x.device), fill=0.0).round().clamp(0, 255).to(torch.uint8)[:, 0]


def rotated_mnist(images_u8: torch.Tensor, seed: int, chunk: int = 10_000, count: int | None = None):
    """R-MNIST: each image turned by its own uniform angle in [0, 360) (bilinear, background 0), as uint8.

    Angles are drawn for all N images, so the first `count` images are the same whatever `count` is."""
    angles = rmnist_angles(images_u8.shape[0], seed)
    count = images_u8.shape[0] if count is None else count
    out = torch.empty_like(images_u8[:count])
    for s in range(0, count, chunk):
        e = min(count, s + chunk)
        out[s:e] = turn_u8(images_u8[s:e], angles[s:e])
    return out, angles[:count]


RMNIST_TRAIN_SEED, RMNIST_TEST_SEED = 1, 2


def datasets(data_dir, device="cpu", n_test: int = 10_000):
    """Training sets {'mnist': (x, y, None), 'rmnist': (x, y, angles)} (R-MNIST training images are turned when a
    batch is drawn, which gives the same images as turning all 60k first) and test sets {name: (x, y)}, uint8."""
    tr_x, tr_y = load_mnist(data_dir, train=True, device=device)
    all_te_x, all_te_y = load_mnist(data_dir, train=False, device=device)
    te_x, te_y = all_te_x[:n_test], all_te_y[:n_test]
    train = {"mnist": (tr_x, tr_y, None), "rmnist": (tr_x, tr_y, rmnist_angles(tr_x.shape[0], RMNIST_TRAIN_SEED))}
    test = {"MNIST": (te_x, te_y),
            "R-MNIST": (rotated_mnist(all_te_x, RMNIST_TEST_SEED, count=n_test)[0], te_y),
            "90-MNIST": (rot(te_x, 1), te_y)}
    return train, test


_DATA_CACHE: dict = {}


def _cached_datasets(data_dir, device, n_test):
    key = (str(data_dir), str(device), n_test)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = datasets(data_dir, device, n_test)
    return _DATA_CACHE[key]


# ----------------------------------------------------------------------------- training and testing
def forward(model, x, mode):
    return model(x, mode) if isinstance(model, (HyperCNN, D4nHECNN, StaticNet)) else model(x)


def rotation_loss(model: HyperCNN, x: torch.Tensor, mode: str) -> torch.Tensor:
    """Appendix B.1: generated filters of the input turned by g+1 should be the filters of the input turned by g,
    turned once: mean over g of MSE(w((g+1)x), rot w(gx)), over the convolutional layers."""
    gens = [model.generate(rot(x, g), mode) for g in range(4)]
    terms = []
    for g in range(4):
        for (w0, _), (w1, _), (kind, *_r) in zip(gens[g], gens[(g + 1) % 4], model.layout):
            if kind == "conv":
                terms.append(F.mse_loss(w1, rot(w0, 1)))
    return torch.stack(terms).mean()


def eval_batch_size(config) -> int:
    """Test batches have the training batch size: with batch-averaged parameters a prediction depends on the
    other images of its batch, so testing in larger batches than the model was trained with would test a
    different (and transductive) model. Per-sample models give the same answer at any batch size."""
    return config.batch_size


@torch.no_grad()
def accuracy(model, images_u8, labels, mode: str, batch: int, prepare=to_signed) -> float:
    """Test accuracy in %, in fixed batch order of `batch` images (use `eval_batch_size(config)`);
    prepare(uint8 batch) -> model input (MNIST: scaled to [-1, 1])."""
    model.eval()
    correct = 0
    for s in range(0, images_u8.shape[0], batch):
        logits = forward(model, prepare(images_u8[s:s + batch]), mode)
        correct += (logits.argmax(1) == labels[s:s + batch]).sum().item()
    return 100.0 * correct / images_u8.shape[0]


def equivariance_difference(acc_mnist: float, acc_90: float) -> float:
    """The document's measure: |difference| / sum of the MNIST and 90-MNIST accuracies, in percent."""
    total = acc_mnist + acc_90
    return 100.0 * abs(acc_mnist - acc_90) / total if total else 0.0


def train_experiment(experiment: str):
    """fn(config, ctx) for ctx.run: train one model and test it on the three test sets."""
    targets = RUNS[experiment][2]

    def fn(config: TrainConfig, ctx):
        seed_everything(config.seed)
        device = ctx.device
        train, test = _cached_datasets(ctx.data_dir, device, config.n_test)
        tr_x, tr_y, tr_angles = train[config.train_set]
        model = build(config.model).to(device)
        mode = config.param_mode
        n = tr_x.shape[0]

        def batch_fn(step):
            g = step_generator(config.seed, step)
            idx = torch.randint(n, (config.batch_size,), generator=g).to(device)
            images = tr_x[idx] if tr_angles is None else turn_u8(tr_x[idx], tr_angles[idx.cpu()])
            return to_signed(images), tr_y[idx], step

        def loss_fn(m, batch):
            x, y, step = batch
            if isinstance(m, D4nHECNN):      # C.3: Z4 alone for the first half, then the D4n average
                m.average = step >= config.steps // 2
            loss = F.cross_entropy(forward(m, x, mode), y)
            if config.rotation_loss:
                loss = loss + config.rotation_loss * rotation_loss(m, x, mode)
            return loss

        ckpt = checkpoint_path(ctx.results_dir, CHAPTER, experiment, config_hash(config))
        result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, device=device,
                     checkpoint=ckpt, checkpoint_every=500, log_every=max(1, config.steps // 40),
                     desc=experiment, progress=False)
        if isinstance(model, D4nHECNN):
            model.average = True
        accs = {name: accuracy(model, x, y, mode, eval_batch_size(config)) for name, (x, y) in test.items()}
        accs["Average"] = float(np.mean([accs[t] for t in TEST_SETS]))
        metrics = {"targets": targets, "accuracy": accs,
                   "equivariance_difference": equivariance_difference(accs["MNIST"], accs["90-MNIST"]),
                   "parameters": count_parameters(model), "throughput": result.items_per_s,
                   "train_wall_s": result.wall_s, "steps": config.steps,
                   "epochs": config.steps * config.batch_size / n, "final_loss": result.losses[-1][1],
                   "test_batch": eval_batch_size(config), "lr": config.lr}
        arrays = {"loss_curve": np.array(result.losses, dtype=np.float64)}
        return metrics, arrays
    return fn


# ----------------------------------------------------------------------------- generated filters (E-F5, E-F7)
@dataclass(frozen=True)
class FilterConfig:
    image_index: int = 0      # which MNIST test image
    seed: int = 0
    code_version: int = 3     # 3: E-F7 on the regular network (flattened generator), threshold from random filters


def filters_config_for(profile: str) -> FilterConfig:
    if profile not in ("smoke", "reduced", "full"):
        raise unknown_training_profile(profile)
    return FilterConfig()


FIG7_LAYERS = (1, 3, 7)       # the document's "0-th, 3-rd, 7-th layer" read as the 1st, 3rd and 7th convolution
COLLAPSE_TOL = 1e-5           # an exactly symmetric filter: asymmetry at float32 rounding
NONCOLLAPSE_FRACTION = 0.25   # "does not collapse": at least a quarter of the asymmetry of random filters


def asymmetry(w: torch.Tensor) -> float:
    """||rot(w) - w|| / ||w|| over a layer's filters [O, C, k, k]: 0 for filters equal to their quarter turn,
    about 1.3-1.4 for independent random entries (k = 3: 1.33, k = 2: 1.41)."""
    return float((rot(w, 1) - w).norm() / w.norm().clamp_min(1e-30))


def random_asymmetry(shape, seed: int = 0) -> float:
    """The asymmetry of He-initialised random filters of this shape (the reference for "not collapsed")."""
    g = torch.Generator().manual_seed(seed)
    return asymmetry(torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:])))


def filters_experiment(config: FilterConfig, ctx):
    """Filters generated for an MNIST digit x and for x turned by 90 degrees (regular HE-CNN-L, layers 3 and 7),
    the MSE after turning the second set back (Figure 5); Figure 7's comparison of a non-equivariant and an
    equivariant NEP generator on the regular network (layers FIG7_LAYERS), and the asymmetry of the light
    models' filters, whose generators pool globally (a budget choice, see `GENERATOR_READING`).

    The models are at initialisation (He-scale heads, calibrated on the digit): the properties are structural.
    Verdict of E-F7: the equivariant generator's filters are symmetric to COLLAPSE_TOL, and every layer of the
    non-equivariant one keeps at least NONCOLLAPSE_FRACTION of the asymmetry of random He filters."""
    from ..models.hecnn import GENERATOR_READING
    seed_everything(config.seed)
    x_u8, _ = load_mnist(ctx.data_dir, train=False)
    x = to_signed(x_u8[config.image_index:config.image_index + 1])
    xr = rot(x, 1)
    arrays, metrics = {"image": x[0, 0].numpy(), "image_turned": xr[0, 0].numpy()}, {"targets": ["E-F5", "E-F7"]}

    def ready(name):
        m = build(name)
        m.calibrate(x)
        return m.eval()

    with torch.no_grad():
        model = ready("hecnn_l_regular")
        p0, p1 = model.generate(x), model.generate(xr)
        conv_idx = [i for i, (kind, *_r) in enumerate(model.layout) if kind == "conv"]
        mses = {}
        for layer in (3, 7):                      # the document's 3rd and 7th layer, counted from 1
            i = conv_idx[layer - 1]
            w0, w1 = p0[i][0][0], p1[i][0][0]    # [O, C, k, k] of the single image
            mses[layer] = float(((rot(w1, -1) - w0) ** 2).mean())
            arrays[f"layer{layer}_x"] = w0[:4, 0].numpy()
            arrays[f"layer{layer}_turned"] = w1[:4, 0].numpy()
        metrics["mse_turned_back"] = {str(k): v for k, v in mses.items()}
        metrics["mse_max_all_conv_layers"] = max(float(((rot(p1[i][0][0], -1) - p0[i][0][0]) ** 2).mean())
                                                 for i in conv_idx)
        # Figure 7 on the regular network: non-equivariant (flattened, as C.3) vs equivariant generator
        ref, asym = {}, {}
        for name in ("hecnn_regular", "hecnn_regular_eqgen"):
            m = ready(name)
            params = m.generate(x)
            idx = [i for i, (kind, *_r) in enumerate(m.layout) if kind == "conv"]
            asym[name] = {}
            for layer in FIG7_LAYERS:
                w = params[idx[layer - 1]][0][0]
                asym[name][str(layer)] = asymmetry(w)
                ref[str(layer)] = random_asymmetry(tuple(w.shape))
                arrays[f"fig7_{name}_layer{layer}"] = w[:2, 0].numpy()     # output channels 0 and 1, input 0
        metrics["fig7_layers"] = list(FIG7_LAYERS)
        metrics["asymmetry_random_he"] = ref
        metrics["asymmetry_regular_flattened"] = asym["hecnn_regular"]
        metrics["asymmetry_regular_equivariant_generator"] = asym["hecnn_regular_eqgen"]
        # the light models actually trained (pooled generators): how close their filters are to collapse
        light = {}
        for name in ("hecnn_l", "hecnn_l_regular"):
            m = ready(name)
            params = m.generate(x)
            light[name] = {"generator": GENERATOR_READING[name],
                           "asymmetry": [asymmetry(params[i][0][0]) for i, (kind, *_r) in enumerate(m.layout)
                                         if kind == "conv" and m.main.param_layers[i][2]["k"] > 1]}
        metrics["asymmetry_light_models"] = light
        m = ready("hecnn_l_eqgen")
        metrics["asymmetry_hecnn_l_eqgen"] = [asymmetry(m.generate(x)[i][0][0]) for i, (kind, *_r)
                                              in enumerate(m.layout) if kind == "conv"
                                              and m.main.param_layers[i][2]["k"] > 1]
    v = fig7_verdict(asym["hecnn_regular_eqgen"], asym["hecnn_regular"], ref)
    metrics["noncollapse_threshold"] = v["threshold"]
    metrics["fig7_collapsed_equivariant"], metrics["fig7_not_collapsed_flattened"] = v["collapsed"], v["not_collapsed"]
    metrics["verdicts"] = {"E-F5": "matches" if metrics["mse_max_all_conv_layers"] < 1e-6 else "diverges",
                           "E-F7": v["verdict"]}
    return metrics, arrays


def fig7_verdict(asym_equivariant: dict, asym_plain: dict, asym_random: dict) -> dict:
    """E-F7's verdict from per-layer asymmetries: the equivariant generator's filters collapse (below
    COLLAPSE_TOL) and the non-equivariant one's keep, in every layer, more than NONCOLLAPSE_FRACTION of the
    asymmetry of random He filters of the same shape (the asymmetry of filters with no relation to their turns)."""
    threshold = {k: NONCOLLAPSE_FRACTION * r for k, r in asym_random.items()}
    collapsed = max(asym_equivariant.values()) < COLLAPSE_TOL
    not_collapsed = all(asym_plain[k] > threshold[k] for k in threshold)
    return {"threshold": threshold, "collapsed": collapsed, "not_collapsed": not_collapsed,
            "verdict": "matches" if collapsed and not_collapsed else "diverges"}


# ----------------------------------------------------------------------------- drawings from the code (E-F3, E-F4)
def combiner_demo(k: int = 4):
    """Four labelled pieces and the filter the combiner assembles from them (pieces hold 10 g + position)."""
    from ..layers.group_ops import assemble_filter, piece_size
    p = piece_size(k)
    pieces = torch.stack([10.0 * g + torch.arange(1, p * p + 1, dtype=torch.float32).reshape(p, p) for g in range(4)])
    return pieces, assemble_filter(pieces, k)


def linear_demo(d: int = 4):
    """The orbits of a flattened d x d map under a quarter turn and where the combiner puts each column c_g."""
    from ..layers.group_ops import linear_orbits, linear_placement
    return linear_orbits(d), linear_placement(d)


# ----------------------------------------------------------------------------- chapter helpers
def run(ctx, name: str):
    """Record (or load) one training experiment of RUNS."""
    return ctx.run(name, config_for(name), train_experiment(name))


def run_filters(ctx):
    return ctx.run("filters", filters_config_for, filters_experiment)


CHECKED_MODELS = ("cnn", "z4cnn", "hecnn_l", "dynamic_z4cnn", "dynamic_cnn", "hecnn_l_eqgen", "p4cnn_regular",
                  "hecnn_l_regular")


def _band(err: float) -> str:
    """A machine-independent reading of an error: exact to float64 rounding, or clearly not."""
    if err < 1e-9:
        return "< 1e-9 (invariant)"
    if err > 1e-4:
        return "> 1e-4 (NOT invariant)"
    return "between 1e-9 and 1e-4"


@torch.no_grad()
def invariance_table(models=CHECKED_MODELS, seed: int = 0, batch: int = 3):
    """For random inputs in float64: the largest change of the logits when the (whole batch of) input(s) turns by
    90, 180, 270 degrees, relative to the largest logit; per-sample and batch-averaged parameters."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(seed)
        x = torch.randn(batch, 1, 28, 28)
        rows = []
        for name in models:
            model = build(name).eval()
            row = {"model": name, "parameters": count_parameters(model)}
            for mode in ("sample", "batch"):
                ref = model(x, mode)
                scale = ref.abs().max()
                err = max(((model(rot(x, g), mode) - ref).abs().max() / scale).item() for g in (1, 2, 3))
                row[f"turns, {mode} parameters"] = _band(err)
            rows.append(row)
        return rows
    finally:
        torch.set_default_dtype(old)

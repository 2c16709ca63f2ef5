"""Structured receptive field networks (thesis ch. 3): the experiments behind R-F2, R-F5, R-F6, R-T1..R-T4.

* ``mnist_sizes`` (R-F6, R-F2): the RFNN of section 3.4.2 and the same architecture as a plain CNN
  trained on MNIST subsets of 300 ... 60000 images (official-code protocol: Adadelta lr 5 decayed
  linearly to 0, rho 0.95, batch 25, 100 epochs at 60k up to 1000 at 300), error on the test set.
* ``ablation`` (R-T1, R-T2, R-F5): NiN vs RFNiN of basis order 1-4, one scale or several, and the
  refactorised NiN with a freely learned basis (first layer / all layers). The thesis ran this on
  ILSVRC2012-100, which cannot be had here; the profiles name the real stand-in dataset they use.
* ``class_subsets`` (R-T4): NiN vs RFNiN-v1 as the number of classes (and so of images) shrinks,
  on the same stand-in.
* ``cifar`` (R-T3): NiN vs RFNiN on CIFAR-10/100 through ``hyperbook.data.cifar.load_cifar_or_standin``.

Every experiment function is ``fn(config, ctx) -> (metrics, arrays)`` for ``RunContext.run``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..profiles import unknown_training_profile
from ..data.mnist import load_mnist
from ..errors import UnknownChoiceError
from ..layers.gaussian_basis import RFConv2d, basis_orders
from ..models.rfnn import (NIN_CIFAR, NIN_IMAGENET, NIN_SMALL, RFNIN_CIFAR, RFNIN_V2_IMAGENET, NiN, RFNN,
                           count_parameters, spatial_filter_count)
from ..results import config_hash
from ..train import checkpoint_path, fit, seed_everything, step_generator

CHAPTER = "thesis_rfnn"
MNIST_SIZES = (300, 1000, 2000, 5000, 10000, 20000, 40000, 60000)   # the Scattering paper's sizes


# ----------------------------------------------------------------------------- shared helpers
def epochs_for_size(n: int) -> int:
    """1000 epochs at 300 images down to 100 at 60000 (official code), log-linear in between
    (the official code's intermediate values are not in our facts; this interpolation is ours)."""
    t = (math.log(n) - math.log(300)) / (math.log(60000) - math.log(300))
    return int(round(1000 * (100 / 1000) ** min(max(t, 0.0), 1.0)))


def linear_decay(steps: int):
    return lambda step: max(0.0, 1.0 - step / max(steps, 1))


def subset_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """A random training subset of n images, class-balanced (n // classes per class, rest random)."""
    g = torch.Generator().manual_seed(10_007 * seed + n)
    classes = torch.unique(labels.cpu())
    per = n // len(classes)
    picks = []
    for c in classes:
        idx = torch.nonzero(labels.cpu() == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per]])
    chosen = torch.cat(picks)
    if len(chosen) < n:
        rest = torch.ones(len(labels), dtype=torch.bool)
        rest[chosen] = False
        others = torch.nonzero(rest).flatten()
        chosen = torch.cat([chosen, others[torch.randperm(len(others), generator=g)[: n - len(chosen)]]])
    return chosen.sort().values


# the thesis (sec. 3.4.1): "stochastic gradient descent, a momentum of 0.9": plain (heavy-ball) momentum
NESTEROV = False


def train_classifier(model, images, labels, *, steps, batch_size, lr, optimizer, seed, device, schedule=None,
                     ckpt=None, desc="train", weight_decay=0.0, augment=None, precision="fp32", batch_fn=None):
    """Cross-entropy training on in-memory tensors (or on `batch_fn(step)`); batches drawn by a per-step generator.

    SGD is plain momentum 0.9 (``NESTEROV`` False, passed to `fit` explicitly); `precision` goes to `fit`.
    """
    n = images.shape[0] if images is not None else 0

    def tensor_batches(step):
        g = step_generator(seed, step)
        idx = torch.randint(n, (batch_size,), generator=g).to(images.device)
        x = images[idx]
        if augment is not None:
            x = augment(x, g)
        return x, labels[idx]

    def loss_fn(m, batch):
        x, y = batch
        return F.cross_entropy(m(x), y)

    return fit(model, loss_fn, batch_fn or tensor_batches, steps=steps, lr=lr, optimizer=optimizer,
               lr_schedule=schedule, device=device, checkpoint=ckpt, checkpoint_every=max(steps // 4, 200),
               log_every=max(steps // 20, 1), desc=desc, progress=False, weight_decay=weight_decay,
               nesterov=NESTEROV, precision=precision)


@torch.no_grad()
def accuracy(model, images, labels, chunk: int = 500) -> float:
    model.eval()
    correct = 0
    for k in range(0, images.shape[0], chunk):
        correct += (model(images[k:k + chunk]).argmax(1) == labels[k:k + chunk]).sum().item()
    return correct / max(images.shape[0], 1)


def alpha_stats(model) -> dict:
    """Per RF layer: mean and std of |alpha| over (out, in) for every basis filter (R-F5)."""
    out = {}
    for k, m in enumerate([m for m in model.modules() if isinstance(m, RFConv2d)]):
        a = m.alpha.detach().abs().cpu()
        out[f"layer{k + 1}"] = np.stack([a.mean(dim=(0, 1)).numpy(), a.std(dim=(0, 1)).numpy()])
    return out


def _unit(u8: torch.Tensor) -> torch.Tensor:
    return u8.float().div(255.0).unsqueeze(1)


def load_gray(dataset: str, data_dir, device):
    """(train x, train y, test x, test y) of a real 28x28 grey dataset, pixels in [0, 1]."""
    if dataset == "mnist":
        xtr, ytr = load_mnist(data_dir, train=True, device=device)
        xte, yte = load_mnist(data_dir, train=False, device=device)
    elif dataset == "fashion_mnist":
        from ..data.fashion_mnist import load_fashion_mnist   # written with the data layer
        xtr, ytr = load_fashion_mnist(data_dir, train=True, device=device)
        xte, yte = load_fashion_mnist(data_dir, train=False, device=device)
    else:
        raise UnknownChoiceError("dataset", dataset, ("mnist", "fashion_mnist"))
    return _unit(xtr), ytr, _unit(xte), yte


# ----------------------------------------------------------------------------- R-F6: MNIST sizes
@dataclass(frozen=True)
class MnistSizesConfig:
    sizes: tuple = MNIST_SIZES
    seeds: tuple = (0, 1, 2)
    models: tuple = ("rf", "pixel")
    max_steps: int = 0           # 0: the official epochs per size; else a cap on steps per run
    batch_size: int = 25
    lr: float = 5.0
    n_test: int = 10000
    alpha_init: str = "uniform"  # official: alpha ~ U(-1, 1)
    precision: str = "fp32"      # "bf16": opt-in autocast on CUDA
    code_version: int = 1

    @classmethod
    def for_profile(cls, profile: str) -> "MnistSizesConfig":
        if profile == "smoke":
            return cls(sizes=(300, 1000), seeds=(0,), max_steps=30, n_test=500)
        if profile == "reduced":   # ~15 min on one CPU thread: 4 sizes, 1 seed, 600 steps per run
            return cls(sizes=(300, 1000, 5000, 20000), seeds=(0,), max_steps=600, n_test=5000)
        if profile == "full":      # thesis: 8 sizes, 3 seeds, official epochs (a GPU job)
            return cls()
        raise unknown_training_profile(profile)


def steps_for(config: MnistSizesConfig, n: int) -> int:
    steps = math.ceil(epochs_for_size(n) * n / config.batch_size)
    return min(steps, config.max_steps) if config.max_steps else steps


def run_mnist_sizes(config: MnistSizesConfig, ctx):
    xtr, ytr, xte, yte = load_gray("mnist", ctx.data_dir, ctx.device)
    xte, yte = xte[: config.n_test], yte[: config.n_test]
    err = np.full((len(config.models), len(config.sizes), len(config.seeds)), np.nan)
    steps_used = np.zeros((len(config.sizes),), dtype=np.int64)
    throughput, arrays, key = {}, {}, config_hash(config)
    for si, n in enumerate(config.sizes):
        steps = steps_for(config, n)
        steps_used[si] = steps
        for ri, seed in enumerate(config.seeds):
            idx = subset_indices(ytr, n, seed).to(ctx.device)
            for mi, kind in enumerate(config.models):
                seed_everything(seed)
                model = RFNN(kind, alpha_init=config.alpha_init)
                res = train_classifier(model, xtr[idx], ytr[idx], steps=steps, batch_size=config.batch_size,
                                       lr=config.lr, optimizer="adadelta", seed=seed, device=ctx.device,
                                       schedule=linear_decay(steps), desc=f"{kind} n={n} seed={seed}",
                                       precision=config.precision,
                                       ckpt=checkpoint_path(ctx.results_dir, CHAPTER, "mnist_sizes",
                                                            f"{key}-{kind}-{n}-{seed}"))
                err[mi, si, ri] = 100.0 * (1.0 - accuracy(model, xte, yte))
                throughput.setdefault(kind, []).append(res.items_per_s)
                if si == len(config.sizes) - 1 and ri == 0 and kind == "rf":
                    rf1 = model.features[0]
                    arrays["rf_layer1_filters"] = rf1.effective_filters().detach().flip(-1, -2)[:, 0].cpu().numpy()
                    for name, st in alpha_stats(model).items():
                        arrays[f"alpha_stats_{name}"] = st
                if si == len(config.sizes) - 1 and ri == 0 and kind == "pixel":
                    arrays["cnn_layer1_filters"] = model.features[0].weight.detach()[:, 0].flip(-1, -2).cpu().numpy()
    arrays.update(error=err, sizes=np.array(config.sizes), steps=steps_used)
    metrics = {
        "targets": ["R-F6", "R-F2"],
        "throughput": float(np.mean([v for vs in throughput.values() for v in vs])),
        "throughput_per_model": {k: float(np.mean(v)) for k, v in throughput.items()},
        "mean_error": {kind: {str(n): float(np.nanmean(err[mi, si])) for si, n in enumerate(config.sizes)}
                       for mi, kind in enumerate(config.models)},
        "parameters": {kind: count_parameters(RFNN(kind)) for kind in config.models},
    }
    return metrics, arrays


# ----------------------------------------------------------------------------- R-T1 / R-T2 / R-F5: ablation
# variant name -> (conv of the first stage, conv of the other stages, basis order, multi-scale?)
ABLATION_VARIANTS = {
    **{f"rf_order{o}": ("rf", "rf", o, False) for o in (1, 2, 3, 4)},
    **{f"rf_scale_order{o}": ("rf", "rf", o, True) for o in (1, 2, 3, 4)},
    "nin": ("pixel", "pixel", 3, False),
    "refactor_layer1_free": ("free", "pixel", 3, False),
    "refactor_layer1_gauss": ("rf", "pixel", 3, False),
    "refactor_all_free": ("free", "free", 3, True),
}
# R-T4's bigger RFNiN (one stage deeper and wider); built on ImageNet only
IMAGENET_ONLY = ("rfnin_v2",)
STANDIN_DATASETS = ("mnist", "fashion_mnist")
# The thesis's 100k-iteration ImageNet schedule: lr / 10 after 50k and after 75k iterations (half, three quarters)
def drop_schedule(steps: int):
    return lambda s: 0.1 ** (int(s >= steps // 2) + int(s >= 3 * steps // 4))


@dataclass(frozen=True)
class AblationConfig:
    dataset: str = "imagenet"       # 'imagenet' (ILSVRC2012-100, the thesis) or a labelled stand-in
    variants: tuple = tuple(ABLATION_VARIANTS)
    n_train: int = 0                # 0: every image of the chosen classes
    n_test: int = 0
    classes: int = 100
    steps: int = 100000             # thesis: 100k iterations, lr / 10 at 50k and 75k
    batch_size: int = 128           # not in the thesis: the Caffe NiN ImageNet definition's training batch
    lr: float = 0.01                # not in the thesis as a number ("the original rate divided by ten"): our choice
    optimizer: str = "sgd"          # the thesis: SGD, momentum 0.9 (plain), weight decay 5e-4
    weight_decay: float = 5e-4
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 2           # 2: ImageNet path; refactor variants keyed per stage

    @classmethod
    def for_profile(cls, profile: str) -> "AblationConfig":
        if profile == "smoke":
            return cls(dataset="fashion_mnist", classes=10, variants=("rf_order1", "nin", "refactor_layer1_free"),
                       n_train=512, n_test=256, steps=8, batch_size=16)
        if profile == "reduced":   # labelled stand-in: Fashion-MNIST, 10 classes, Adam for speed
            return cls(dataset="fashion_mnist", classes=10, n_train=6000, n_test=2000, steps=400, batch_size=32,
                       optimizer="adam", lr=1e-3)
        if profile == "full":      # the thesis: ILSVRC2012-100, never a stand-in
            return cls()
        raise unknown_training_profile(profile)


def build_nin(variant: str, classes: int, imagenet: bool, in_ch: int = 1):
    """The ImageNet NiN family (4 stages, 4 scales when multi-scale) or the small stand-in NiN (3 stages, 3 scales)."""
    if variant == "rfnin_v2":
        if not imagenet:
            raise UnknownChoiceError("stand-in NiN variant", variant, ABLATION_VARIANTS)
        return NiN(classes, RFNIN_V2_IMAGENET, conv="rf", order=3, n_scales=4, in_ch=3, rf_size="support")
    if variant not in ABLATION_VARIANTS:
        raise UnknownChoiceError("NiN variant", variant, tuple(ABLATION_VARIANTS) + IMAGENET_ONLY)
    first, rest, order, multi = ABLATION_VARIANTS[variant]
    stages = NIN_IMAGENET if imagenet else NIN_SMALL
    convs = (first,) + (rest,) * (len(stages) - 1)
    n_scales = len(stages) if multi else 1
    return NiN(classes, stages, conv=convs, order=order, n_scales=n_scales, in_ch=3 if imagenet else in_ch,
               rf_size="support")


def build_standin_nin(variant: str, classes: int, in_ch: int = 1):
    return build_nin(variant, classes, imagenet=False, in_ch=in_ch)


def _train_eval_nin(model, xtr, ytr, xte, yte, config, ctx, name, key, experiment, lr=None):
    steps = config.steps
    res = train_classifier(model, xtr, ytr, steps=steps, batch_size=config.batch_size, lr=lr or config.lr,
                           optimizer=config.optimizer, seed=config.seed, device=ctx.device,
                           weight_decay=config.weight_decay if config.optimizer == "sgd" else 0.0,
                           schedule=drop_schedule(steps), precision=config.precision,
                           ckpt=checkpoint_path(ctx.results_dir, CHAPTER, experiment, f"{key}-{name}"), desc=name)
    return 100.0 * accuracy(model, xte, yte), res.items_per_s


def _train_eval_imagenet(model, train, val, config, ctx, name, key, experiment, lr=None):
    """The same training on decoded ImageNet batches (random 224 crops, mirrors); top-1 on the val centre crops."""
    from ..data.imagenet import batch as decode
    n = len(train)

    def batch_fn(step):
        g = step_generator(config.seed, step)
        return decode(train, torch.randint(n, (config.batch_size,), generator=g), ctx.device, generator=g)

    res = train_classifier(model, None, None, steps=config.steps, batch_size=config.batch_size, lr=lr or config.lr,
                           optimizer=config.optimizer, seed=config.seed, device=ctx.device,
                           weight_decay=config.weight_decay, schedule=drop_schedule(config.steps),
                           precision=config.precision, batch_fn=batch_fn, desc=name,
                           ckpt=checkpoint_path(ctx.results_dir, CHAPTER, experiment, f"{key}-{name}"))
    model.eval()
    correct, m = 0, len(val) if not getattr(config, "n_test", 0) else min(config.n_test, len(val))
    with torch.no_grad():
        for k in range(0, m, 100):
            x, y = decode(val, range(k, min(k + 100, m)), ctx.device)
            correct += (model(x).argmax(1) == y).sum().item()
    return 100.0 * correct / max(m, 1), res.items_per_s


def _check_dataset(dataset: str):
    if dataset != "imagenet" and dataset not in STANDIN_DATASETS:
        raise UnknownChoiceError("dataset", dataset, ("imagenet",) + STANDIN_DATASETS)


def run_ablation(config: AblationConfig, ctx):
    _check_dataset(config.dataset)
    key = config_hash(config)
    rows, arrays, speeds = {}, {}, []
    imagenet = config.dataset == "imagenet"
    if imagenet:
        from ..data.imagenet import load_imagenet
        train, val = load_imagenet(ctx.data_dir, config.classes)     # DatasetMissingError when absent
    else:
        xtr, ytr, xte, yte = load_gray(config.dataset, ctx.data_dir, ctx.device)
        idx = subset_indices(ytr, config.n_train or len(ytr), config.seed).to(ctx.device)
        xtr, ytr = xtr[idx], ytr[idx]
        xte, yte = xte[: config.n_test or len(yte)], yte[: config.n_test or len(yte)]
    for variant in config.variants:
        seed_everything(config.seed)
        model = build_nin(variant, config.classes, imagenet)
        if imagenet:
            top1, speed = _train_eval_imagenet(model, train, val, config, ctx, variant, key, "ablation")
        else:
            top1, speed = _train_eval_nin(model, xtr, ytr, xte, yte, config, ctx, variant, key, "ablation")
        speeds.append(speed)
        rows[variant] = {"top1": top1, "parameters": count_parameters(model),
                         "spatial_filters": spatial_filter_count(model), "images_per_s": speed}
        if variant == "rf_order4":
            for name, st in alpha_stats(model).items():
                arrays[f"alpha_stats_{name}"] = st
    metrics = {"targets": ["R-T1", "R-T2", "R-F5"], "dataset": config.dataset, "stand_in": not imagenet,
               "stand_in_for": None if imagenet else "ILSVRC2012-100", "results": rows,
               "throughput": float(np.mean(speeds))}
    return metrics, arrays


# ----------------------------------------------------------------------------- R-T4: class subsets
@dataclass(frozen=True)
class ClassSubsetConfig:
    dataset: str = "imagenet"
    class_counts: tuple = (1000, 100, 10)
    per_class: int = 0              # 0: every training image of the class (ImageNet: up to 1300)
    variants: tuple = ("nin", "rf_scale_order3", "rfnin_v2")
    n_test_per_class: int = 0
    steps: int = 100000             # the 100k-iteration schedule of experiment 1 for every subset (our choice)
    batch_size: int = 128
    lr: float = 0.01                # 100 and 10 classes; x10 for 1000 classes (the thesis's scaling rule, reversed)
    optimizer: str = "sgd"          # the thesis: SGD, momentum 0.9 (plain), weight decay 5e-4
    weight_decay: float = 5e-4
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 2

    @classmethod
    def for_profile(cls, profile: str) -> "ClassSubsetConfig":
        if profile == "smoke":
            return cls(dataset="fashion_mnist", class_counts=(10, 2), per_class=40, n_test_per_class=20, steps=6,
                       batch_size=16, variants=("nin", "rf_scale_order3"))
        if profile == "reduced":
            return cls(dataset="fashion_mnist", class_counts=(10, 5, 2), per_class=300, n_test_per_class=200,
                       steps=400, batch_size=32, optimizer="adam", lr=1e-3, variants=("nin", "rf_scale_order3"))
        if profile == "full":
            return cls()
        raise unknown_training_profile(profile)

    def lr_for(self, classes: int) -> float:
        return self.lr * (10.0 if self.dataset == "imagenet" and classes >= 1000 else 1.0)


def _first_classes(x, y, classes: int, per_class: int, seed: int):
    keep = torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in range(classes)])
    return x[keep], y[keep]


def run_class_subsets(config: ClassSubsetConfig, ctx):
    _check_dataset(config.dataset)
    imagenet = config.dataset == "imagenet"
    key = config_hash(config)
    top1 = np.zeros((len(config.variants), len(config.class_counts)))
    speeds = []
    if not imagenet:
        xtr0, ytr0, xte0, yte0 = load_gray(config.dataset, ctx.data_dir, ctx.device)
    for ci, classes in enumerate(config.class_counts):
        if imagenet:
            from ..data.imagenet import load_imagenet
            train, val = load_imagenet(ctx.data_dir, classes)
        else:
            xtr, ytr = _first_classes(xtr0, ytr0, classes, config.per_class or len(ytr0), config.seed)
            xte, yte = _first_classes(xte0, yte0, classes, config.n_test_per_class or len(yte0), config.seed)
        for vi, variant in enumerate(config.variants):
            seed_everything(config.seed)
            model = build_nin(variant, classes, imagenet)
            name, lr = f"{variant}-{classes}", config.lr_for(classes)
            if imagenet:
                top1[vi, ci], speed = _train_eval_imagenet(model, train, val, config, ctx, name, key,
                                                           "class_subsets", lr=lr)
            else:
                top1[vi, ci], speed = _train_eval_nin(model, xtr, ytr, xte, yte, config, ctx, name, key,
                                                      "class_subsets", lr=lr)
            speeds.append(speed)
    metrics = {"targets": ["R-T4"], "dataset": config.dataset, "stand_in": not imagenet,
               "stand_in_for": None if imagenet else "ILSVRC2012 1000/100/10 classes",
               "variants": list(config.variants),
               "top1": {v: {str(c): float(top1[vi, ci]) for ci, c in enumerate(config.class_counts)}
                        for vi, v in enumerate(config.variants)},
               "throughput": float(np.mean(speeds))}
    return metrics, {"top1": top1, "class_counts": np.array(config.class_counts)}


# ----------------------------------------------------------------------------- R-T3: CIFAR
@dataclass(frozen=True)
class CifarConfig:
    which: str = "cifar10"
    variants: tuple = ("nin", "rfnin")
    steps: int = 60000            # NiN-CIFAR schedule length (batch 128, ~150 epochs)
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 1e-4
    n_train: int = 50000
    n_test: int = 10000
    order: int = 3
    n_scales: int = 3
    allow_standin: bool = False   # = (profile != "full"): a full run never trains on a stand-in
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 2         # 2: 6 1x1 layers in the CIFAR RFNiN; real CIFAR-10 through the shared loader

    @classmethod
    def for_profile(cls, profile: str, which: str = "cifar10") -> "CifarConfig":
        if profile == "smoke":
            return cls(which=which, steps=4, batch_size=8, n_train=64, n_test=64, n_scales=2, allow_standin=True)
        if profile == "reduced":   # sized to about 5 minutes per run on 2 cores (see the chapter)
            return cls(which=which, steps=REDUCED_CIFAR_STEPS, batch_size=32, n_train=50000, n_test=2000,
                       n_scales=2, allow_standin=True)
        if profile == "full":
            return cls(which=which, allow_standin=False)
        raise unknown_training_profile(profile)


REDUCED_CIFAR_STEPS = 100   # about 1.3 + 2.1 s per step (NiN + RFNiN, batch 32) on an idle 2-core CPU


def build_cifar_model(variant: str, classes: int, order: int = 3, n_scales: int = 3):
    if variant == "nin":
        return NiN(classes, NIN_CIFAR, conv="pixel", in_ch=3)
    if variant == "rfnin":
        return NiN(classes, RFNIN_CIFAR, conv="rf", order=order, n_scales=n_scales, in_ch=3, rf_size="support")
    raise UnknownChoiceError("CIFAR variant", variant, ("nin", "rfnin"))


def _flip_augment(x, g):
    flip = torch.rand(x.shape[0], generator=g).to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def run_cifar(config: CifarConfig, ctx):
    from ..data.cifar import is_standin, load_cifar_or_standin, normalise   # the data layer's loader
    classes = 10 if config.which == "cifar10" else 100
    xtr, ytr, source = load_cifar_or_standin(ctx.data_dir, classes, train=True, device=ctx.device,
                                             allow_standin=config.allow_standin)
    xte, yte, _ = load_cifar_or_standin(ctx.data_dir, classes, train=False, device=ctx.device,
                                        allow_standin=config.allow_standin)
    standin = is_standin(source)
    g = torch.Generator().manual_seed(config.seed)
    pick = torch.randperm(xtr.shape[0], generator=g)[: config.n_train].to(xtr.device)
    xtr, ytr = normalise(xtr[pick]), ytr[pick]
    xte, yte = normalise(xte[: config.n_test]), yte[: config.n_test]
    key, rows, speeds = config_hash(config), {}, []
    for variant in config.variants:
        seed_everything(config.seed)
        model = build_cifar_model(variant, classes, config.order, config.n_scales)
        res = train_classifier(model, xtr, ytr, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                               optimizer="sgd", seed=config.seed, device=ctx.device,
                               weight_decay=config.weight_decay, augment=_flip_augment,
                               schedule=drop_schedule(config.steps), precision=config.precision,
                               ckpt=checkpoint_path(ctx.results_dir, CHAPTER, config.which, f"{key}-{variant}"),
                               desc=variant)
        speeds.append(res.items_per_s)
        rows[variant] = {"top1": 100.0 * accuracy(model, xte, yte), "parameters": count_parameters(model),
                         "train_wall_s": res.wall_s}
    metrics = {"targets": ["R-T3"], "dataset": config.which, "source": source, "stand_in": standin,
               "results": rows, "throughput": float(np.mean(speeds))}
    return metrics, {}


EXPERIMENTS = {
    "mnist_sizes": (MnistSizesConfig.for_profile, run_mnist_sizes),
    "ablation": (AblationConfig.for_profile, run_ablation),
    "class_subsets": (ClassSubsetConfig.for_profile, run_class_subsets),
    "cifar10": (lambda p: CifarConfig.for_profile(p, "cifar10"), run_cifar),
    "cifar100": (lambda p: CifarConfig.for_profile(p, "cifar100"), run_cifar),
}


def run(ctx, experiment: str, overrides: dict | None = None):
    if experiment not in EXPERIMENTS:
        raise UnknownChoiceError("thesis_rfnn experiment", experiment, EXPERIMENTS)
    config_for, fn = EXPERIMENTS[experiment]
    return ctx.run(experiment, config_for, fn, overrides=overrides)

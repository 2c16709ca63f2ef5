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
        if profile == "reduced":   # 4 sizes, 3 seeds, 600 steps per run: 13.7 min on the 2-core CPU (2026-12-07)
            return cls(sizes=(300, 1000, 5000, 20000), seeds=(0, 1, 2), max_steps=600, n_test=5000)
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


# ----------------------------------------------------------------------------- the chapter's tables, figures, findings
# The thesis's tables, as printed. T1: variant -> (top-1 % on ILSVRC2012-100, 2-D filters, parameters);
# T2: variant -> (row, top-1 %); T3: dataset -> model -> top-1 %; T4: classes -> (NiN, RFNiN-v1, RFNiN-v2) top-1 %.
THESIS_T1 = {"rf_order1": (44.83, "12", "1.8M"), "rf_order2": (61.24, "24", "3.4M"), "rf_order3": (63.64, "40", "5.5M"),
             "rf_order4": (62.92, "60", "8.1M"), "rf_scale_order1": (57.21, "24", "2.2M"),
             "rf_scale_order2": (67.56, "54", "4.2M"), "rf_scale_order3": (69.65, "94", "6.8M"),
             "rf_scale_order4": (68.95, "144", "10.1M"), "nin": (67.30, "520k", "8.2M"), "alexnet": (54.86, "370k", "60.0M")}
T1_NAMES = {"rf_order1": "RFNiN 1st-order", "rf_order2": "RFNiN 2nd-order", "rf_order3": "RFNiN 3rd-order",
            "rf_order4": "RFNiN 4th-order", "rf_scale_order1": "RFNiN-Scale 1st-order",
            "rf_scale_order2": "RFNiN-Scale 2nd-order", "rf_scale_order3": "RFNiN-Scale 3rd-order",
            "rf_scale_order4": "RFNiN-Scale 4th-order", "nin": "Network in Network", "alexnet": "AlexNet"}
THESIS_T2 = {"refactor_layer1_free": ("NiN-refactor layer 1, free basis", 64.10),
             "refactor_layer1_gauss": ("RFNiN-refactor layer 1, Gaussian basis", 68.63),
             "refactor_all_free": ("NiN-refactor all layers, free basis", 38.02),
             "rf_scale_order3": ("RFNiN-Scale 3rd-order (Gaussian, all layers)", 69.65)}
THESIS_T3 = {"cifar10": {"RFNiN": 86.31, "Roto-Trans Scattering (quoted)": 82.30, "RCNN (quoted)": 91.31},
             "cifar100": {"RFNiN": 63.81, "Roto-Trans Scattering (quoted)": 56.80, "RCNN (quoted)": 68.25}}
THESIS_T4 = {1000: (56.78, 50.08, 54.04), 100: (67.30, 69.65, 70.78), 10: (76.97, 85.00, 83.36)}


def runs_table(records):
    from .. import tables
    return tables.runs_table(records, {"targets": lambda r: ", ".join(r.metrics["targets"])})


def basis_labels(order: int = 4) -> list[str]:
    from ..layers.gaussian_basis import basis_orders
    return [("G" + "x" * i + "y" * j) if i + j else "G" for i, j in basis_orders(order)]


def basis_figure(order: int = 4, sigma: float = 1.5):
    """The Gaussian-derivative basis up to `order`, each filter scaled to its own maximum."""
    from ..layers.gaussian_basis import gaussian_derivative_basis
    from ..plots import image_grid
    basis = gaussian_derivative_basis(order, sigma)
    return image_grid((basis / basis.abs().amax(dim=(1, 2), keepdim=True)).numpy(), titles=basis_labels(order),
                      scale=1.0)


def steering_figure(angles=tuple(range(0, 180, 30))):
    """Eq. 22: G_xx and G_xxx steered to each angle from the unrotated basis only."""
    from ..layers.gaussian_basis import basis_orders, gaussian_derivative_basis, steer
    from ..plots import image_grid
    index = {v: k for k, v in enumerate(basis_orders(3))}
    b3 = gaussian_derivative_basis(3, 2.0, size=17)
    rows = torch.stack([steer(b3, 3, math.radians(a))[index[key]] for key in [(2, 0), (3, 0)] for a in angles])
    return image_grid((rows / rows.abs().amax(dim=(1, 2), keepdim=True)).numpy(), 2, len(angles),
                      col_labels=[f"{a}°" for a in angles], row_labels=["Gxx", "Gxxx"], scale=1.1)


def block_figure(seed: int = 0):
    """R-F4: one RFConv2d(1, 6, order 2): its fixed basis, its alpha matrix and its six effective filters."""
    import matplotlib.pyplot as plt
    from ..layers.gaussian_basis import RFConv2d, gaussian_derivative_basis
    torch.manual_seed(seed)
    block = RFConv2d(1, 6, 2, (1.5,), alpha_init="uniform")
    phi = gaussian_derivative_basis(2, 1.5).numpy()
    alpha = block.alpha.detach()[:, 0].numpy()                       # [out, basis]
    eff = block.effective_filters().detach().flip(-1, -2)[:, 0].numpy()
    labels = basis_labels(2)
    fig = plt.figure(figsize=(9, 4.4), layout="constrained")
    gs = fig.add_gridspec(6, 3, width_ratios=[1, 2.2, 1])
    for m in range(6):
        for col, (arr, name) in enumerate(((phi[m], labels[m]), (eff[m], f"F_{m}"))):
            v = np.abs(arr).max()
            ax = fig.add_subplot(gs[m, 2 * col])
            ax.imshow(arr, cmap="RdBu_r", vmin=-v, vmax=v)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
            if m == 0:
                ax.set_title("fixed basis phi_m" if col == 0 else "effective filters F_j", fontsize=8)
    ax = fig.add_subplot(gs[:, 1])
    ax.imshow(alpha, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(6), labels, fontsize=7), ax.set_yticks(range(6), [f"out {j}" for j in range(6)], fontsize=7)
    for (j, m), v in np.ndenumerate(alpha):
        ax.text(m, j, f"{v:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title("learned alpha (1x1 recombination)", fontsize=8)
    return fig


def architecture_figure(layers: dict):
    """The MNIST RFNN (basis layers highlighted) beside the same architecture as a plain CNN."""
    import matplotlib.pyplot as plt
    from ..plots import draw_layer_diagram
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * max(map(len, layers.values())) + 1), layout="constrained")
    draw_layer_diagram(layers["rf"], axes[0], "MNIST RFNN (basis orders 3, 2, 2)",
                       highlight={"features.0": "#f6d7a7", "features.5": "#f6d7a7", "features.10": "#f6d7a7"})
    draw_layer_diagram(layers["pixel"], axes[1], "the same architecture as a plain CNN")
    return fig


def sizes_table(rec):
    """R-F6: test error of the RFNN and the CNN per training-set size (mean over the run's seeds)."""
    import pandas as pd
    from .. import tables
    err, sizes, steps = rec.arrays["error"], rec.arrays["sizes"], rec.arrays["steps"]
    frame = pd.DataFrame({"training images": sizes.astype(int), "steps per run": steps.astype(int),
                          "RFNN error": err[0].mean(1), "CNN error": err[1].mean(1),
                          "CNN - RFNN": err[1].mean(1) - err[0].mean(1), "seeds": err.shape[2]})
    return tables.show(frame, units={"RFNN error": "%", "CNN error": "%", "CNN - RFNN": "points"}, digits=3,
                       caption=tables.caption(rec))


def sizes_figure(rec):
    import matplotlib.pyplot as plt
    err, sizes = rec.arrays["error"], rec.arrays["sizes"]
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    for k, (name, colour) in enumerate([("RFNN (ours)", "C0"), ("same architecture as a CNN (ours)", "C3")]):
        ax.plot(sizes, err[k].mean(1), "o-", color=colour, label=name)
        if err.shape[2] > 1:
            ax.fill_between(sizes, err[k].min(1), err[k].max(1), color=colour, alpha=0.2)
    ax.set(xscale="log", yscale="log", xlabel="training images", ylabel="test error (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def _seed_spread_sentence(gap_per_seed, sizes) -> str:
    """How far the seeds agree on the CNN - RFNN gap (sizes x seeds), so a reader can tell a gap from noise."""
    n = gap_per_seed.shape[1]
    if n < 2:
        return "With one seed the run-to-run noise is not measured, so no gap here is distinguishable from it."
    sd = gap_per_seed.std(1, ddof=1)
    mean = gap_per_seed.mean(1)
    clear = np.abs(mean) > 2 * sd / np.sqrt(n)
    named = f" ({', '.join(str(int(v)) for v in np.asarray(sizes)[clear])})" if clear.any() else ""
    return (f"Over {n} seeds the gap's standard deviation is {sd.min():.2f} to {sd.max():.2f} points per size; "
            f"{int(clear.sum())} of {len(mean)} sizes{named} have a mean gap larger than twice its standard error.")


def sizes_findings(rec) -> str:
    err, sizes, steps = rec.arrays["error"], rec.arrays["sizes"], rec.arrays["steps"]
    rf, cnn = err[0].mean(1), err[1].mean(1)
    gap = cnn - rf
    cfg = rec.provenance.get("config", {})
    small = sizes <= 1000
    m = rec.metrics
    text = (f"**Reading the shown run** ({rec.profile}, {err.shape[2]} seed(s), up to {int(steps.max())} steps of "
            f"{cfg.get('batch_size', '?')} images per run, sizes {', '.join(str(int(s)) for s in sizes)}; error on "
            f"{cfg.get('n_test', '?')} MNIST test images). RFNN errors: {', '.join(f'{v:.2f}' for v in rf)}%; plain "
            f"CNN: {', '.join(f'{v:.2f}' for v in cnn)}%. ")
    if small.any():
        text += (f"At {', '.join(str(int(s)) for s in sizes[small])} images the RFNN is "
                 + ("ahead" if (gap[small] > 0).all() else "not ahead everywhere") + " (by "
                 f"{gap[small].min():+.2f} to {gap[small].max():+.2f} points); at the largest size the gap is "
                 f"{gap[-1]:+.2f}. ")
    text += ("The thesis's direction (the RFNN ahead when data are scarce, the two meeting as data grow) "
             + ("shows" if small.any() and (gap[small] > 0).all() and abs(gap[-1]) < gap[small].min() else
                "does not show cleanly") + " here. " + _seed_spread_sentence(err[1] - err[0], sizes)
             + " The runs are far shorter than the official 100 to 1000 epochs. Whether the RFNN is *on par with "
             "Scattering* cannot be judged here: Scattering is not re-run and figure 6's values are not in the text.")
    if "throughput_per_model" in m:
        tp, params = m["throughput_per_model"], m["parameters"]
        text += (f" Training speed in the same run: RFNN {tp['rf']:.0f} images/s, CNN {tp['pixel']:.0f} images/s; "
                 f"parameters {params['rf']:,} against {params['pixel']:,}.")
    return text


def first_layer_figure(rec):
    """R-F2: the first-layer effective filters of the MNIST RFNN beside the plain CNN's (8 x 8 tiles)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), layout="constrained")
    for ax, f, title in [(axes[0], rec.arrays["rf_layer1_filters"], "RFNN layer 1 (effective filters)"),
                         (axes[1], rec.arrays["cnn_layer1_filters"], "CNN layer 1")]:
        f = (f / np.abs(f).max(axis=(1, 2), keepdims=True))[:64]
        k = f.shape[-1]
        grid = np.full((8 * (k + 1), 8 * (k + 1)), np.nan)
        for n in range(len(f)):
            r, c = divmod(n, 8)
            grid[r * (k + 1):r * (k + 1) + k, c * (k + 1):c * (k + 1) + k] = f[n]
        ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.axis("off")
        ax.set_title(title, fontsize=9)
    return fig


def _ablation_data(rec) -> str:
    return rec.metrics["dataset"] + (", a stand-in" if rec.metrics.get("stand_in", True) else "")


def t1_table(rec):
    """R-T1 (accuracy): each variant's top-1 and its gap to NiN, the thesis's beside ours; the gap to NiN is
    the quantity that can be set beside the thesis's across datasets."""
    from .. import tables
    res = rec.metrics["results"]
    nin = res.get("nin", {}).get("top1")
    rows = []
    for v, (d_top1, _, _) in THESIS_T1.items():
        ours = res.get(v, {}).get("top1")
        rows.append({"model": T1_NAMES[v], "document": d_top1 - THESIS_T1["nin"][0],
                     "ours": None if ours is None or nin is None else ours - nin, "unit": "points",
                     "not_comparable": not tables.comparable(rec),
                     "document top-1 (%)": d_top1, "our top-1 (%)": ours,
                     "run": "thesis table 1: quoted, not reproduced" if v == "alexnet" else
                     tables.run_label(rec) if v in res else "not in this profile's run"})
    frame = tables.compare(rows).rename(columns={"document": "document gap to NiN", "ours": "our gap to NiN"})
    return tables.show(frame, caption=tables.caption(rec, f"ours on {_ablation_data(rec)}"))


def t1_size_table(rec):
    """R-T1 (size): 2-D filters and parameters, the thesis's (ImageNet RFNiN) beside ours (the small NiN)."""
    import pandas as pd
    from .. import tables
    res = rec.metrics["results"]
    frame = pd.DataFrame([{"model": T1_NAMES[v], "document 2-D filters": d_f, "our 2-D filters":
                           res.get(v, {}).get("spatial_filters"), "document parameters": d_p,
                           "our parameters": res.get(v, {}).get("parameters")}
                          for v, (_, d_f, d_p) in THESIS_T1.items()])
    return tables.show(frame, caption=tables.caption(rec, "ours: the small three-stage NiN of the stand-in"))


def t2_table(rec):
    """R-T2: Gaussian against a freely learned basis, the thesis's top-1 beside ours (stand-in: not compared)."""
    from .. import tables
    res = rec.metrics["results"]
    rows = [{"model": name, "document": d, "ours": res[v]["top1"], "unit": "%",
             "not_comparable": not tables.comparable(rec), "our parameters": res[v]["parameters"]}
            for v, (name, d) in THESIS_T2.items() if v in res]
    return tables.show(tables.compare(rows), caption=tables.caption(rec, f"ours on {_ablation_data(rec)}"))


def ablation_findings(rec) -> list[str]:
    """R-T1 / R-T2 read as orderings (the values are not comparable across datasets)."""
    res = {v: r["top1"] for v, r in rec.metrics["results"].items()}
    cfg = rec.provenance.get("config", {})
    d = {v: t[0] for v, t in THESIS_T1.items()}
    lines = [f"**Reading the shown run** ({rec.profile}; {_ablation_data(rec)}, {cfg.get('n_train', '?')} training "
             f"and {cfg.get('n_test', '?')} test images, one seed, {cfg.get('steps', '?')} {cfg.get('optimizer', '?')} "
             f"steps of {cfg.get('batch_size', '?')}; the thesis ran 100k SGD iterations on ImageNet). Read the "
             "orderings, not the values; differences of a few points are noise at this length.", ""]
    orders = [f"rf_order{k}" for k in range(1, 5) if f"rf_order{k}" in res]
    if len(orders) > 1:
        worst, best = min(orders, key=res.get), max(orders, key=res.get)
        thesis = [v for v in d if v.startswith("rf_order")]
        lines.append(f"* *Order* (table 1, single scale): worst {T1_NAMES[worst]} ({res[worst]:.1f}%), best "
                     f"{T1_NAMES[best]} ({res[best]:.1f}%); thesis: worst {T1_NAMES[min(thesis, key=d.get)]}, best "
                     f"{T1_NAMES[max(thesis, key=d.get)]}.")
    pairs = [k for k in range(1, 5) if f"rf_order{k}" in res and f"rf_scale_order{k}" in res]
    if pairs:
        helped = [k for k in pairs if res[f"rf_scale_order{k}"] > res[f"rf_order{k}"]]
        lines.append(f"* *Scale*: several scales beat one scale at orders {', '.join(map(str, helped)) or 'none'} "
                     f"of {', '.join(map(str, pairs))} (thesis: at every order).")
    gaps = {v: res[v] - res["nin"] for v in ("rf_scale_order3", "rf_scale_order4") if v in res and "nin" in res}
    if gaps:
        lines.append(f"* *Against NiN* ({res['nin']:.1f}%): " + ", ".join(
            f"{T1_NAMES[v]} {g:+.1f} points (thesis {d[v] - d['nin']:+.2f})" for v, g in gaps.items()) + ".")
    if {"refactor_layer1_gauss", "refactor_layer1_free"} <= set(res):
        g = res["refactor_layer1_gauss"] - res["refactor_layer1_free"]
        lines.append(f"* *Free basis, first layer* (table 2): Gaussian {res['refactor_layer1_gauss']:.1f}% against free "
                     f"{res['refactor_layer1_free']:.1f}% ({g:+.1f} points; thesis "
                     f"{THESIS_T2['refactor_layer1_gauss'][1] - THESIS_T2['refactor_layer1_free'][1]:+.2f}): "
                     + ("same direction." if g > 0 else "the opposite direction."))
    if {"refactor_all_free", "rf_scale_order3"} <= set(res):
        g = res["refactor_all_free"] - res["rf_scale_order3"]
        lines.append(f"* *Free basis, all layers*: {res['refactor_all_free']:.1f}% against RFNiN-Scale 3rd-order's "
                     f"{res['rf_scale_order3']:.1f}% ({g:+.1f} points), where the thesis saw it collapse to "
                     f"{THESIS_T2['refactor_all_free'][1]}% "
                     f"({THESIS_T2['refactor_all_free'][1] - THESIS_T2['rf_scale_order3'][1]:+.2f}): " + ("same direction." if g < 0 else "the opposite direction; one seed "
                                                     "cannot say why."))
    return lines


def alpha_figure(rec_a, rec):
    """R-F5: mean and std of |alpha| per basis filter and layer, for the order-4 stand-in RFNiN and the MNIST RFNN."""
    import matplotlib.pyplot as plt
    labels = basis_labels(4)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for ax, (r, title) in zip(axes, [(rec_a, f"order-4 RFNiN, {rec_a.metrics['dataset']} (stand-in)"),
                                     (rec, "MNIST RFNN")]):
        keys = sorted(k for k in r.arrays if k.startswith("alpha_stats_"))
        for n, key in enumerate(keys):
            st = r.arrays[key]
            xs = np.arange(st.shape[1]) + (n - (len(keys) - 1) / 2) * 0.22
            ax.errorbar(xs, st[0], yerr=st[1], fmt="o", ms=3, capsize=2, label=key.replace("alpha_stats_", ""))
        if keys:
            nb = max(r.arrays[k].shape[1] for k in keys)
            ax.set_xticks(range(nb), labels[:nb], rotation=60, fontsize=7)
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "(this profile's run has no order-4 model)", ha="center", transform=ax.transAxes)
        ax.set_ylabel("|alpha|: mean and std")
        ax.set_title(title, fontsize=8)
    return fig


def t4_table(rec):
    """R-T4: NiN against RFNiN on fewer classes: the thesis's rows, then ours (stand-in)."""
    import pandas as pd
    from .. import tables
    top1, counts = rec.arrays["top1"], rec.arrays["class_counts"]
    variants = rec.metrics.get("variants", ["nin", "rf_scale_order3"])
    rows = [{"data": "thesis: ILSVRC2012", "classes": c, "NiN top-1": n, "RFNiN-v1 top-1": r,
             "RFNiN-v1 - NiN": r - n, "RFNiN-v2 top-1": v2} for c, (n, r, v2) in THESIS_T4.items()]
    label = f"ours: {rec.metrics['dataset']}" + (" (stand-in, not comparable)" if rec.metrics.get("stand_in", True) else "")
    rows += [{"data": label, "classes": int(c), "NiN top-1": top1[0, k], "RFNiN-v1 top-1": top1[1, k],
              "RFNiN-v1 - NiN": top1[1, k] - top1[0, k],
              "RFNiN-v2 top-1": top1[2, k] if "rfnin_v2" in variants else "not run (ImageNet only)"}
             for k, c in enumerate(counts)]
    return tables.show(pd.DataFrame(rows), units={"NiN top-1": "%", "RFNiN-v1 top-1": "%", "RFNiN-v1 - NiN": "points",
                                                  "RFNiN-v2 top-1": "%"},
                       caption=tables.caption(rec, "thesis rows: table 4 (RFNiN-v2 quoted, not reproduced)"))


def subsets_findings(rec) -> str:
    top1, counts = rec.arrays["top1"], rec.arrays["class_counts"]
    cfg = rec.provenance.get("config", {})
    gaps = top1[1] - top1[0]
    order = np.argsort(counts)[::-1]                    # most classes first
    trend = all(gaps[order][i] < gaps[order][i + 1] for i in range(len(order) - 1))
    return (f"**Reading the shown run** ({rec.profile}; {rec.metrics['dataset']}, {cfg.get('per_class', '?')} training "
            f"and {cfg.get('n_test_per_class', '?')} test images per class, one seed, {cfg.get('steps', '?')} "
            f"{cfg.get('optimizer', '?')} steps of {cfg.get('batch_size', '?')}). NiN reached "
            + ", ".join(f"{top1[0, k]:.1f}%" for k in order) + " and RFNiN-v1 " + ", ".join(
                f"{top1[1, k]:.1f}%" for k in order) + " on " + ", ".join(str(int(counts[k])) for k in order)
            + " classes: gaps of " + ", ".join(f"{gaps[k]:+.1f}" for k in order) + " points. "
            + ("The gap grows as classes shrink, the thesis's direction; " if trend else
               "The gap does not grow steadily as classes shrink; ")
            + "with one seed and runs this short, swings of this size are noise, so the thesis's claim is neither "
              "reproduced nor refuted here: it needs ImageNet subsets, or converged runs with several seeds on the "
              "stand-in (`class_subsets`, profile `full`).")


def t3_table(records):
    """R-T3: CIFAR-10 and CIFAR-100, the thesis's table 3 beside ours (quoted peers kept)."""
    from .. import tables
    rows = []
    for which in ("cifar10", "cifar100"):
        r = records[which]
        for variant, name in [("rfnin", "RFNiN"), ("nin", "NiN")]:
            rows.append({"dataset": which, "model": name, "document": THESIS_T3[which].get(name),
                         "ours": r.metrics["results"][variant]["top1"], "unit": "%",
                         "not_comparable": not tables.comparable(r), "run": tables.run_label(r)})
        rows += [{"dataset": which, "model": name, "document": THESIS_T3[which][name], "ours": None, "unit": "%",
                  "run": "thesis table 3, not run"} for name in ("Roto-Trans Scattering (quoted)", "RCNN (quoted)")]
    return tables.show(tables.compare(rows), caption=tables.caption([records["cifar10"], records["cifar100"]]))


def cost_table():
    """RFConv2d's two computations against nn.Conv2d of the same kernel: one forward and backward pass of a
    64 -> 64 layer on a batch of 32 at 28x28, timed when the page is built."""
    import pandas as pd
    from .. import tables
    from ..bench import best_time
    from ..layers.gaussian_basis import RFConv2d

    def timed(layer, x):
        return best_time(lambda: layer(x).sum().backward(), repeat=3)

    x = torch.randn(32, 64, 28, 28, generator=torch.Generator().manual_seed(0))
    rows = []
    for order, k in [(2, 7), (3, 11)]:
        conv = torch.nn.Conv2d(64, 64, k, padding=k // 2, bias=False)
        t_conv = timed(conv, x)
        for mode in ("factored", "effective"):
            layer = RFConv2d(64, 64, order, (k / 6.5,), size=k, mode=mode)
            rows.append({"kernel": f"{k}x{k}", "basis filters": layer.n_basis, "mode": mode,
                         "learned parameters": layer.alpha.numel(), "nn.Conv2d parameters": conv.weight.numel(),
                         "time / nn.Conv2d": timed(layer, x) / t_conv})
    return tables.show(pd.DataFrame(rows), digits=3, caption=tables.here())


def findings(records) -> list[str]:
    """The chapter's summary: one line per target, computed from the shown runs."""
    from .. import tables
    sizes, abl, sub, c10, c100 = (records[k] for k in ("mnist_sizes", "ablation", "class_subsets", "cifar10",
                                                       "cifar100"))
    err = sizes.arrays["error"]
    gap = err[1].mean(1) - err[0].mean(1)
    res = {v: r["top1"] for v, r in abl.metrics["results"].items()}
    lines = ["| target | shown run | reading |", "|---|---|---|",
             f"| R-F6 MNIST sizes | {tables.run_label(sizes)}, {err.shape[2]} seed(s) | CNN minus RFNN error "
             + ", ".join(f"{g:+.2f}" for g in gap) + " points at " + ", ".join(str(int(s)) for s in sizes.arrays["sizes"])
             + " images; Scattering not re-run |"]
    if "nin" in res:
        best = max(res, key=res.get)
        lines.append(f"| R-T1 / R-T2 ablations | {tables.run_label(abl)} | best variant {best} ({res[best]:.1f}%), "
                     f"NiN {res['nin']:.1f}%; see the readings above (a stand-in: not comparable) |")
    gaps4 = sub.arrays["top1"][1] - sub.arrays["top1"][0]
    lines.append(f"| R-T4 class subsets | {tables.run_label(sub)} | RFNiN-v1 minus NiN "
                 + ", ".join(f"{g:+.1f}" for g in gaps4) + " points at " + ", ".join(
                     str(int(c)) for c in sub.arrays["class_counts"]) + " classes |")
    for r in (c10, c100):
        t = r.metrics["results"]
        lines.append(f"| R-T3 {r.metrics['dataset']} | {tables.run_label(r)} | RFNiN {t['rfnin']['top1']:.1f}%, NiN "
                     f"{t['nin']['top1']:.1f}% (thesis RFNiN {THESIS_T3[r.metrics['dataset']]['RFNiN']}%) |")
    lines += ["| R-F5 basis weights | the ablation and MNIST runs | not decidable from short runs (weights near "
              "initialisation) |", "| R-T5 3-D MRI | not reproducible (restricted clinical data) | the 3-D layer is "
              "tested on a synthetic volume |"]
    return lines


def steering_errors() -> tuple[float, float]:
    """Eq. 22 checked: the largest error of the basis steered to 24 angles against the filters evaluated at
    rotated coordinates (float64, order 4, sigma 1.5), and the relative error of steering against a bilinear
    image rotation by 30 degrees (sigma 4, away from the border)."""
    from ..data.transforms import rotate
    from ..layers.gaussian_basis import gaussian_derivative_at, gaussian_derivative_basis, steer
    b64 = gaussian_derivative_basis(4, 1.5, dtype=torch.float64)
    size = b64.shape[-1]
    g = np.arange(size) - (size - 1) / 2
    X, Y = np.meshgrid(g, g)
    worst = 0.0
    for deg in range(0, 360, 15):
        th = math.radians(deg)
        c, s = math.cos(th), math.sin(th)
        st = steer(b64, 4, th)
        for k, (i, j) in enumerate(basis_orders(4)):
            worst = max(worst, np.abs(st[k].numpy() - gaussian_derivative_at(i, j, c * X - s * Y, s * X + c * Y, 1.5,
                                                                              size)).max())
    wide = gaussian_derivative_basis(3, 4.0, size=41)
    turned = rotate(wide[:, None], torch.full((10,), 30.0))[:, 0]
    err = ((turned - steer(wide, 3, math.radians(30)))[:, 8:-8, 8:-8].abs().max() / wide.abs().max()).item()
    return worst, err

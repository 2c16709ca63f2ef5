"""HE-CNN on colour images: CIFAR-10/100 (Table 3, E-T3) and STL-10 (Table 4, E-T4).

Every model of the two tables that the document trained itself: the plain
network, the Z4 and D8 G-CNNs (e2cnn), Z4-HE-CNN and Z4-HE-CNN-L, and the D8
versions (the Z4 hypernetwork model averaged over D8 / Z4). Models quoted from
other papers (partial equivariance, the E(2)-steerable WRN) are not trained.

Data: real CIFAR-10 (torchvision's files or the offline JPEG mirror) and STL-10
when present, else a labelled Fashion-MNIST stand-in (see `hyperbook.data.cifar`,
`hyperbook.data.stl10`); CIFAR-100 and STL-10 are not available here, so they run
on stand-ins outside `full`. The source is recorded with every run; a `full`
run never falls back (a missing dataset is an error naming it). Images are standardised per channel with the training
set's mean and std; no augmentation (the document names none).

Protocol (appendix C.3): Adam, batch 64; learning rate 2.5e-5 (CIFAR) and
1.5e-5 (STL-10) for the hypernetwork models, which generate the convolutional
and linear layers while batch norms are learned directly; parameters averaged
over the batch. The document gives no learning rate for its baselines; we use
Adam at 1e-3. Tested in batches of the training size (64): with batch-averaged
parameters a prediction depends on its batch. It gives no epoch count for these tables either; `full` runs 200
epochs (its MNIST runs needed 150-250 before the hypernetwork models' accuracy
rose). D8 hypernetwork models train as Z4 models for the first half (as in C.3
for MNIST), then with the D8 average.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cifar import load_cifar_or_standin
from ..data.stl10 import load_stl10_or_standin
from ..errors import UnknownChoiceError
from ..models.hecnn import D4nHECNN, count_parameters
from ..models.hecnn_backbones import VARIANTS, build_backbone
from ..profiles import unknown_training_profile
from ..results import config_hash
from ..train import checkpoint_path, fit, seed_everything, step_generator
from .hecnn import accuracy, eval_batch_size

CHAPTER = "hecnn"
T3_ARCHS = ("residual", "laine13")
T3_DATASETS = ("cifar10", "cifar100")
T4_VARIANTS = ("cnn", "z4_gcnn", "d8_gcnn", "z4_hecnn", "z4_hecnn_l", "d8_hecnn_l")
CLASSES = {"cifar10": 10, "cifar100": 100, "stl10": 10}
EPOCHS_FULL = 200
REDUCED_WIDTH = {"residual": 1.0, "laine13": 0.25, "wrn16_8": 0.125}

# experiment -> (architecture, variant, dataset)
RUNS = {f"t3_{a}_{v}_{d}": (a, v, d) for a in T3_ARCHS for d in T3_DATASETS for v in VARIANTS}
RUNS.update({f"t4_wrn16_8_{v}": ("wrn16_8", v, "stl10") for v in T4_VARIANTS})


@dataclass(frozen=True)
class ImageConfig:
    arch: str
    variant: str
    dataset: str
    width: float              # channel multiplier of the main network (1 = the document's size)
    steps: int
    batch_size: int
    lr: float
    n_train: int = 0          # 0: the whole training split
    n_test: int = 0           # 0: the whole test split
    param_mode: str = "batch"
    allow_standin: bool = True   # False in `full`: only the real dataset
    seed: int = 0
    code_version: int = 2     # 2: He-scale generated filters, pool 2 in the hypernetworks' main nets, test batch


def _lr(variant: str, dataset: str) -> float:
    if "hecnn" not in variant:
        return 1e-3
    return 1.5e-5 if dataset == "stl10" else 2.5e-5


def _train_size(dataset: str) -> int:
    return 10_400 if dataset == "stl10" else 50_000


def config_for(experiment: str):
    if experiment not in RUNS:
        raise UnknownChoiceError("HE-CNN colour-image experiment", experiment, RUNS)
    arch, variant, dataset = RUNS[experiment]
    lr = _lr(variant, dataset)

    def make(profile: str) -> ImageConfig:
        if profile == "smoke":      # every code path at a tiny width, on a few hundred images
            return ImageConfig(arch, variant, dataset, width=1 / 16, steps=2, batch_size=4, lr=lr, n_train=256,
                               n_test=16)
        if profile == "reduced":    # a CPU-sized run: a fraction of an epoch; full width only for the small residual net
            if arch == "wrn16_8":   # 96 px: 300 steps of 64 measured 6.8 CPU h over the six models (D8 G-CNN 39 s a
                # step), so E-T4's reduced run is a code-path check: 40 steps of 32 (1,280 images), 500 test images
                return ImageConfig(arch, variant, dataset, width=REDUCED_WIDTH[arch], steps=40, batch_size=32, lr=lr,
                                   n_test=500)
            return ImageConfig(arch, variant, dataset, width=REDUCED_WIDTH[arch], steps=300, batch_size=64, lr=lr,
                               n_test=2000)
        if profile == "full":
            steps = EPOCHS_FULL * _train_size(dataset) // 64
            return ImageConfig(arch, variant, dataset, width=1.0, steps=steps, batch_size=64, lr=lr,
                               allow_standin=False)
        raise unknown_training_profile(profile)
    return make


# ----------------------------------------------------------------------------- data
def load_split(dataset: str, data_dir, device="cpu", n_train: int = 0, n_test: int = 0, allow_standin: bool = True):
    """((train x, y), (test x, y), source) as uint8 images [N, 3, H, W] on `device` (n_train / n_test > 0: at
    least that many; only the STL-10 stand-in, which is resized on load, uses them). allow_standin=False (the
    `full` profile): the real dataset or a DatasetMissingError naming it."""
    if dataset not in CLASSES:
        raise UnknownChoiceError("HE-CNN colour-image dataset", dataset, CLASSES)
    if dataset == "stl10":
        return load_stl10_or_standin(data_dir, device, n_train, n_test, allow_standin=allow_standin)
    classes = CLASSES[dataset]
    tr_x, tr_y, source = load_cifar_or_standin(data_dir, classes, train=True, device=device,
                                               allow_standin=allow_standin)
    te_x, te_y, _ = load_cifar_or_standin(data_dir, classes, train=False, device=device,
                                          allow_standin=allow_standin)
    return (tr_x, tr_y), (te_x, te_y), source


_CACHE: dict = {}


def _cached_split(dataset, data_dir, device, n_train, n_test, allow_standin=True):
    key = (dataset, str(data_dir), str(device), n_train, n_test, allow_standin)
    if key not in _CACHE:
        _CACHE.clear()      # one dataset at a time: STL-10 alone is 1.2 GB as uint8
        _CACHE[key] = load_split(dataset, data_dir, device, n_train, n_test, allow_standin)
    return _CACHE[key]


def channel_stats(images_u8: torch.Tensor, chunk: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images [N, 3, H, W] (in chunks: no full float copy)."""
    s = torch.zeros(3, dtype=torch.float64, device=images_u8.device)
    s2 = torch.zeros_like(s)
    for i in range(0, images_u8.shape[0], chunk):
        x = images_u8[i:i + chunk].double()
        s += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    n = images_u8.shape[0] * images_u8.shape[2] * images_u8.shape[3]
    mean = s / n
    return mean.float(), (s2 / n - mean ** 2).sqrt().float()


def standardise(images_u8, mean, std):
    return (images_u8.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


# ----------------------------------------------------------------------------- training and testing
def train_experiment(experiment: str):
    """fn(config, ctx) for ctx.run: train one model of Table 3 / 4 and test it."""
    target = "E-T4" if experiment.startswith("t4") else "E-T3"

    def fn(config: ImageConfig, ctx):
        seed_everything(config.seed)
        device = ctx.device
        (tr_x, tr_y), (te_x, te_y), source = _cached_split(config.dataset, ctx.data_dir, device, config.n_train,
                                                          config.n_test, config.allow_standin)
        if config.n_train:
            tr_x, tr_y = tr_x[:config.n_train], tr_y[:config.n_train]
        if config.n_test:
            te_x, te_y = te_x[:config.n_test], te_y[:config.n_test]
        mean, std = channel_stats(tr_x)
        model = build_backbone(config.arch, config.variant, CLASSES[config.dataset], config.width).to(device)
        n, mode = tr_x.shape[0], config.param_mode

        def batch_fn(step):
            idx = torch.randint(n, (config.batch_size,), generator=step_generator(config.seed, step)).to(device)
            return standardise(tr_x[idx], mean, std), tr_y[idx], step

        def loss_fn(m, batch):
            x, y, step = batch
            if isinstance(m, D4nHECNN):
                m.average = step >= config.steps // 2
            return F.cross_entropy(m(x, mode), y)

        ckpt = checkpoint_path(ctx.results_dir, CHAPTER, experiment, config_hash(config))
        result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, device=device, checkpoint=ckpt,
                     checkpoint_every=500, log_every=max(1, config.steps // 40), desc=experiment, progress=False)
        if isinstance(model, D4nHECNN):
            model.average = True
        acc = accuracy(model, te_x, te_y, mode, batch=eval_batch_size(config),
                       prepare=lambda x: standardise(x, mean, std))
        metrics = {"targets": [target], "accuracy": acc, "data_source": source, "parameters": count_parameters(model),
                   "n_train": n, "n_test": int(te_x.shape[0]), "steps": config.steps,
                   "epochs": config.steps * config.batch_size / n, "throughput": result.items_per_s,
                   "train_wall_s": result.wall_s, "final_loss": result.losses[-1][1],
                   "test_batch": eval_batch_size(config), "lr": config.lr}
        return metrics, {"loss_curve": np.array(result.losses, dtype=np.float64)}
    return fn


def run(ctx, name: str):
    """Record (or load) one experiment of RUNS."""
    return ctx.run(name, config_for(name), train_experiment(name))


# ----------------------------------------------------------------------------- the chapter's tables and findings
# The document's Tables 3 and 4, as printed: (base, group, model, CIFAR-10, CIFAR-100, our variant or None for a
# model quoted from another paper) and (model, STL-10, our variant or None).
TABLE3 = [
    ("residual", "R2", "CNN", 83.11, 47.99, "cnn"), ("residual", "Z4", "G-CNN", 83.73, 52.35, "z4_gcnn"),
    ("residual", "Z4", "Partial equivariance (quoted)", 86.15, 53.91, None),
    ("residual", "Z4", "HE-CNN", 85.99, 53.56, "z4_hecnn"), ("residual", "Z4", "HE-CNN-L", 83.92, 52.80, "z4_hecnn_l"),
    ("residual", "D8", "G-CNN", 85.55, 55.55, "d8_gcnn"),
    ("residual", "D8", "Partial equivariance (quoted)", 89.00, 57.26, None),
    ("residual", "D8", "HE-CNN", 88.67, 56.95, "d8_hecnn"), ("residual", "D8", "HE-CNN-L", 86.34, 55.73, "d8_hecnn_l"),
    ("laine13", "R2", "CNN", 91.21, 67.14, "cnn"), ("laine13", "Z4", "G-CNN", 89.73, 65.97, "z4_gcnn"),
    ("laine13", "Z4", "Partial equivariance (quoted)", 92.28, 69.83, None),
    ("laine13", "Z4", "HE-CNN", 91.95, 66.38, "z4_hecnn"), ("laine13", "Z4", "HE-CNN-L", 90.12, 66.14, "z4_hecnn_l"),
    ("laine13", "D8", "G-CNN", 90.55, 67.70, "d8_gcnn"),
    ("laine13", "D8", "Partial equivariance (quoted)", 91.99, 70.80, None),
    ("laine13", "D8", "HE-CNN", 92.07, 68.89, "d8_hecnn"), ("laine13", "D8", "HE-CNN-L", 90.64, 68.11, "d8_hecnn_l")]
TABLE4 = [("Base WRN16/8", 87.26, "cnn"), ("Z4-WRN16/8", 87.89, "z4_gcnn"), ("D8-WRN16/8", 88.87, "d8_gcnn"),
          ("WRN16/8-{D8D4D1}, E(2)-steerable (quoted)", 90.20, None), ("Z4-HE-WRN16/8", 90.08, "z4_hecnn"),
          ("Z4-HE-WRN16/8-L", 88.92, "z4_hecnn_l"), ("D8-HE-WRN16/8-L", 89.13, "d8_hecnn_l")]
BASES = {"residual": "Residual network", "laine13": "13-layer CNN"}


def _image_row(image_records, exp, doc, quoted: str, **lead):
    from .. import tables
    rec = image_records.get(exp) if exp else None
    if rec is None:
        return {**lead, "document": doc, "ours": None, "unit": "%", "parameters": None, "width": None,
                "run": quoted}
    return {**lead, "document": doc, "ours": rec.metrics["accuracy"], "unit": "%",
            "not_comparable": not tables.comparable(rec), "parameters": rec.metrics["parameters"],
            "width": config_for(exp)(rec.profile).width, "run": tables.run_label(rec)}


def t3_table(image_records):
    """E-T3: CIFAR-10 and CIFAR-100, the document's Table 3 beside ours (per row: the run and its data)."""
    from .. import tables
    rows = []
    for base, group, model, c10, c100, variant in TABLE3:
        for dataset, doc in (("CIFAR-10", c10), ("CIFAR-100", c100)):
            exp = f"t3_{base}_{variant}_{dataset.replace('-', '').lower()}" if variant else None
            rows.append(_image_row(image_records, exp, doc, "quoted (Romero & Lohit, 2022), not rerun",
                                   base=BASES[base], group=group, model=model, dataset=dataset))
    shown = [r for k, r in image_records.items() if k.startswith("t3_")]
    return tables.show(tables.compare(rows), caption=tables.caption(shown))


def t4_table(image_records):
    """E-T4: STL-10, the document's Table 4 beside ours."""
    from .. import tables
    rows = [_image_row(image_records, f"t4_wrn16_8_{v}" if v else None, doc,
                       "quoted (Weiler & Cesa, 2019), not rerun", model=model) for model, doc, v in TABLE4]
    shown = [r for k, r in image_records.items() if k.startswith("t4_")]
    return tables.show(tables.compare(rows), caption=tables.caption(shown))


def full_size_table():
    """Parameters of every colour-image model at the document's size (width 1), counted without training, and
    the numbers a hypernetwork model generates per image."""
    import pandas as pd
    from .. import tables
    from ..models.hecnn_backbones import generated_numbers
    from ..models.hecnn_gcnn import count_only
    rows = []
    for arch in ("residual", "laine13", "wrn16_8"):
        for variant in VARIANTS:
            if "gcnn" in variant:     # e2cnn samples its filter bases on the CPU: build without initialising
                with count_only():
                    m = build_backbone(arch, variant, 10)
            else:
                with torch.device("meta"):
                    m = build_backbone(arch, variant, 10)
            rows.append({"network": arch, "variant": variant, "parameters": count_parameters(m),
                         "generated per image": generated_numbers(m) if "hecnn" in variant else None})
    return tables.show(pd.DataFrame(rows), caption="counted from the model objects at width 1, no training")


def image_findings(image_records) -> list[str]:
    """E-T3 / E-T4 in sentences: which cells ran on real data, which on a stand-in, and the ordering of ours."""
    from .. import tables
    real = [k for k, r in image_records.items() if not tables.data_of(r) or "stand-in" not in tables.data_of(r)]
    profiles = sorted({r.profile for r in image_records.values()})
    best = {}
    for k, r in image_records.items():
        arch, variant, dataset = RUNS[k]
        best.setdefault((arch, dataset), []).append((r.metrics["accuracy"], variant))
    order = "; ".join(f"{arch} on {dataset}: best {max(rows)[1]} {max(rows)[0]:.1f}%, worst {min(rows)[1]} "
                      f"{min(rows)[0]:.1f}%" for (arch, dataset), rows in best.items())
    return [f"* E-T3 / E-T4: {len(image_records)} runs shown ({', '.join(profiles)}), {len(real)} of them on the real "
            f"dataset (the `run` column names each); the others on a labelled stand-in, not comparable with the "
            f"document. Ours: {order}. "
            + ("None of these runs is long enough to speak to the document's ranking after 200 epochs."
               if "full" not in profiles else "")]


def main(argv=None) -> None:
    """Train one or more experiments of RUNS: each full run takes hours on a GPU, so they are started one by one,
    e.g. `python -m hyperbook.experiments.hecnn_images t4_wrn16_8_z4_hecnn --profile full --device cuda`."""
    import argparse
    import sys

    from ..context import RunContext
    from ..errors import BookError
    parser = argparse.ArgumentParser(prog="python -m hyperbook.experiments.hecnn_images", description=main.__doc__)
    parser.add_argument("experiments", nargs="+", help="names from RUNS (t3_<net>_<variant>_<dataset>, t4_wrn16_8_<variant>)")
    parser.add_argument("--profile", default="full", help="smoke | reduced | full")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:                                      # unknown names, profiles or devices fail before anything trains
        for name in args.experiments:
            config_for(name)(args.profile)
        ctx = RunContext.from_params(CHAPTER, args.profile, args.device, None, None, True, 0)
    except BookError as err:
        sys.exit(f"error: {err}")
    for name in args.experiments:
        record = run(ctx, name)
        print(f"{name}: {record.metrics['accuracy']:.2f}% ({record.source()}; {record.metrics['data_source']})")


if __name__ == "__main__":
    main()

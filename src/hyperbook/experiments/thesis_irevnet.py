"""i-RevNet chapter (thesis ch. 6): training comparison, round-off of the inverse, Jacobian spectrum,
feature-space interpolation, linear separation with depth, PCA dimension, and memory.

ImageNet cannot be had here. Every trained number comes from real CIFAR-10
(scaled to [0, 1], the thesis's pixel range; random crops of 4 px and flips as in
the authors' CIFAR code), a stand-in for ImageNet, with models of the same
construction (models.irevnet: cifar_resnet, cifar_revnet, cifar_a = the authors'
CIFAR i-RevNet, cifar_b = a bijective one); the chapter labels them as a stand-in.
Data come from ``hyperbook.data.cifar.load_cifar_or_standin`` with
``allow_standin=(profile != "full")``: the source is recorded beside every number.

One experiment per model ("train_<model>"): it measures the untrained model's
round-off (I-E1), trains, evaluates, and runs the analyses the thesis makes of
that model, so a recorded run holds every array a figure needs and no weights.
"""
from __future__ import annotations

import copy
import functools
import json
import subprocess
import warnings
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..profiles import unknown_training_profile
from ..data.cifar import is_standin, load_cifar_or_standin
from ..data.transforms import random_crop_flip
from ..errors import UnknownChoiceError
from ..models.irevnet import IRevNet, build, parameter_count, relative_error
from ..results import config_hash
from ..train import checkpoint_path, fit, seed_everything, step_generator

CHAPTER = "thesis_irevnet"
MODELS = ("cifar_resnet", "cifar_revnet", "cifar_a", "cifar_b")
LABELS = {"cifar_resnet": "ResNet", "cifar_revnet": "RevNet", "cifar_a": "i-RevNet (a)", "cifar_b": "i-RevNet (b)"}
BIJECTIVE, RESNET = "cifar_b", "cifar_resnet"
# Table 9 (ILSVRC-2012 top-1 error %, parameters) and the thesis's round-off numbers (Sec. 6.4.2)
THESIS_T9 = {"cifar_resnet": (24.7, "26M"), "cifar_revnet": (25.2, "28M"),
             "cifar_a": (24.7, "181M"), "cifar_b": (26.7, "29M")}
THESIS_E1 = {"noise": 5e-6, "validation": 3e-6}
THESIS_ENERGY = {1000: 0.80, 10000: 0.97}      # share of squared singular values, of 3 x 224^2 = 150528
THESIS_DIM = 3 * 224 * 224
STANDIN = "stand-in for ImageNet"
# Thesis: 600k iterations, lr 0.1 divided by ten every 160k iterations: three drops (160k, 320k, 480k)
DROP_EVERY = 160 / 600
NESTEROV = False        # "SGD and momentum of 0.9": plain momentum
EXPERIMENTS = tuple(f"train_{m}" for m in MODELS) + ("memory",)


# ----------------------------------------------------------------------------- data
def cifar_unit(data_dir, train: bool, device="cpu", allow_standin: bool = True):
    """CIFAR-10 as float [N, 3, 32, 32] in [0, 1], labels, and the source string (the shared loader's)."""
    x, labels, source = _cifar_cached(str(data_dir), train, str(device), allow_standin)
    return x.clone(), labels.clone(), source


@functools.lru_cache(maxsize=2)
def _cifar_cached(data_dir: str, train: bool, device: str, allow_standin: bool):
    images, labels, source = load_cifar_or_standin(data_dir, 10, train=train, device=device,
                                                   allow_standin=allow_standin)
    return images.float().div(255.0), labels, source


def lr_schedule(steps: int):
    """lr multiplier: / 10 after every DROP_EVERY of the run, at most three times (thesis: 160k, 320k, 480k of 600k)."""
    every = max(1, round(DROP_EVERY * steps))
    return lambda step: 0.1 ** min(3, step // every)


# ----------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class TrainConfig:
    model: str
    steps: int
    batch_size: int
    lr: float = 0.1                  # SGD, plain momentum 0.9 (thesis: ImageNet setup of RevNets)
    weight_decay: float = 1e-4
    allow_standin: bool = True       # = (profile != "full")
    precision: str = "fp32"          # "bf16": opt-in autocast on CUDA
    n_test: int = 10000
    n_noise: int = 10000             # I-E1: |X1| = 10^4 uniform noises
    n_recon: int = 10000             # I-E1: validation images
    probe_train: int = 3000          # I-F21/F22 classifier training features
    probe_test: int = 1000
    jacobian_images: int = 1         # I-F19
    interp_pairs: int = 4            # I-F20
    interp_steps: int = 9
    blocks: tuple = ()               # blocks per stage; () = the model's own (18-18-18 for the authors' CIFAR net)
    seed: int = 0
    code_version: int = 2            # 2: CIFAR-10 stand-in, 1-3-1 kernels, three lr drops


@dataclass(frozen=True)
class MemoryConfig:
    cases: tuple                     # (model name, batch, height) triples
    repeats: int = 1                 # fresh-process peak-memory probes per case (0: none)
    seed: int = 0
    code_version: int = 4            # 2: VmHWM reset before the step; 3: memory-saving backward frees grads per block; 4: 1-3-1 kernels


def train_config_for(model: str):
    if model not in MODELS:
        raise UnknownChoiceError("i-RevNet chapter model", model, MODELS)

    def make(profile: str) -> TrainConfig:
        if profile == "smoke":
            return TrainConfig(model, steps=4, batch_size=8, n_test=128, n_noise=32, n_recon=32,
                               probe_train=150, probe_test=60, interp_pairs=2, interp_steps=5,
                               blocks=SMOKE_BLOCKS)
        if profile == "reduced":   # sized to about 5 min per model on an idle 2-core CPU (see REDUCED_STEPS)
            return TrainConfig(model, steps=REDUCED_STEPS[model], batch_size=32, n_test=2000, n_noise=1000,
                               n_recon=1000, probe_train=2000, probe_test=1000, blocks=REDUCED_BLOCKS)
        if profile == "full":      # the authors' CIFAR protocol length: 200 epochs of batch 128, no stand-in
            return TrainConfig(model, steps=78200, batch_size=128, allow_standin=False, probe_train=20000,
                               probe_test=10000, jacobian_images=4, interp_pairs=6, interp_steps=11)
        raise unknown_training_profile(profile)
    return make


# reduced steps per model: 5 minutes at the step time measured on the 2-core build machine (batch 32)
REDUCED_STEPS = {"cifar_resnet": 150, "cifar_revnet": 200, "cifar_a": 200, "cifar_b": 400}
# CPU-sized runs keep every model's widths and strides but fewer blocks per stage (the full depth, 18-18-18,
# is 9-16 s a step at batch 32 on 2 cores): smoke one block per stage, reduced two. `full` keeps the document's.
SMOKE_BLOCKS = (1, 1, 1)
REDUCED_BLOCKS = (2, 2, 2)


def memory_config_for(profile: str) -> MemoryConfig:
    if profile == "smoke":
        return MemoryConfig(cases=(("cifar_b", 16, 32), ("imagenet_b", 2, 64)), repeats=0)
    if profile == "reduced":
        return MemoryConfig(cases=(("mnist_b", 256, 32), ("cifar_b", 64, 32), ("imagenet_b", 2, 128)), repeats=1)
    if profile == "full":
        return MemoryConfig(cases=(("mnist_b", 256, 32), ("cifar_b", 128, 32), ("imagenet_b", 8, 224)))
    raise unknown_training_profile(profile)


# ----------------------------------------------------------------------------- measurements
@torch.no_grad()
def roundtrip_errors(model, x: torch.Tensor, chunk: int = 500) -> np.ndarray:
    """Per-sample ||x - Phi^-1 Phi x|| / ||x|| (eval mode)."""
    model.eval()
    out = []
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk]
        out.append(relative_error(xs, model.inverse(model.features(xs))).double().cpu())
    return torch.cat(out).numpy()


def e1_table(model, images: torch.Tensor, seed: int, n_noise: int) -> dict:
    """I-E1 for one model state: mean relative error on noise and on images, float32 and float64."""
    g = torch.Generator().manual_seed(seed + 99)
    noise = torch.rand(n_noise, *images.shape[1:], generator=g).to(images.device)
    out = {}
    for dtype, name in ((torch.float32, "float32"), (torch.float64, "float64")):
        m = copy.deepcopy(model).to(dtype)
        for set_name, x in (("noise", noise), ("validation", images)):
            err = roundtrip_errors(m, x.to(dtype))
            out[f"{set_name}_{name}"] = float(err.mean())
            out[f"{set_name}_{name}_max"] = float(err.max())
    return out


@torch.no_grad()
def evaluate(model, x, y, chunk: int = 500):
    model.eval()
    correct, loss = 0, 0.0
    for s in range(0, len(x), chunk):
        logits = model(x[s:s + chunk])
        correct += (logits.argmax(1) == y[s:s + chunk]).sum().item()
        loss += F.cross_entropy(logits, y[s:s + chunk], reduction="sum").item()
    return correct / len(x), loss / len(x)


def feature_jacobian(m, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """d features / d input at one input x [1, ...] of an eval-mode model, as [outputs, inputs].

    Row blocks come from ordinary batched backward passes over `chunk` copies of x (copy k picks output
    start + k): in eval mode every sample is independent, and this is many times faster on a CPU than
    torch.func.jacrev, whose vmap falls back to slow per-sample paths for some of the network's ops.
    """
    with torch.no_grad():
        d_out = m.features(x).numel()
    rows = []
    for start in range(0, d_out, chunk):
        k = min(chunk, d_out - start)
        xs = x.expand(k, *x.shape[1:]).clone().requires_grad_(True)
        y = m.features(xs).flatten(1)
        picked = y[torch.arange(k), torch.arange(start, start + k)].sum()
        (grad,) = torch.autograd.grad(picked, xs)
        rows.append(grad.flatten(1))
    return torch.cat(rows)


def jacobian_spectrum(model, x: torch.Tensor) -> np.ndarray:
    """Singular values of d(Phi)/dx at one image, float64, sorted, normalised by the largest."""
    m = copy.deepcopy(model).double().eval()
    x = x.double().unsqueeze(0)
    s = torch.linalg.svdvals(feature_jacobian(m, x))
    return (s / s[0]).detach().numpy()


def energy_share(s: np.ndarray, k: int) -> float:
    e = np.cumsum(s.astype(np.float64) ** 2)
    return float(e[min(k, len(e)) - 1] / e[-1])


@torch.no_grad()
def interpolations(model, x0, x1, steps: int) -> np.ndarray:
    """[pairs, 2 (feature line, pixel line), steps, (C,) H, W] (C only when > 1): Phi^-1(t Phi x0 + (1 - t) Phi x1) beside pixel blends."""
    model.eval()
    t = torch.linspace(1, 0, steps, device=x0.device).view(1, steps, 1, 1, 1)   # left = x0, right = x1
    p0, p1 = model.features(x0).unsqueeze(1), model.features(x1).unsqueeze(1)
    phi_t = t * p0 + (1 - t) * p1                                                 # [pairs, steps, C, h, w]
    recon = model.inverse(phi_t.flatten(0, 1)).view(len(x0), steps, *x0.shape[1:])
    pixel = t * x0.unsqueeze(1) + (1 - t) * x1.unsqueeze(1)
    out = torch.stack([recon, pixel], 1)
    return (out[:, :, :, 0] if x0.shape[1] == 1 else out).cpu().numpy()


@torch.no_grad()
def averaged_features(model, x, chunk: int = 500) -> list[np.ndarray]:
    """Spatially averaged features after S~ (or the stem) and after every block: one [N, C_j] array per depth."""
    model.eval()
    per_depth = None
    for s in range(0, len(x), chunk):
        feats = [f.mean(dim=(2, 3)).cpu().numpy() for f in model.features_at_depths(x[s:s + chunk])]
        per_depth = [[f] for f in feats] if per_depth is None else [p + [f] for p, f in zip(per_depth, feats)]
    return [np.concatenate(p) for p in per_depth]


def probe_accuracies(train_f: np.ndarray, train_y: np.ndarray, test_f: np.ndarray, test_y: np.ndarray,
                     seed: int = 0) -> tuple[float, float, float]:
    """(linear SVM accuracy, 1-NN accuracy, chosen C) on features standardised on the training set."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC
    warnings.filterwarnings("ignore", category=ConvergenceWarning)   # few iterations on tiny smoke sets
    scaler = StandardScaler().fit(train_f)
    a, b = scaler.transform(train_f), scaler.transform(test_f)
    # C cross-validated on a held-out fifth of the training features (the thesis: on a small subset)
    n_fit = int(0.8 * len(a))
    best_c, best = 1.0, -1.0
    for c in (0.01, 0.1, 1.0):
        acc = LinearSVC(C=c, max_iter=3000, random_state=seed).fit(a[:n_fit], train_y[:n_fit]).score(
            a[n_fit:], train_y[n_fit:])
        if acc > best:
            best_c, best = c, acc
    svm = LinearSVC(C=best_c, max_iter=3000, random_state=seed).fit(a, train_y).score(b, test_y)
    nn1 = KNeighborsClassifier(n_neighbors=1).fit(a, train_y).score(b, test_y)
    return float(svm), float(nn1), best_c


def depth_probe(model, xtr, ytr, xte, yte, seed: int) -> np.ndarray:
    """I-F21: [depth, (svm, 1-NN, feature dim)]."""
    ftr, fte = averaged_features(model, xtr), averaged_features(model, xte)
    rows = []
    for a, b in zip(ftr, fte):
        svm, nn1, _ = probe_accuracies(a, ytr.cpu().numpy(), b, yte.cpu().numpy(), seed)
        rows.append((svm, nn1, a.shape[1]))
    return np.array(rows, dtype=np.float64)


def pca_probe(model, xtr, ytr, xte, yte, seed: int) -> np.ndarray:
    """I-F22: [d, (d, svm, 1-NN)] on the final layer's averaged, standardised features projected on d PCs."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    ftr, fte = averaged_features(model, xtr)[-1], averaged_features(model, xte)[-1]
    scaler = StandardScaler().fit(ftr)
    ftr, fte = scaler.transform(ftr), scaler.transform(fte)
    # PCA has at most min(samples, features) components: a small probe set caps the largest d
    top = min(ftr.shape)
    dims = sorted({d for d in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if d <= top} | {top})
    pca = PCA(n_components=max(dims), random_state=seed).fit(ftr)
    ptr, pte = pca.transform(ftr), pca.transform(fte)
    rows = []
    for d in dims:
        svm, nn1, _ = probe_accuracies(ptr[:, :d], ytr.cpu().numpy(), pte[:, :d], yte.cpu().numpy(), seed)
        rows.append((d, svm, nn1))
    return np.array(rows, dtype=np.float64)


# ----------------------------------------------------------------------------- the training experiment
def run_train(config: TrainConfig, ctx) -> tuple[dict, dict]:
    device = ctx.device
    seed_everything(config.seed)
    train_x, train_y, source = cifar_unit(ctx.data_dir, True, device, config.allow_standin)
    test_x, test_y, _ = cifar_unit(ctx.data_dir, False, device, config.allow_standin)
    test_x, test_y = test_x[:config.n_test], test_y[:config.n_test]
    model = build(config.model, n_classes=10, blocks=config.blocks or None).to(device)
    invertible = isinstance(model, IRevNet)
    metrics = {"model": config.model, "label": LABELS[config.model], "parameters": parameter_count(model),
               "blocks": list(config.blocks) if config.blocks else "document's",
               "data": f"{source}, {STANDIN}", "source": source, "stand_in": True,
               "data_is_standin_for_cifar": is_standin(source), "steps": config.steps,
               "batch_size": config.batch_size, "targets": ["I-T9", "I-F18"]}
    arrays = {}
    recon_x = test_x[:config.n_recon]
    if invertible:
        metrics["injective_only"] = model.injective_only
        metrics["e1_untrained"] = e1_table(model, recon_x, config.seed, config.n_noise)
        metrics["targets"].append("I-E1")
        if config.model == BIJECTIVE:
            arrays["jacobian_sv_untrained"] = jacobian_spectrum(model, test_x[0])

    def batch_fn(step):
        g = step_generator(config.seed, step)
        idx = torch.randint(len(train_x), (config.batch_size,), generator=g).to(device)
        return random_crop_flip(train_x[idx], g), train_y[idx]

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    name = f"train_{config.model}"
    result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, optimizer="sgd",
                 weight_decay=config.weight_decay, lr_schedule=lr_schedule(config.steps), device=device,
                 nesterov=NESTEROV, precision=config.precision,
                 checkpoint=checkpoint_path(ctx.results_dir, CHAPTER, name, config_hash(config)),
                 checkpoint_every=200, log_every=max(1, config.steps // 80), desc=name)
    acc, test_loss = evaluate(model, test_x, test_y)
    metrics.update({"test_accuracy": acc, "test_error_pct": 100 * (1 - acc), "test_loss": test_loss,
                    "throughput": round(result.items_per_s, 1), "train_wall_s": round(result.wall_s, 1)})
    arrays["loss_curve"] = np.array(result.losses, dtype=np.float64)

    ptr_x, ptr_y = train_x[:config.probe_train], train_y[:config.probe_train]
    pte_x, pte_y = test_x[:config.probe_test], test_y[:config.probe_test]
    if config.model in (BIJECTIVE, RESNET):
        arrays["depth_probe"] = depth_probe(model, ptr_x, ptr_y, pte_x, pte_y, config.seed)
        metrics["targets"].append("I-F21")
    if invertible:
        metrics["e1_trained"] = e1_table(model, recon_x, config.seed, config.n_noise)
    if config.model == BIJECTIVE:
        if config.jacobian_images:      # 0: no I-F19 spectrum (`hyperbook time` skips this fixed cost)
            sv = np.stack([jacobian_spectrum(model, test_x[k]) for k in range(config.jacobian_images)])
            arrays["jacobian_sv"] = sv
            dim = sv.shape[1]
            metrics["jacobian"] = {
                "dimension": dim,
                # the thesis's 10^3 and 10^4 of 150528 coefficients, as the same fractions of ours
                "energy_at_thesis_fractions": {str(k): energy_share(sv[0], max(1, round(k / THESIS_DIM * dim)))
                                               for k in THESIS_ENERGY},
                "k_for_80pct": int(np.searchsorted(np.cumsum(sv[0] ** 2) / np.sum(sv[0] ** 2), 0.80) + 1),
                "k_for_97pct": int(np.searchsorted(np.cumsum(sv[0] ** 2) / np.sum(sv[0] ** 2), 0.97) + 1),
                "condition_number": float(1 / sv[0, -1]),
            }
        g = torch.Generator().manual_seed(config.seed + 7)
        # pairs of different digits from the test set
        first = torch.randperm(len(test_x), generator=g)[:config.interp_pairs]
        second = torch.tensor([int(torch.nonzero(test_y != test_y[i]).flatten()[k * 37 % 100])
                               for k, i in enumerate(first.tolist())])
        arrays["interpolation"] = interpolations(model, test_x[first], test_x[second], config.interp_steps)
        arrays["pca_probe"] = pca_probe(model, ptr_x, ptr_y, pte_x, pte_y, config.seed)
        metrics["targets"] += (["I-F19"] if config.jacobian_images else []) + ["I-F20", "I-F22"]
    return metrics, arrays


# ----------------------------------------------------------------------------- memory
def saved_activation_bytes(model, x, y=None) -> int:
    """Bytes of the tensors autograd keeps for the backward pass, from one training-mode forward.

    Counted with saved-tensor hooks (each distinct storage once): exactly what the
    memory-saving backward avoids keeping. Parameters are not counted.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen, total = set(), 0

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen and ptr not in params:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return total


def _rss_probe(name: str, batch: int, height: int, memory_saving: bool, seed: int) -> dict:
    """One training step in a fresh Python process: growth of its peak resident memory (bytes) and the step's time.

    After a warm-up step on two samples, the kernel's peak-RSS mark is reset (Linux: write 5 to
    /proc/self/clear_refs), the current RSS is read, one step runs, and the new peak (VmHWM) is read.
    """
    code = (
        "import gc, json, time, torch, torch.nn.functional as F\n"
        "torch.set_num_threads(1)\n"
        "from hyperbook.models.irevnet import build\n"
        "def status(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key):\n"
        "            return int(line.split()[1]) * 1024\n"
        f"torch.manual_seed({seed})\n"
        f"m = build({name!r}, memory_saving={memory_saving}).train()\n"
        f"x = torch.rand({batch}, m.spec.in_channels, {height}, {height})\n"
        f"y = torch.randint(0, m.spec.n_classes, ({batch},))\n"
        "F.cross_entropy(m(x[:2]), y[:2]).backward()\n"
        "gc.collect()\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = status('VmRSS:')\n"
        "t = time.time()\n"
        "F.cross_entropy(m(x), y).backward()\n"
        "dt = time.time() - t\n"
        "print(json.dumps({'peak_growth_bytes': status('VmHWM:') - base, 'step_s': dt}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_memory(config: MemoryConfig, ctx) -> tuple[dict, dict]:
    rows = []
    for name, batch, height in config.cases:
        row = {"model": name, "batch": batch, "input": f"{height}x{height}"}
        torch.manual_seed(config.seed)
        x = torch.rand(batch, 1 if name.startswith("mnist") else 3, height, height)
        for saving in (False, True):
            key = "saving" if saving else "plain"
            model = build(name, memory_saving=saving)
            row[f"saved_bytes_{key}"] = saved_activation_bytes(model, x)
            probes = [_rss_probe(name, batch, height, saving, config.seed) for _ in range(config.repeats)]
            if probes:                 # repeats=0 (smoke): saved bytes only, no fresh processes
                row[f"peak_rss_growth_bytes_{key}"] = min(p["peak_growth_bytes"] for p in probes)
                row[f"step_s_{key}"] = min(p["step_s"] for p in probes)
            del model
        rows.append(row)
    return {"rows": rows, "targets": [], "measured": (
        "saved_bytes: tensors autograd keeps between forward and backward (saved-tensor hooks); "
        "peak_rss_growth: growth of the peak resident memory (VmHWM, reset before the step) over the "
        "resident memory before one training step, each case in a fresh process after a warm-up step on two samples")}, {}


# ----------------------------------------------------------------------------- entry points
def run(ctx, experiment: str, overrides: dict | None = None):
    if experiment == "memory":
        return ctx.run("memory", memory_config_for, run_memory, overrides)
    if not experiment.startswith("train_") or experiment[len("train_"):] not in MODELS:
        raise UnknownChoiceError("i-RevNet experiment", experiment, EXPERIMENTS)
    model = experiment[len("train_"):]
    return ctx.run(experiment, train_config_for(model), run_train, overrides)


def run_all(ctx) -> dict:
    return {name: run(ctx, name) for name in EXPERIMENTS}



# ----------------------------------------------------------------------------- the chapter's tables, figures, findings
def runs_table(records):
    from .. import tables
    return tables.runs_table(records, {"data": lambda r: tables.data_of(r) or "random tensors (memory probe)",
                                       "blocks per stage": lambda r: "-".join(map(str, r.metrics["blocks"]))
                                       if isinstance(r.metrics.get("blocks"), list) else r.metrics.get("blocks")})


def _describe(module) -> list[str]:
    names = {"Conv2d": lambda m: f"conv {m.kernel_size[0]}x{m.kernel_size[1]} {m.in_channels}->{m.out_channels}"
                                  + (f" /{m.stride[0]}" if m.stride[0] > 1 else ""),
             "BatchNorm2d": lambda m: "BN", "ReLU": lambda m: "ReLU", "Dropout": lambda m: f"dropout {m.p}"}
    return [names[type(m).__name__](m) for m in module]


def _draw_block(block, ax, inverse=False):
    """Two lanes, the F box listing the block's modules, S (or S^-1) boxes with the block's stride."""
    import matplotlib.pyplot as plt
    s = block.stride
    ax.set_xlim(0, 10), ax.set_ylim(0, 10), ax.axis("off")

    def box(x, y, w, h, text, c):
        ax.add_patch(plt.Rectangle((x, y), w, h, fc=c, ec="#335"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7)

    def arrow(a, b):
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", color="#335"))

    S = f"S^-1 (x{s})" if inverse else f"S (space-to-depth x{s})" if s > 1 else "S = identity"
    top, bottom = ((r"$\tilde x_{j+1}$", r"$x_{j+1}$"), (r"$x_j$", r"$\tilde x_j$")) if inverse else \
        ((r"$x_j$", r"$\tilde x_j$"), (r"$\tilde x_{j+1}$", r"$x_{j+1}$"))
    ax.text(1.5, 9.5, top[0], ha="center"), ax.text(8.5, 9.5, top[1], ha="center")
    ax.text(1.5, 0.3, bottom[0], ha="center"), ax.text(8.5, 0.3, bottom[1], ha="center")
    box(3.2, 5.2, 3.6, 1.6, "-F" if inverse else "F", "#f6d7a7")
    ax.text(1.5, 6.0, r"$\oplus$", ha="center", va="center", fontsize=14)
    arrow((8.5, 6.0), (6.8, 6.0)), arrow((3.2, 6.0), (1.9, 6.0))
    if inverse:
        box(0.3, 8.0, 2.4, 1.0, S, "#dbe8f6"), box(7.3, 8.0, 2.4, 1.0, S, "#dbe8f6")
        arrow((8.5, 8.0), (8.5, 1.0)), arrow((1.5, 8.0), (1.5, 6.4)), arrow((1.5, 5.6), (1.5, 1.0))
        ax.set_title("inverse block: $\\tilde x_j = S^{-1}x_{j+1},\\ x_j = S^{-1}(\\tilde x_{j+1} - F\\tilde x_j)$",
                     fontsize=8)
    else:
        box(0.3, 1.0, 2.4, 1.0, S, "#dbe8f6"), box(7.3, 1.0, 2.4, 1.0, S, "#dbe8f6")
        arrow((8.5, 9.2), (8.5, 2.0)), arrow((1.5, 9.2), (1.5, 6.4)), arrow((1.5, 5.6), (1.5, 2.0))
        ax.set_title("forward block: $(x_j, \\tilde x_j) \\to (S\\tilde x_j,\\ Sx_j + F\\tilde x_j)$", fontsize=8)
    ax.text(5.0, 4.4, "\n".join(_describe(block.F)), ha="center", va="top", fontsize=6, color="#633")


def block_figure(name: str = BIJECTIVE):
    """I-F16: a down-sampling block of model `name` and its inverse, drawn from the block object."""
    import matplotlib.pyplot as plt
    block = next(b for b in build(name).blocks if b.stride == 2)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    _draw_block(block, axes[0]), _draw_block(block, axes[1], inverse=True)
    return fig


def cascade_table(names=(BIJECTIVE, "cifar_a"), blocks=REDUCED_BLOCKS):
    """The cascade read off the model objects by a forward pass: S~, each block's output pair, its parameters
    (at `blocks` per stage, the depth of the reduced runs)."""
    import pandas as pd
    from .. import tables
    rows = []
    for name in names:
        m = build(name, blocks=blocks).eval()
        with torch.no_grad():
            feats = m.features_at_depths(torch.zeros(1, m.spec.in_channels, 32, 32))
        rows.append({"model": name, "depth": 0, "module": f"S~ (x{m.spec.init_block}, +{m.splitter.pad} zero channels)",
                     "pair shape": f"2 x {feats[0].shape[1] // 2} x {feats[0].shape[2]} x {feats[0].shape[3]}",
                     "coefficients": feats[0].numel(), "parameters": 0})
        for j, (b, f) in enumerate(zip(m.blocks, feats[1:]), 1):
            rows.append({"model": name, "depth": j, "module": f"block, stride {b.stride}",
                         "pair shape": f"2 x {f.shape[1] // 2} x {f.shape[2]} x {f.shape[3]}",
                         "coefficients": f.numel(), "parameters": parameter_count(b)})
    return tables.show(pd.DataFrame(rows), caption=tables.CODE + f" ({'-'.join(map(str, blocks))} blocks per stage)")


def space_to_depth_figure():
    """I-F17: a 4x4 labelled input and the four 2x2 channels SpaceToDepth(2) returns for it."""
    import matplotlib.pyplot as plt
    from ..models.irevnet import SpaceToDepth
    grid = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = SpaceToDepth(2)(grid)
    label = lambda v: f"{int(v) // 4},{int(v) % 4}"
    colours = plt.cm.Pastel1(np.arange(4))
    fig, axes = plt.subplots(1, 5, figsize=(10, 2.6), gridspec_kw={"width_ratios": [2, 1, 1, 1, 1]},
                             layout="constrained")
    for (r, c), v in np.ndenumerate(grid[0, 0].numpy()):
        axes[0].add_patch(plt.Rectangle((c, 3 - r), 1, 1, fc=colours[(r % 2) * 2 + c % 2], ec="k"))
        axes[0].text(c + 0.5, 3.5 - r, label(v), ha="center", va="center", fontsize=9)
    axes[0].set_title("input: 1 channel, 4x4 (row,col)", fontsize=8)
    for k in range(4):
        for (r, c), v in np.ndenumerate(out[0, k].numpy()):
            axes[k + 1].add_patch(plt.Rectangle((c, 1 - r), 1, 1, fc=colours[k], ec="k"))
            axes[k + 1].text(c + 0.5, 1.5 - r, label(v), ha="center", va="center", fontsize=9)
        axes[k + 1].set_title(f"output channel {k}", fontsize=8)
    for ax in axes:
        ax.set_aspect("equal"), ax.axis("off"), ax.autoscale_view()
    return fig


def _kernel_333_count(name: str) -> int:
    from dataclasses import replace
    from ..models.irevnet import SPECS
    with torch.device("meta"):
        return parameter_count(IRevNet(replace(SPECS[name], kernels=(3, 3, 3))))


def configurations_table():
    """Every configuration's blocks, strides, channels, S~ and parameters (ours, and with the authors' code's
    3-3-3 kernels), counted on the meta device, beside the thesis's Table 9 count."""
    import pandas as pd
    from .. import tables
    from ..models.irevnet import BASELINES, SPECS, parameter_count_of
    thesis = {"imagenet_a": THESIS_T9["cifar_a"][1], "imagenet_b": THESIS_T9["cifar_b"][1]}
    rows = [{"configuration": name, "kernels": "-".join(map(str, spec.kernels)), "blocks": "-".join(map(str, spec.blocks)),
             "channels/half": "-".join(map(str, spec.channels)),
             "S~": f"x{spec.init_block}, +{spec.start_channels - spec.in_channels * spec.init_block ** 2} zeros",
             "bijective": spec.start_channels == spec.in_channels * spec.init_block ** 2,
             "parameters (ours)": parameter_count_of(name), "with 3-3-3 kernels (authors' code)": _kernel_333_count(name),
             "thesis": thesis.get(name)} for name, spec in SPECS.items()]
    rows += [{"configuration": name, "kernels": "-".join(map(str, spec.kernels)), "blocks": "-".join(map(str, spec.blocks)),
              "bijective": False, "parameters (ours)": parameter_count_of(name)} for name, spec in BASELINES.items()]
    return tables.show(pd.DataFrame(rows), caption=tables.CODE + " (counted on the meta device)")


def parameter_reading() -> str:
    """How the one reading of the bottleneck (the text's 1-3-1 kernels) compares with Table 9's counts."""
    from ..models.irevnet import parameter_count_of
    a, b = parameter_count_of("imagenet_a"), parameter_count_of("imagenet_b")
    a3, b3 = _kernel_333_count("imagenet_a"), _kernel_333_count("imagenet_b")
    return (f"With the text's 1-3-1 kernels (b) has {b / 1e6:.1f}M parameters (thesis: 29M) and (a) {a / 1e6:.1f}M "
            f"(thesis: 181M, {a / 181e6:.2f} of it); the authors' 3-3-3 kernels would give (a) {a3 / 1e6:.0f}M and (b) "
            f"{b3 / 1e6:.0f}M ({b3 / 29e6:.1f} times the thesis's 29M). No single reading reproduces both numbers; we "
            "keep the text's for every model.")


def memory_table(mem):
    """Saved activation bytes and peak resident memory growth of one training step, plain and memory-saving."""
    import pandas as pd
    from .. import tables
    mib = 2 ** 20
    rows = []
    for r in mem.metrics["rows"]:
        row = {"model": r["model"], "batch": r["batch"], "input": r["input"],
               "saved, plain": r["saved_bytes_plain"] / mib, "saved, memory-saving": r["saved_bytes_saving"] / mib,
               "saved ratio": r["saved_bytes_plain"] / max(r["saved_bytes_saving"], 1)}
        if "peak_rss_growth_bytes_plain" in r:
            row.update({"peak growth, plain": r["peak_rss_growth_bytes_plain"] / mib,
                        "peak growth, memory-saving": r["peak_rss_growth_bytes_saving"] / mib,
                        "step time ratio (saving / plain)": r["step_s_saving"] / r["step_s_plain"]})
        rows.append(row)
    frame = pd.DataFrame(rows)
    units = {c: "MiB" for c in frame.columns if c.startswith(("saved,", "peak growth"))}
    return tables.show(frame, units=units, digits=3, caption=tables.caption(mem, data="random tensors"))


def t9_table(runs):
    """I-T9: the thesis's ImageNet top-1 errors beside our test errors on the stand-in (never compared), and
    each model's gap to the ResNet, the thesis's beside ours."""
    from .. import tables
    base = runs[RESNET].metrics["test_error_pct"]
    rows = []
    for m in MODELS:
        r = runs[m]
        doc_err, doc_params = THESIS_T9[m]
        rows.append({"architecture": LABELS[m], "document": doc_err, "ours": r.metrics["test_error_pct"], "unit": "%",
                     "not_comparable": True, "gap to ResNet, thesis": doc_err - THESIS_T9[RESNET][0],
                     "gap to ResNet, ours": r.metrics["test_error_pct"] - base, "thesis parameters": doc_params,
                     "our parameters": r.metrics["parameters"], "run": tables.run_label(r)})
    frame = tables.compare(rows).rename(columns={"document": "thesis top-1 error (ImageNet)",
                                                 "ours": "our test error (stand-in)"})
    return tables.show(frame, digits=3, caption=tables.caption(list(runs.values())))


def loss_figure(runs):
    """I-F18: the logged training loss of every model."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    for m in MODELS:
        curve = runs[m].arrays["loss_curve"]
        ax.plot(curve[:, 0], curve[:, 1], label=LABELS[m], lw=2 if m in (BIJECTIVE, RESNET) else 1)
    ax.set(yscale="log", xlabel="iteration", ylabel="training cross-entropy")
    ax.legend(fontsize=8)
    return fig


def e1_shown_table(runs):
    """I-E1: the inverse's round-off on noise and validation images, trained and untrained, float32 and 64."""
    import pandas as pd
    from .. import tables
    rows = []
    for m in ("cifar_a", BIJECTIVE):
        for state in ("untrained", "trained"):
            e = runs[m].metrics[f"e1_{state}"]
            for dtype in ("float32", "float64"):
                for images in ("noise", "validation"):
                    ours = e[f"{images}_{dtype}"]
                    rows.append({"model": LABELS[m], "state": state, "dtype": dtype, "images": images,
                                 "thesis": THESIS_E1[images], "ours": ours, "ours / thesis": ours / THESIS_E1[images],
                                 "worst sample": e.get(f"{images}_{dtype}_max")})
    return tables.show(pd.DataFrame(rows), digits=2, caption=tables.caption([runs["cifar_a"], runs[BIJECTIVE]]))


def jacobian_figure(rb):
    """I-F19: normalised, sorted singular values of the Jacobian of the trained (b) and of the untrained one."""
    import matplotlib.pyplot as plt
    sv, sv0 = rb.arrays["jacobian_sv"], rb.arrays["jacobian_sv_untrained"]
    fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    for k, s in enumerate(sv):
        ax.plot(np.arange(1, len(s) + 1), s, color="C0", lw=1.5, label="trained (b)" if k == 0 else None)
    ax.plot(np.arange(1, len(sv0) + 1), sv0, color="C1", lw=1, ls="--", label="untrained (b)")
    ax.set(yscale="log", xlabel="index (sorted)", ylabel="singular value / largest")
    ax.legend(fontsize=8)
    return fig


def jacobian_table(rb):
    import pandas as pd
    from .. import tables
    j = rb.metrics["jacobian"]
    dim = j["dimension"]
    rows = [{"quantity": f"energy in the first {k:,} of {THESIS_DIM:,} ({100 * k / THESIS_DIM:.2g}%), ours: the first "
                         f"{max(1, round(k / THESIS_DIM * dim)):,} of {dim:,}", "thesis": share,
             "ours": j["energy_at_thesis_fractions"][str(k)], "unit": "share"} for k, share in THESIS_ENERGY.items()]
    rows += [{"quantity": "values needed for 80% / 97% of the energy", "thesis": "about 10^3 / 10^4 of 150,528",
              "ours": f"{j['k_for_80pct']:,} / {j['k_for_97pct']:,} of {dim:,}"},
             {"quantity": "condition number (largest / smallest)", "thesis": None, "ours": j["condition_number"]}]
    frame = pd.DataFrame(rows).drop(columns="unit")
    return tables.show(frame, digits=3, caption=tables.caption(rb))


def interpolation_figure(rb):
    """I-F20: per pair, the feature-space line (upper row) and the pixel-space line (lower row), t = 1 to 0."""
    from ..plots import image_grid
    interp = rb.arrays["interpolation"]                      # [pairs, (feature, pixel), steps, (3,) 32, 32]
    pairs, _, steps = interp.shape[:3]
    return image_grid(interp.reshape(-1, *interp.shape[3:]).clip(0, 1), 2 * pairs, steps, vmin=0, vmax=1, scale=1.0,
                      row_labels=[f"pair {p + 1}: {'features' if k == 0 else 'pixels'}" for p in range(pairs)
                                  for k in range(2)], col_labels=[f"t={t:.2f}" for t in np.linspace(1, 0, steps)])


def depth_probe_figure(runs):
    """I-F21: linear-SVM and 1-NN accuracy on the averaged features at every depth, ResNet and i-RevNet (b)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
    for ax, m in zip(axes, (RESNET, BIJECTIVE)):
        d = runs[m].arrays["depth_probe"]
        ax.plot(d[:, 0], "o-", label="linear SVM"), ax.plot(d[:, 1], "s-", label="1-NN")
        ax.axhline(runs[m].metrics["test_accuracy"], color="gray", ls=":", label="the network's own classifier")
        ax.set_xlabel("depth j (0 = after S~ / stem)"), ax.set_title(LABELS[m], fontsize=9)
        for j, dim in enumerate(d[:, 2]):
            ax.annotate(f"{int(dim)}", (j, d[j, 0]), textcoords="offset points", xytext=(0, 5), fontsize=6, ha="center")
    axes[0].set_ylabel("test accuracy"), axes[1].legend(fontsize=8)
    return fig


def pca_figure(rb):
    import matplotlib.pyplot as plt
    p = rb.arrays["pca_probe"]
    fig, ax = plt.subplots(figsize=(6, 3.3), layout="constrained")
    ax.plot(p[:, 0], p[:, 1], "o-", label="linear SVM"), ax.plot(p[:, 0], p[:, 2], "s-", label="1-NN")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="principal components d", ylabel="test accuracy")
    ax.legend(fontsize=8)
    return fig


def pca_table(rb):
    import pandas as pd
    from .. import tables
    p = rb.arrays["pca_probe"]
    return tables.show(pd.DataFrame({"d": p[:, 0].astype(int), "linear SVM": p[:, 1], "1-NN": p[:, 2]}), digits=3,
                       caption=tables.caption(rb))


def findings(records) -> list[str]:
    """What agrees with the thesis and what does not, computed from the records shown."""
    from .. import tables
    runs = {m: records[f"train_{m}"] for m in MODELS}
    errs = {m: r.metrics["test_error_pct"] for m, r in runs.items()}
    ours_order = sorted(MODELS, key=errs.get)
    thesis_order = sorted(MODELS, key=lambda m: THESIS_T9[m][0])
    data = sorted({tables.data_of(r) for r in runs.values()})
    blocks = sorted({"-".join(map(str, r.metrics["blocks"])) if isinstance(r.metrics.get("blocks"), list)
                     else str(r.metrics.get("blocks")) for r in runs.values()})
    steps = {m: r.metrics.get("steps") for m, r in runs.items()}
    rb = runs[BIJECTIVE].metrics
    e1 = rb.get("e1_trained", {})
    return [f"**Data and depth.** The trained models ran on {'; '.join(data)} ({', '.join(sorted({r.profile for r in runs.values()}))} "
            f"runs; blocks per stage {', '.join(blocks)}; steps " + ", ".join(f"{LABELS[m]} {s}" for m, s in steps.items())
            + "). These are not ImageNet, so no trained number here is set against the thesis's.", "",
            "**Architecture and parameters (Table 9, right column).** " + parameter_reading(), "",
            "**I-T9 ordering.** Test error, best first: ours " + " < ".join(f"{LABELS[m]} {errs[m]:.1f}%" for m in ours_order)
            + "; the thesis (ImageNet top-1): " + " < ".join(f"{LABELS[m]} {THESIS_T9[m][0]}%" for m in thesis_order)
            + (". The orders agree." if ours_order == thesis_order else ". The orders differ.")
            + " With one seed and a few hundred steps, gaps of a fraction of a point are within run-to-run noise.", "",
            f"**I-E1.** The trained (b) inverts noise with a mean relative error of "
            f"{e1.get('noise_float32', float('nan')):.1e} in float32 (thesis: {THESIS_E1['noise']:.0e}) and validation "
            f"images with {e1.get('validation_float32', float('nan')):.1e} (thesis: {THESIS_E1['validation']:.0e})."]

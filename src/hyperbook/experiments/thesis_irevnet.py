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


def crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The authors' CIFAR augmentation: zero-pad by `pad`, random crop back, random horizontal flip (per image)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).tolist()
    flip = (torch.rand(n, generator=g) < 0.5).tolist()
    out = torch.stack([xp[k, :, dy[k]:dy[k] + h, dx[k]:dx[k] + w] for k in range(n)])
    return torch.where(torch.tensor(flip, device=x.device)[:, None, None, None], out.flip(-1), out)


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
        return crop_flip(train_x[idx], g), train_y[idx]

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
        metrics["targets"] += ["I-F19", "I-F20", "I-F22"]
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


"""HyperNets experiments: rotation, affine transformation and rotation compensation of MNIST.

One task config per trained model. Training data are MNIST training digits,
transformed on the fly on the device; every number and figure uses test-set
digits only. Pixels are in [-1, 1]; losses are mean squared errors on that scale
(the authors' code's convention).

The baseline is the authors' adversarial autoencoder ("aae", trained by
`fit_adversarial_autoencoder` below, their three-phase step); the simpler
200-d autoencoder without a critic ("autoencoder") is kept as a second baseline
on the affine task. Every rotation/compensation record also carries trivial
baselines (blank output, untransformed input, per-digit mean) on the same test
images, and the compensation records a small MNIST classifier's verdict on the
restored 6s and 9s.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..profiles import unknown_training_profile
from ..data.letters import load_letters
from ..data.mnist import load_mnist, to_signed
from ..data.transforms import affine, random_affine, rotate
from ..errors import UnknownChoiceError
from ..models.hypernets import build
from ..train import (FitResult, _atomic_torch_save, check_precision, checkpoint_path, finish_training, fit,
                     note_resumed, seed_everything, step_clock, step_generator)
from ..results import config_hash

CHAPTER = "hypernets"
TASKS = ("rotate", "affine", "compensate")
FILL = -1.0                       # background of [-1, 1] images
RESTRICTED_DIGITS = (4, 9)        # trained on a narrow range of angles only: the extrapolation test
DISCRETE_ANGLES = tuple(range(0, 360, 45))
FIGURE_ANGLES = tuple(range(0, 360, 40))
AAE_REDUCED_STEPS = 400   # mostly angles the discrete models never saw

# experiment name -> (task, model, angles)
RUNS = {
    "rotate_simple_discrete": ("rotate", "simple", "discrete"),
    "rotate_deep_discrete": ("rotate", "deep", "discrete"),
    "rotate_deep_all": ("rotate", "deep", "all"),
    "rotate_autoencoder_all": ("rotate", "aae", "all"),
    "affine_simple": ("affine", "simple", "all"),
    "affine_deep": ("affine", "deep", "all"),
    "affine_autoencoder": ("affine", "aae", "all"),
    "affine_plain_autoencoder": ("affine", "autoencoder", "all"),
    "compensate_deep": ("compensate", "deep", "all"),
    "compensate_autoencoder": ("compensate", "aae", "all"),
}
TARGETS_OF = {
    "rotate_simple_discrete": ["H-F2", "H-F3", "H-F4", "H-F7"],
    "rotate_deep_discrete": ["H-F4", "H-F5", "H-F7"],
    "rotate_deep_all": ["H-F7"],
    "rotate_autoencoder_all": ["H-F1", "H-F6", "H-F7"],
    "affine_simple": ["H-T1"],
    "affine_deep": ["H-F8", "H-T1"],
    "affine_autoencoder": ["H-F9", "H-T1"],
    "affine_plain_autoencoder": ["H-T1"],
    "compensate_deep": ["H-F10", "H-F11"],
    "compensate_autoencoder": ["H-F11", "H-F12"],
}


@dataclass(frozen=True)
class TaskConfig:
    task: str
    model: str
    angles: str              # 'all' (continuous) or 'discrete' (multiples of 45 degrees)
    steps: int
    batch_size: int
    lr: float = 1e-3
    restricted_range: float = 45.0   # digits 4, 9 train on [-45, 45] degrees (the authors' a/4)
    test_per_digit: int = 100
    angle_bins: int = 36
    critic_steps: int = 5            # adversarial autoencoder: critic steps per step (the authors' CRITIC_ITER)
    gp_lambda: float = 10.0          # its gradient penalty weight
    classifier_steps: int = 0        # compensation: steps of the MNIST digit classifier judging 6 vs 9
    precision: str = "fp32"
    seed: int = 0
    code_version: int = 2            # 2: authors' affine composition, Glorot init, adversarial autoencoder baseline


def config_for(experiment: str):
    """profile -> TaskConfig for one of RUNS."""
    if experiment not in RUNS:
        raise UnknownChoiceError("HyperNets experiment", experiment, RUNS)
    task, model, angles = RUNS[experiment]

    def make(profile: str) -> TaskConfig:
        clf = 300 if task == "compensate" else 0
        if profile == "smoke":
            if model == "aae":
                return TaskConfig(task, model, angles, steps=4, batch_size=8, test_per_digit=6, angle_bins=8,
                                  classifier_steps=20 if clf else 0)
            return TaskConfig(task, model, angles, steps=25 if model == "simple" else 60, batch_size=16,
                              test_per_digit=6, angle_bins=8, classifier_steps=20 if clf else 0)
        if profile == "reduced":  # each run sized to about 5 minutes on the 2-core CPU (step times in the chapter)
            if model == "simple":
                return TaskConfig(task, model, angles, steps=800, batch_size=32, test_per_digit=50)
            if model == "deep":
                return TaskConfig(task, model, angles, steps=600 if task != "rotate" else 800,
                                  batch_size=128, test_per_digit=100, classifier_steps=clf)
            if model == "aae":   # the critic's 5 steps per step make it the dearest model per step
                return TaskConfig(task, model, angles, steps=AAE_REDUCED_STEPS, batch_size=32, test_per_digit=100,
                                  classifier_steps=clf)
            return TaskConfig(task, model, angles, steps=6000, batch_size=128, test_per_digit=100)
        if profile == "full":     # the authors' code: 100k iterations (200k for the deep model), batch 128
            return TaskConfig(task, model, angles, steps=200_000 if model == "deep" else 100_000,
                              batch_size=128, test_per_digit=500, classifier_steps=3000 if clf else 0)
        raise unknown_training_profile(profile)
    return make


def control_params(angles_deg: torch.Tensor) -> torch.Tensor:
    """The control input of rotation models: (cos a, sin a)."""
    a = torch.deg2rad(angles_deg)
    return torch.stack([a.cos(), a.sin()], dim=-1)


def sample_angles(labels: torch.Tensor, config: TaskConfig, g: torch.Generator) -> torch.Tensor:
    n = labels.shape[0]
    u = torch.rand(n, generator=g, device=g.device).to(labels.device) * 2 - 1
    if config.angles == "discrete":
        pick = torch.randint(len(DISCRETE_ANGLES), (n,), generator=g, device=g.device).to(labels.device)
        angles = torch.tensor(DISCRETE_ANGLES, dtype=torch.float32, device=labels.device)[pick]
        angles = (angles + 180) % 360 - 180
        # restricted digits keep only the training angles inside their range: -45, 0, 45
        narrow = torch.tensor([-45.0, 0.0, 45.0], device=labels.device)[pick % 3]
    else:
        angles = u * 180.0
        narrow = u * config.restricted_range
    restricted = torch.isin(labels, torch.tensor(RESTRICTED_DIGITS, device=labels.device))
    return torch.where(restricted, narrow, angles)


def make_example(images: torch.Tensor, labels: torch.Tensor, config: TaskConfig, g: torch.Generator):
    """(model input image, control params or None, target image) for one batch."""
    if config.task == "affine":
        # the control input is the six pixel-space entries (a..f) of the authors' matrix, as they feed it
        theta, entries = random_affine(images.shape[0], g, device=images.device)
        return images, entries, affine(images, theta, fill=FILL)
    angles = sample_angles(labels, config, g)
    rotated = rotate(images, angles, fill=FILL)
    if config.task == "rotate":
        return images, control_params(angles), rotated
    return rotated, None, images                      # compensate: no angle given


def test_digits(images: torch.Tensor, labels: torch.Tensor, per_digit: int):
    """The first `per_digit` test images of each digit, ordered by digit."""
    idx = torch.cat([torch.nonzero(labels == d).flatten()[:per_digit] for d in range(10)])
    return images[idx], labels[idx]


BASELINES = ("blank output", "untransformed input", "per-digit mean")


def _per_digit_mean(err: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (torch.zeros(10, device=err.device).index_add_(0, labels, err) /
            torch.bincount(labels, minlength=10).clamp(min=1)).cpu()


def trivial_errors(inputs: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image MSE [3, N] of the BASELINES: a blank (-1) image, the model's input unchanged, and the mean
    target image of the image's own digit (an oracle given the label and the test targets; a floor for any
    output that ignores the individual digit's shape)."""
    blank = (targets - FILL).pow(2).flatten(1).mean(1)
    same = (inputs - targets).pow(2).flatten(1).mean(1)
    means = torch.stack([targets[labels == d].mean(0) if (labels == d).any() else torch.full_like(targets[0], FILL)
                         for d in range(10)])
    mean = (means[labels] - targets).pow(2).flatten(1).mean(1)
    return torch.stack([blank, same, mean])


@torch.no_grad()
def per_digit_angle_loss(model, images, labels, config: TaskConfig, chunk: int = 250):
    """MSE per digit at each test angle [10, angle_bins], the angles, and the BASELINES' [3, 10, angle_bins]."""
    angles = torch.linspace(-180, 180, config.angle_bins + 1, device=images.device)[:-1]
    losses = torch.zeros(10, len(angles))
    baselines = torch.zeros(len(BASELINES), 10, len(angles))
    for k, a in enumerate(angles):
        errs = []
        for start in range(0, len(images), chunk):  # bounded memory; each chunk is one batched call
            x = images[start:start + chunk]
            rotated = rotate(x, a, fill=FILL)
            if config.task == "rotate":
                out, target = model(x, control_params(a.view(1))), rotated
            else:
                out, target = model(rotated), x
            errs.append((out - target).pow(2).flatten(1).mean(1))
        losses[:, k] = _per_digit_mean(torch.cat(errs), labels)
        rotated = rotate(images, a, fill=FILL)
        inputs, targets = (images, rotated) if config.task == "rotate" else (rotated, images)
        base = trivial_errors(inputs, targets, labels)
        for b in range(len(BASELINES)):
            baselines[b, :, k] = _per_digit_mean(base[b], labels)
    return losses.numpy(), angles.cpu().numpy(), baselines.numpy()


# ---------------------------------------------------------------- the authors' adversarial autoencoder
class TFRMSprop(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1's RMSPropOptimizer: decay 0.9, the mean square starts at 1, eps inside the root."""

    def __init__(self, params, lr: float = 1e-3, decay: float = 0.9, eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, decay=decay, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "ms" not in state:
                    state["ms"] = torch.ones_like(p)
                ms = state["ms"]
                ms.mul_(group["decay"]).addcmul_(p.grad, p.grad, value=1 - group["decay"])
                p.addcdiv_(p.grad, (ms + group["eps"]).sqrt(), value=-group["lr"])


def critic_loss(model, real_z: torch.Tensor, fake_z: torch.Tensor, gp_lambda: float, g: torch.Generator):
    """WGAN-GP critic loss on latent codes: D(fake) - D(real) + lambda (|grad D(interp)| - 1)^2.

    The gradient norm is per interpolated code (the usual WGAN-GP form)."""
    alpha = torch.rand(real_z.shape[0], 1, generator=g, device=g.device).to(real_z)
    interp = (real_z + alpha * (fake_z - real_z)).requires_grad_(True)
    grad, = torch.autograd.grad(model.critic(interp).sum(), interp, create_graph=True)
    penalty = (grad.norm(dim=1) - 1).pow(2).mean()
    return model.critic(fake_z).mean() - model.critic(real_z).mean() + gp_lambda * penalty


def fit_adversarial_autoencoder(model, batch_fn, images_fn, *, steps: int, lr: float = 1e-3,
                                critic_steps: int = 5, gp_lambda: float = 10.0, seed: int = 0,
                                device: str = "cpu", checkpoint=None, checkpoint_every: int = 500,
                                log_every: int = 50, desc: str = "aae", progress: bool = True,
                                stop_after: int | None = None, precision: str = "fp32") -> FitResult:
    """The authors' three-phase step: (1) reconstruction MSE through encoder and decoder; (2) `critic_steps`
    critic updates on fresh images' codes against U(-1, 1) codes; (3) an encoder update that fools the critic.
    Three RMSProp optimisers (lr 1e-3). batch_fn(step) -> (image, params, target); images_fn(step, k) ->
    images for the k-th critic step. Checkpoints and resumes like `fit`; losses logs the reconstruction MSE.
    """
    check_precision(precision)
    model.to(device).train()
    opt_r = TFRMSprop(model.encoder_decoder_parameters(), lr=lr)
    opt_d = TFRMSprop(model.critic.parameters(), lr=lr)
    opt_e = TFRMSprop(model.encoder_parameters(), lr=lr)
    opts = (opt_r, opt_d, opt_e)
    result, start = FitResult(), 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        for o, s in zip(opts, state["optimizers"]):
            o.load_state_dict(s)
        start = result.resumed_from = state["step"]
        result.losses, result.wall_s = state["losses"], note_resumed(state)
        torch.set_rng_state(state["rng"])
    use_amp = precision == "bf16" and str(device).startswith("cuda")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    end = steps if stop_after is None else min(steps, stop_after)
    window, items, t0 = [], 0, time.time()
    bar = tqdm(range(start, end), desc=desc, disable=not progress, initial=start, total=steps, mininterval=2.0)
    for step in step_clock(bar, device, desc):
        image, params, target = batch_fn(step)
        with autocast():
            r_loss = (model(image, params) - target).pow(2).mean()
        opt_r.zero_grad(set_to_none=True)
        r_loss.backward()
        opt_r.step()
        g = step_generator(seed + 7, step)
        for k in range(critic_steps):
            x = images_fn(step, k)
            with torch.no_grad(), autocast():
                fake = model.encode(x).float()
            real = torch.rand(fake.shape, generator=g, device=g.device).to(fake) * 2 - 1
            d_loss = critic_loss(model, real, fake, gp_lambda, g)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        with autocast():
            e_loss = -model.critic(model.encode(x)).mean()
        opt_e.zero_grad(set_to_none=True)
        e_loss.backward()
        opt_e.step()
        window.append(r_loss.detach())
        items += len(image)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            mean = torch.stack(window).float().mean().item()
            result.losses.append((step + 1, mean))
            bar.set_postfix(loss=f"{mean:.4g}", critic=f"{d_loss.item():.3g}")
            window = []
        if ckpt is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            _atomic_torch_save({"model": model.state_dict(), "optimizers": [o.state_dict() for o in opts],
                                "step": step + 1, "losses": result.losses, "rng": torch.get_rng_state(),
                                "wall_s": result.wall_s + time.time() - t0}, ckpt)
    return finish_training(result, model, bar, t0, items, end, steps, ckpt)


# ---------------------------------------------------------------- 6 against 9: a digit classifier's verdict
class DigitClassifier(nn.Module):
    """A small MNIST classifier: conv(16, 5x5) - pool - conv(32, 5x5) - pool - dense(10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.dense = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.dense(F.max_pool2d(F.relu(self.conv2(h)), 2).flatten(1))


def train_digit_classifier(train_x, train_y, steps: int, seed: int, device, batch_size: int = 128):
    """Upright MNIST digits in [-1, 1] -> a DigitClassifier trained `steps` Adam steps (no augmentation)."""
    torch.manual_seed(seed + 11)
    clf = DigitClassifier()

    def batch_fn(step):
        idx = torch.randint(len(train_x), (batch_size,), generator=step_generator(seed + 11, step)).to(device)
        return train_x[idx], train_y[idx]

    fit(clf, lambda m, b: F.cross_entropy(m(b[0]), b[1]), batch_fn, steps=steps, lr=1e-3, device=device,
        log_every=max(1, steps // 10), desc="digit classifier", progress=False, counted=False)
    return clf.eval()


@torch.no_grad()
def classify(clf, x, chunk: int = 500) -> torch.Tensor:
    return torch.cat([clf(x[s:s + chunk]).argmax(1) for s in range(0, len(x), chunk)])


@torch.no_grad()
def six_nine_rates(model, clf, images, labels, angles) -> dict:
    """For test 6s and 9s rotated by each angle: how often the classifier reads the rotated input and the
    model's restored output as the digit itself, as the other of the pair, or as something else.
    Returns {"input"|"output": [2 (true 6, true 9), len(angles), 3 (own, other, else)]}."""
    out = {"input": np.zeros((2, len(angles), 3)), "output": np.zeros((2, len(angles), 3))}
    for t, (own, other) in enumerate(((6, 9), (9, 6))):
        x = images[labels == own]
        for k, a in enumerate(angles):
            rotated = rotate(x, float(a), fill=FILL)
            for key, img in (("input", rotated), ("output", model(rotated))):
                pred = classify(clf, img)
                n = max(1, len(pred))
                out[key][t, k] = [(pred == own).sum().item() / n, (pred == other).sum().item() / n,
                                  ((pred != own) & (pred != other)).sum().item() / n]
    return out


@torch.no_grad()
def rotation_panel(model, images, config: TaskConfig, angles=FIGURE_ANGLES):
    """For each image and angle: (ground truth, model output) [n, len(angles), 2, 28, 28]."""
    a = torch.tensor(angles, dtype=torch.float32, device=images.device)
    n = images.shape[0]
    x = images.repeat_interleave(len(a), 0)
    aa = a.repeat(n)
    rotated = rotate(x, aa, fill=FILL)
    if config.task == "rotate":
        out = model(x, control_params(aa))
        pair = torch.stack([rotated, out], 1)
    else:                                          # compensate: (rotated input, restored output)
        pair = torch.stack([rotated, model(rotated)], 1)
    return pair.view(n, len(a), 2, 28, 28).cpu().numpy()


def experiment_of(config: TaskConfig) -> str:
    for name, spec in RUNS.items():
        if spec == (config.task, config.model, config.angles):
            return name
    return f"{config.task}_{config.model}_{config.angles}"


def run_task(config: TaskConfig, ctx) -> tuple[dict, dict]:
    if config.task not in TASKS:
        raise UnknownChoiceError("HyperNets task", config.task, TASKS)
    check_precision(config.precision)
    device = ctx.device
    seed_everything(config.seed)
    train_u8, train_y = load_mnist(ctx.data_dir, train=True, device=device)
    test_u8, test_y = load_mnist(ctx.data_dir, train=False, device=device)
    train_x = to_signed(train_u8)
    all_test_x, all_test_y = to_signed(test_u8), test_y
    test_x, test_y = test_digits(all_test_x, all_test_y, config.test_per_digit)
    model = build(config.model, n_params=6 if config.task == "affine" else 2,
                  image_control=config.task == "compensate")

    def batch_fn(step):
        g = step_generator(config.seed, step)
        idx = torch.randint(len(train_x), (config.batch_size,), generator=g).to(device)
        return make_example(train_x[idx], train_y[idx], config, g)

    def loss_fn(m, batch):
        image, params, target = batch
        out = m(image) if params is None else m(image, params)
        return (out - target).pow(2).mean()

    name = experiment_of(config)
    ckpt = checkpoint_path(ctx.results_dir, CHAPTER, name, config_hash(config))
    log_every = max(1, config.steps // 60)
    if config.model == "aae":
        def images_fn(step, k):       # the critic's batches: fresh untransformed training images
            g = step_generator(config.seed + 1 + k, step)
            return train_x[torch.randint(len(train_x), (config.batch_size,), generator=g).to(device)]
        result = fit_adversarial_autoencoder(model, batch_fn, images_fn, steps=config.steps, lr=config.lr,
                                             critic_steps=config.critic_steps, gp_lambda=config.gp_lambda,
                                             seed=config.seed, device=device, checkpoint=ckpt, checkpoint_every=500,
                                             log_every=log_every, desc=name, precision=config.precision)
    else:
        result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, device=device, checkpoint=ckpt,
                     checkpoint_every=500, log_every=log_every, desc=name, precision=config.precision)
    model.eval()
    metrics = {"throughput": round(result.items_per_s, 1), "train_wall_s": round(result.wall_s, 1),
               "parameters": sum(p.numel() for p in model.parameters()), "steps": config.steps,
               "test_images": int(len(test_x)), "baselines": list(BASELINES)}
    arrays = {"loss_curve": np.array(result.losses, dtype=np.float32)}
    g = torch.Generator().manual_seed(1234)          # fixed test transformations
    if config.task == "affine":
        with torch.no_grad():
            image, params, target = make_example(test_x, test_y, config, g)
            errs = torch.cat([(model(image[s:s + 250], params[s:s + 250]) - target[s:s + 250])
                              .pow(2).flatten(1).mean(1) for s in range(0, len(image), 250)])
            metrics["test_mse"] = errs.mean().item()
            metrics["test_mse_per_digit"] = [errs[test_y == d].mean().item() for d in range(10)]
            metrics["baseline_mse"] = trivial_errors(image, target, test_y).mean(1).tolist()
            pick = torch.arange(0, len(image), config.test_per_digit)[:10]
            arrays["test_panel"] = torch.stack([image[pick], target[pick], model(image[pick], params[pick])],
                                               1).cpu().numpy()
            gt = torch.Generator().manual_seed(99)
            tr_idx = torch.randint(len(train_x), (10,), generator=gt).to(device)
            ti, tp, tt = make_example(train_x[tr_idx], train_y[tr_idx], config, gt)
            arrays["train_panel"] = torch.stack([ti, tt, model(ti, tp)], 1).cpu().numpy()
            train_errs = (model(ti, tp) - tt).pow(2).flatten(1).mean(1)
            metrics["train_sample_mse"] = train_errs.mean().item()
    else:
        losses, angles, baselines = per_digit_angle_loss(model, test_x, test_y, config)
        arrays["per_digit_angle_loss"], arrays["angles"] = losses, angles
        arrays["baseline_angle_loss"] = baselines                     # [BASELINES, digit, angle]
        metrics["test_mse"] = float(losses.mean())
        metrics["test_mse_per_digit"] = losses.mean(1).tolist()
        metrics["baseline_mse"] = baselines.mean(axis=(1, 2)).tolist()
        # digits of the figures: 1 and 4 (rotation), 6, 1 and 9 (compensation)
        digits = (1, 4) if config.task == "rotate" else (6, 1, 9)
        first = [int(torch.nonzero(test_y == d).flatten()[0]) for d in digits]
        arrays["panel"] = rotation_panel(model, test_x[first], config)
        arrays["panel_digits"] = np.array(digits)
        arrays["panel_angles"] = np.array(FIGURE_ANGLES)
        if config.task == "rotate" and config.model in ("simple", "deep"):
            letters, source = load_letters(ctx.data_dir, n=4, seed=config.seed)
            arrays["letters_panel"] = rotation_panel(model, to_signed(letters).to(device), config)
            metrics["letters_source"] = source
        if config.task == "compensate" and config.classifier_steps:
            clf = train_digit_classifier(train_x, train_y, config.classifier_steps, config.seed, device)
            metrics["classifier_steps"] = config.classifier_steps
            metrics["classifier_test_accuracy"] = (classify(clf, all_test_x) == all_test_y).float().mean().item()
            metrics["classifier_test_images"] = int(len(all_test_x))
            rates = six_nine_rates(model, clf, test_x, test_y, angles)
            arrays["six_nine_input"], arrays["six_nine_output"] = rates["input"], rates["output"]
    metrics["targets"] = TARGETS_OF.get(name, [])
    return metrics, arrays


def run(ctx, experiment: str, overrides: dict | None = None):
    """Record (or load) one of RUNS in this context."""
    return ctx.run(experiment, config_for(experiment), run_task, overrides)


# ----------------------------------------------------------------------------- the chapter's tables, figures, findings
# The document's Table 1 (affine task, test MSE) and the run names the chapter groups its figures by.
DOC_T1 = {"affine_simple": 0.049395, "affine_deep": 0.0138223, "affine_autoencoder": 0.0606265}
T1_LABELS = {"affine_simple": "simple HyperNet", "affine_deep": "deep HyperNet",
             "affine_autoencoder": "adversarial autoencoder (authors' baseline)",
             "affine_plain_autoencoder": "plain autoencoder (ours, not in the document)"}
ROTATION_RUNS = ("rotate_simple_discrete", "rotate_deep_discrete", "rotate_deep_all", "rotate_autoencoder_all")
COMPENSATION_RUNS = ("compensate_deep", "compensate_autoencoder")
OTHER_DIGITS = [d for d in range(10) if d not in RESTRICTED_DIGITS]


def runs_table(records):
    """The chapter's opening table: the run each experiment shows."""
    from .. import tables
    return tables.runs_table(records, {"batch": lambda r: r.provenance.get("config", {}).get("batch_size"),
                                       "test digits": lambda r: r.metrics.get("test_images")})


def gate_speed_table():
    """The batched gated layer against a Python loop and a plain dense layer, measured now."""
    import pandas as pd
    from .. import tables
    from ..bench import gated_dense_vs_loop
    frame = pd.DataFrame([gated_dense_vs_loop(batch=64, n=200), gated_dense_vs_loop(batch=16, n=784)])
    frame.columns = [c.replace("_ms", "").replace("_", " ") for c in frame.columns]
    return tables.show(frame, units={"batched": "ms", "loop": "ms", "plain dense": "ms"}, digits=3,
                       caption=tables.here())


def panel_figure(rec, shown: str = "true"):
    """A rotation panel: per digit a row of the target (`shown`: the true rotation, or the rotated input)
    and a row of the model's output, one column per test angle."""
    from ..plots import image_grid
    panel = rec.arrays["panel"]                          # [digit, angle, (target, output), 28, 28]
    n, a = panel.shape[:2]
    rows = np.moveaxis(panel, 2, 1).reshape(n * 2 * a, *panel.shape[-2:])
    return image_grid(rows, 2 * n, a, col_labels=[f"{int(x)}°" for x in rec.arrays["panel_angles"]],
                      row_labels=[f"{d}: {kind}" for d in rec.arrays["panel_digits"] for kind in (shown, "output")],
                      scale=0.75)


def letters_figure(records, runs=("rotate_simple_discrete", "rotate_deep_discrete")):
    """H-F4: the outputs of the digit-trained models for letters, one row per (model, letter)."""
    from ..plots import image_grid
    outs = [records[r].arrays["letters_panel"][:, :, 1] for r in runs]     # [letter, angle, 28, 28] each
    n, a = outs[0].shape[:2]
    labels = [f"{r.split('_')[1]}, letter {k + 1}" for r in runs for k in range(n)]
    return image_grid(np.concatenate(outs).reshape(len(runs) * n * a, *outs[0].shape[-2:]), len(runs) * n, a,
                      col_labels=[f"{int(x)}°" for x in records[runs[0]].arrays["panel_angles"]],
                      row_labels=labels, scale=0.75)


def loss_curves_figure(records, runs, highlight=RESTRICTED_DIGITS, xlabel="test angle (degrees)"):
    """Test MSE per digit against the angle, one panel per run (two per row); the band is the angle range
    the restricted digits were trained on."""
    import matplotlib.pyplot as plt
    cols = min(2, len(runs))
    fig, axes = plt.subplots(-(-len(runs) // cols), cols, figsize=(5 * cols, 3.2 * -(-len(runs) // cols)),
                             sharey=True, squeeze=False, layout="constrained")
    colours = plt.cm.tab10(np.arange(10))
    for ax, run in zip(axes.flat, runs):
        rec = records[run]
        for d in range(10):
            ax.plot(rec.arrays["angles"], rec.arrays["per_digit_angle_loss"][d], color=colours[d],
                    lw=2.2 if d in highlight else 0.9, label=str(d))
        ax.axvspan(-45, 45, color="0.9", zorder=0)
        ax.set_title(f"{run} ({rec.profile} run)", fontsize=9)
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel("test MSE")
    axes.flat[cols - 1].legend(ncol=2, fontsize=7, title="digit")
    return fig


def extrapolation_frame(records, runs=ROTATION_RUNS):
    """H-F7's criterion: test MSE of the restricted digits (4, 9) at angles they never saw, of the other
    digits at the same angles, their ratio, and the mean over everything; then the trivial outputs of the
    last run's test images (blank, unrotated input, per-digit mean), which learn nothing."""
    import pandas as pd
    from .. import tables
    rows = []

    def row(name, loss, angles, run):
        outside = np.abs(angles) > 45
        restricted = loss[list(RESTRICTED_DIGITS)][:, outside].mean()
        others = loss[OTHER_DIGITS][:, outside].mean()
        return {"model": name, "4, 9 outside their range": restricted, "other digits, same angles": others,
                "ratio (4, 9) / others": restricted / others, "all digits, all angles": loss.mean(), "run": run}

    for run in runs:
        rec = records[run]
        rows.append(row(run, rec.arrays["per_digit_angle_loss"], rec.arrays["angles"], tables.run_label(rec)))
    last = records[runs[-1]]
    for b, label in enumerate(last.metrics["baselines"]):
        rows.append(row(f"baseline: {label}", last.arrays["baseline_angle_loss"][b], last.arrays["angles"],
                        "no training"))
    return pd.DataFrame(rows)


def extrapolation_table(records, runs=ROTATION_RUNS):
    from .. import tables
    return tables.show(extrapolation_frame(records, runs), units={
        "4, 9 outside their range": "MSE", "other digits, same angles": "MSE", "all digits, all angles": "MSE"},
        caption=tables.caption([records[r] for r in runs]))


def affine_figure(rec):
    """H-F8 / H-F9: rows input, target, output for training digits, then for test digits."""
    from ..plots import image_grid
    parts = [rec.arrays[key][:, :, 0] for key in ("train_panel", "test_panel")]   # [sample, 3, 28, 28]
    n = parts[0].shape[0]
    rows = np.concatenate([np.moveaxis(p, 1, 0) for p in parts])                  # [6, sample, 28, 28]
    return image_grid(rows.reshape(6 * n, *rows.shape[-2:]), 6, n, scale=0.75,
                      row_labels=[f"{s}: {k}" for s in ("training", "test") for k in ("input", "target", "output")])


def t1_table(records):
    """H-T1: the document's affine test MSE beside ours, then the trivial outputs on the same test digits."""
    from .. import tables
    rows = []
    for run, label in T1_LABELS.items():
        rec = records[run]
        ours, doc = rec.metrics["test_mse"], DOC_T1.get(run)
        rows.append({"model": label, "document": doc, "ours": ours,
                     "ours / document": ours / doc if doc else None, "test digits": rec.metrics["test_images"],
                     "run": tables.run_label(rec), "not_comparable": not tables.comparable(rec)})
    base = records["affine_deep"].metrics
    rows += [{"model": f"baseline: {b}", "document": None, "ours": v, "ours / document": None,
              "test digits": base["test_images"], "run": "no training"}
             for b, v in zip(base["baselines"], base["baseline_mse"])]
    return tables.show(tables.compare(rows), digits=3, caption=tables.caption([records[r] for r in T1_LABELS]))


def training_curves_figure(records):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for name, rec in records.items():
        curve = rec.arrays["loss_curve"]
        ax.plot(curve[:, 0], curve[:, 1], label=name, lw=1)
    ax.set(yscale="log", xscale="log", xlabel="step", ylabel="training MSE")
    ax.legend(fontsize=6, ncol=2)
    return fig


def findings(records) -> list[str]:
    """The chapter's findings, as sentences computed from the runs shown (Markdown lines)."""
    from .. import tables
    lines = []
    profiles = sorted({r.profile for r in records.values()})
    lines.append(f"*Runs shown: {', '.join(profiles)}.*"
                 + (" Smoke runs: not comparable with the document." if "smoke" in profiles else ""))
    ours = {run: records[run].metrics["test_mse"] for run in DOC_T1}
    order_doc, order_ours = sorted(DOC_T1, key=DOC_T1.get), sorted(ours, key=ours.get)
    names = {"affine_simple": "simple", "affine_deep": "deep", "affine_autoencoder": "adversarial autoencoder"}
    ratio = {r: ours[r] / DOC_T1[r] for r in DOC_T1}
    furthest = max(ratio, key=ratio.get)
    base = records["affine_deep"].metrics
    lines.append(f"- **H-T1.** Document's order of affine losses: {' < '.join(names[r] for r in order_doc)}; "
                 f"ours: {' < '.join(names[r] for r in order_ours)} "
                 f"({'agrees' if order_doc == order_ours else 'does not agree'}). Our losses are "
                 + ", ".join(f"{names[r]} {ours[r]:.4f} ({ratio[r]:.1f}x the document's)" for r in DOC_T1)
                 + f"; as a ratio the {names[furthest]} model is furthest from the document. Trivial outputs on the "
                 "same digits: " + ", ".join(f"{b} {v:.4f}" for b, v in zip(base["baselines"], base["baseline_mse"]))
                 + ".")
    ext = extrapolation_frame(records, ROTATION_RUNS).set_index("model")
    ratio_ext = ext["ratio (4, 9) / others"]
    trivial = [m for m in ext.index if m.startswith("baseline")]
    best_trivial = min(ext.loc[m, "all digits, all angles"] for m in trivial)
    beating = [r for r in ROTATION_RUNS if ext.loc[r, "all digits, all angles"] < best_trivial]
    supported = max(ratio_ext[r] for r in ROTATION_RUNS[:3]) < ratio_ext[ROTATION_RUNS[3]]
    lines.append("- **H-F7, extrapolation to 4 and 9.** Loss of digits 4 and 9 at angles they never saw, over the "
                 "loss of the other digits at the same angles (1 = extrapolates as well as it interpolates): "
                 + ", ".join(f"{m} {v:.2f}" for m, v in ratio_ext.items()) + ". The document claims the HyperNets "
                 "extrapolate and the autoencoder does not: " + ("our runs support this" if supported else
                                                                 "our runs do not show this")
                 + ". The criterion is weak: the trivial outputs, which learn nothing, score between "
                 f"{min(ratio_ext[m] for m in trivial):.2f} and {max(ratio_ext[m] for m in trivial):.2f} on it. "
                 "Models whose mean loss beats every trivial output: " + (", ".join(beating) or "none") + ".")
    comp = extrapolation_frame(records, COMPENSATION_RUNS).set_index("model")["all digits, all angles"]
    lines.append("- **H-F10/H-F11, compensation.** Mean test MSE over all angles: HyperNet "
                 f"{comp['compensate_deep']:.4f}, adversarial autoencoder {comp['compensate_autoencoder']:.4f} ("
                 + ("the HyperNet is better" if comp["compensate_deep"] < comp["compensate_autoencoder"] else
                    "the autoencoder is as good or better") + ").")
    rec = records["compensate_deep"]
    m = rec.metrics
    if "six_nine_output" in rec.arrays:
        upside = np.abs(np.abs(rec.arrays["angles"]) - 180) <= 30
        parts = []
        for run, label in (("compensate_deep", "HyperNet"), ("compensate_autoencoder", "adversarial autoencoder")):
            out = records[run].arrays["six_nine_output"][:, upside].mean(1)     # [true 6, true 9] x (own, other, else)
            parts.append(f"{label}: a 6 restored as a 9 {100 * out[0, 1]:.0f}% of the time, a 9 as a 6 "
                         f"{100 * out[1, 1]:.0f}%, each read as itself {100 * out[0, 0]:.0f}% / {100 * out[1, 0]:.0f}%")
        inp = rec.arrays["six_nine_input"][:, upside].mean(1)
        lines.append(f"- **6 and 9.** A small MNIST classifier ({m['classifier_steps']} steps; "
                     f"{100 * m['classifier_test_accuracy']:.1f}% on the {m['classifier_test_images']:,} upright test "
                     f"digits) reads the outputs for 6s and 9s turned by 150-210 degrees ({int(upside.sum())} test "
                     f"angles, {m['test_images'] // 10} digits each). " + "; ".join(parts)
                     + f". The rotated inputs themselves are read as the other digit {100 * inp[0, 1]:.0f}% (6) and "
                     f"{100 * inp[1, 1]:.0f}% (9) of the time. (9 was trained on [-45, 45] degrees only, so part of "
                     "its error is extrapolation.)")
    lines.append("")
    lines.append(f"*{tables.caption(records)}*")
    return lines


def parameter_table(layers: dict):
    """Parameters of each model, from its layer table (`plots.layer_table`)."""
    import pandas as pd
    from .. import tables
    return tables.show(pd.DataFrame({"model": list(layers), "parameters": [int(t["parameters"].sum())
                                                                           for t in layers.values()]}),
                       caption=tables.CODE)

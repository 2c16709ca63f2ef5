"""HyperNets experiments: rotation, affine transformation and rotation compensation of MNIST.

One task config per trained model. Training data are MNIST training digits,
transformed on the fly on the device; every number and figure uses test-set
digits only. Pixels are in [-1, 1]; losses are mean squared errors on that scale
(the authors' code's convention).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..profiles import unknown_training_profile
from ..data.letters import load_letters
from ..data.mnist import load_mnist, to_signed
from ..data.transforms import affine, random_affine_theta, rotate
from ..errors import UnknownChoiceError
from ..models.hypernets import build
from ..train import checkpoint_path, fit, seed_everything, step_generator
from ..results import config_hash

CHAPTER = "hypernets"
TASKS = ("rotate", "affine", "compensate")
FILL = -1.0                       # background of [-1, 1] images
RESTRICTED_DIGITS = (4, 9)        # trained on a narrow range of angles only: the extrapolation test
DISCRETE_ANGLES = tuple(range(0, 360, 45))
FIGURE_ANGLES = tuple(range(0, 360, 40))   # mostly angles the discrete models never saw

# experiment name -> (task, model, angles)
RUNS = {
    "rotate_simple_discrete": ("rotate", "simple", "discrete"),
    "rotate_deep_discrete": ("rotate", "deep", "discrete"),
    "rotate_deep_all": ("rotate", "deep", "all"),
    "rotate_autoencoder_all": ("rotate", "autoencoder", "all"),
    "affine_simple": ("affine", "simple", "all"),
    "affine_deep": ("affine", "deep", "all"),
    "affine_autoencoder": ("affine", "autoencoder", "all"),
    "compensate_deep": ("compensate", "deep", "all"),
    "compensate_autoencoder": ("compensate", "autoencoder", "all"),
}
TARGETS_OF = {
    "rotate_simple_discrete": ["H-F2", "H-F3", "H-F4", "H-F7"],
    "rotate_deep_discrete": ["H-F4", "H-F5", "H-F7"],
    "rotate_deep_all": ["H-F7"],
    "rotate_autoencoder_all": ["H-F1", "H-F6", "H-F7"],
    "affine_simple": ["H-T1"],
    "affine_deep": ["H-F8", "H-T1"],
    "affine_autoencoder": ["H-F9", "H-T1"],
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
    seed: int = 0
    code_version: int = 1


def config_for(experiment: str):
    """profile -> TaskConfig for one of RUNS."""
    if experiment not in RUNS:
        raise UnknownChoiceError("HyperNets experiment", experiment, RUNS)
    task, model, angles = RUNS[experiment]

    def make(profile: str) -> TaskConfig:
        if profile == "smoke":
            return TaskConfig(task, model, angles, steps=25 if model == "simple" else 60, batch_size=16,
                              test_per_digit=6, angle_bins=8)
        if profile == "reduced":  # sized to train all nine models in about an hour of CPU
            if model == "simple":
                # the affine task leaves its loss plateau later than rotation (about step 450 of 500): give it 2000
                return TaskConfig(task, model, angles, steps=2000 if task == "affine" else 500, batch_size=32,
                                  test_per_digit=50)
            if model == "deep":      # the compensation model's image-driven gate costs 5x a step
                return TaskConfig(task, model, angles, steps=1500 if task == "compensate" else 3000,
                                  batch_size=128, test_per_digit=100)
            return TaskConfig(task, model, angles, steps=6000, batch_size=128, test_per_digit=100)
        if profile == "full":     # the authors' code: 100k iterations (200k for the deep model), batch 128
            return TaskConfig(task, model, angles, steps=200_000 if model == "deep" else 100_000,
                              batch_size=128, test_per_digit=500)
        raise unknown_training_profile(profile)
    return make


def control_params(angles_deg: torch.Tensor) -> torch.Tensor:
    """The control input of rotation models: (cos a, sin a)."""
    a = torch.deg2rad(angles_deg)
    return torch.stack([a.cos(), a.sin()], dim=-1)


def theta_params(theta: torch.Tensor) -> torch.Tensor:
    """The control input of affine models: the six matrix entries."""
    return theta.flatten(1)


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
        theta = random_affine_theta(images.shape[0], g, device=images.device)
        return images, theta_params(theta), affine(images, theta, fill=FILL)
    angles = sample_angles(labels, config, g)
    rotated = rotate(images, angles, fill=FILL)
    if config.task == "rotate":
        return images, control_params(angles), rotated
    return rotated, None, images                      # compensate: no angle given


def test_digits(images: torch.Tensor, labels: torch.Tensor, per_digit: int):
    """The first `per_digit` test images of each digit, ordered by digit."""
    idx = torch.cat([torch.nonzero(labels == d).flatten()[:per_digit] for d in range(10)])
    return images[idx], labels[idx]


@torch.no_grad()
def per_digit_angle_loss(model, images, labels, config: TaskConfig, chunk: int = 250):
    """MSE per digit at each test angle: [10, angle_bins] and the angles."""
    angles = torch.linspace(-180, 180, config.angle_bins + 1, device=images.device)[:-1]
    losses = torch.zeros(10, len(angles))
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
        err = torch.cat(errs)
        losses[:, k] = torch.zeros(10, device=err.device).index_add_(0, labels, err).cpu() / \
            torch.bincount(labels, minlength=10).clamp(min=1).cpu()
    return losses.numpy(), angles.cpu().numpy()


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


def run_task(config: TaskConfig, ctx) -> tuple[dict, dict]:
    if config.task not in TASKS:
        raise UnknownChoiceError("HyperNets task", config.task, TASKS)
    device = ctx.device
    seed_everything(config.seed)
    train_u8, train_y = load_mnist(ctx.data_dir, train=True, device=device)
    test_u8, test_y = load_mnist(ctx.data_dir, train=False, device=device)
    train_x = to_signed(train_u8)
    test_x, test_y = test_digits(to_signed(test_u8), test_y, config.test_per_digit)
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

    name = f"{config.task}_{config.model}_{config.angles}"
    result = fit(model, loss_fn, batch_fn, steps=config.steps, lr=config.lr, device=device,
                 checkpoint=checkpoint_path(ctx.results_dir, CHAPTER, name, config_hash(config)),
                 checkpoint_every=500, log_every=max(1, config.steps // 60), desc=name)
    model.eval()
    metrics = {"throughput": round(result.items_per_s, 1), "train_wall_s": round(result.wall_s, 1),
               "parameters": sum(p.numel() for p in model.parameters()), "steps": config.steps}
    arrays = {"loss_curve": np.array(result.losses, dtype=np.float32)}
    g = torch.Generator().manual_seed(1234)          # fixed test transformations
    if config.task == "affine":
        with torch.no_grad():
            image, params, target = make_example(test_x, test_y, config, g)
            errs = torch.cat([(model(image[s:s + 250], params[s:s + 250]) - target[s:s + 250])
                              .pow(2).flatten(1).mean(1) for s in range(0, len(image), 250)])
            metrics["test_mse"] = errs.mean().item()
            metrics["test_mse_per_digit"] = [errs[test_y == d].mean().item() for d in range(10)]
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
        losses, angles = per_digit_angle_loss(model, test_x, test_y, config)
        arrays["per_digit_angle_loss"], arrays["angles"] = losses, angles
        metrics["test_mse"] = float(losses.mean())
        metrics["test_mse_per_digit"] = losses.mean(1).tolist()
        # digits of the figures: 1 and 4 (rotation), 6, 1 and 9 (compensation)
        digits = (1, 4) if config.task == "rotate" else (6, 1, 9)
        first = [int(torch.nonzero(test_y == d).flatten()[0]) for d in digits]
        arrays["panel"] = rotation_panel(model, test_x[first], config)
        arrays["panel_digits"] = np.array(digits)
        arrays["panel_angles"] = np.array(FIGURE_ANGLES)
        if config.task == "rotate" and config.model != "autoencoder":
            letters, source = load_letters(ctx.data_dir, n=4, seed=config.seed)
            arrays["letters_panel"] = rotation_panel(model, to_signed(letters).to(device), config)
            metrics["letters_source"] = source
    metrics["targets"] = TARGETS_OF.get(f"{config.task}_{config.model}" + (
        f"_{config.angles}" if config.task == "rotate" else ""), [])
    return metrics, arrays


def run(ctx, experiment: str, overrides: dict | None = None):
    """Record (or load) one of RUNS in this context."""
    return ctx.run(experiment, config_for(experiment), run_task, overrides)

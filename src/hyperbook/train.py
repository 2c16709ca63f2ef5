"""The training loop every chapter shares.

Batches come from `batch_fn(step)`, a pure function of the step number (data
sampled with a per-step generator), so a run killed at step k and resumed from
its checkpoint sees exactly the batches it would have seen.
"""
from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_generator(seed: int, step: int, device="cpu") -> torch.Generator:
    """A generator for one step's randomness, independent of what ran before."""
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + step)
    return g


@dataclass
class FitResult:
    losses: list = field(default_factory=list)      # (step, mean loss over the logging window)
    steps: int = 0
    wall_s: float = 0.0
    items_per_s: float = 0.0
    resumed_from: int = 0


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(model: torch.nn.Module, loss_fn: Callable, batch_fn: Callable[[int], tuple], *, steps: int,
        lr: float = 1e-3, optimizer: str = "adam", weight_decay: float = 0.0, momentum: float = 0.9,
        lr_schedule: Callable[[int], float] | None = None, device: str = "cpu",
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1000,
        log_every: int = 50, desc: str = "train", progress: bool = True,
        stop_after: int | None = None, nesterov: bool = False, precision: str = "fp32",
        decay_weights_only: bool = False, adam_impl: str | None = None, counted: bool = True) -> FitResult:
    """Train `model` for `steps` optimiser steps.

    loss_fn(model, batch) -> scalar loss. batch_fn(step) -> batch on `device`
    (its first element's length counts the items for throughput).
    lr_schedule(step) -> multiplier of lr. A checkpoint at `checkpoint` is
    written every `checkpoint_every` steps and resumed from when present; it is
    removed when training completes. `stop_after` ends early (tests of resume).
    SGD uses plain (heavy-ball) momentum unless `nesterov` is asked for: the documents say
    "momentum 0.9". `precision` is "fp32" (the documents' setting, the default) or "bf16"
    (autocast on CUDA only; an opt-in speed setting that a record must name). With
    `decay_weights_only`, weight decay skips biases and normalisation parameters (tensors of
    fewer than 2 dimensions), as papers that decay "the weights" mean. `adam_impl` picks Adam's kernel
    (`ADAM_IMPLS`; default `DEFAULT_ADAM_IMPL`): the same update rule, so it is no part of any config.
    `counted=False` marks an auxiliary model whose steps its unit does not count (`step_times` skips it).
    """
    model.to(device).train()
    check_precision(precision)
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_weights_only and weight_decay:
        params = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    if optimizer == "adam":
        opt = make_adam(params, lr=lr, weight_decay=weight_decay, impl=adam_impl)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    elif optimizer == "adadelta":
        opt = torch.optim.Adadelta(params, lr=lr, rho=0.95, weight_decay=weight_decay)
    else:
        from .errors import UnknownChoiceError
        raise UnknownChoiceError("optimizer", optimizer, ("adam", "sgd", "adadelta"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule) if lr_schedule else None

    result = FitResult()
    ckpt = Path(checkpoint) if checkpoint else None
    start_step = 0
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if optimizer == "adam":      # the saved groups carry the kernel flags of the run that saved them
            set_adam_impl(opt, adam_impl)
        if sched and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        start_step = result.resumed_from = state["step"]
        result.losses = state["losses"]
        result.wall_s = note_resumed(state)
        torch.set_rng_state(state["rng"])  # dropout etc. continue as if never stopped

    use_amp = precision == "bf16" and str(device).startswith("cuda")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    window, items, t0 = [], 0, time.time()
    end = steps if stop_after is None else min(steps, stop_after)
    bar = tqdm(range(start_step, end), desc=desc, disable=not progress, initial=start_step, total=steps,
               mininterval=2.0)
    for step in step_clock(bar, device, desc, counted):
        batch = batch_fn(step)
        with autocast():
            loss = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        window.append(loss.detach())
        items += len(batch[0])
        if (step + 1) % log_every == 0 or step + 1 == steps:
            mean = torch.stack(window).float().mean().item()
            result.losses.append((step + 1, mean))
            bar.set_postfix(loss=f"{mean:.4g}")
            window = []
        if ckpt is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict() if sched else None, "step": step + 1,
                                "losses": result.losses, "rng": torch.get_rng_state(), "wall_s": result.wall_s + time.time() - t0}, ckpt)
    return finish_training(result, model, bar, t0, items, end, steps, ckpt)


@contextlib.contextmanager
def _collecting(name: str):
    """Bind the module global `name` to a fresh list inside the block, restoring what it was (None, or an outer
    block's list) after: how training loops report to whoever is listening, at no cost when nobody is."""
    scope = globals()
    previous, scope[name] = scope[name], []
    try:
        yield scope[name]
    finally:
        scope[name] = previous


_CARRIED: list | None = None      # set inside `carried_wall()`: training seconds resumed checkpoints brought in


def carried_wall():
    """Collect, as a list of seconds, the training time that resumed checkpoints had already spent in earlier
    processes (`note_resumed`), so that a record of a resumed run states its whole cost, not its last process's."""
    return _collecting("_CARRIED")


def note_resumed(state: dict) -> float:
    """The wall time a checkpoint carries (0 for one without it), noted for `carried_wall`; returns it."""
    seconds = float(state.get("wall_s", 0.0))
    if _CARRIED is not None:
        _CARRIED.append(seconds)
    return seconds


_STEP_LOG: list | None = None     # set inside `step_times()`: one (desc, [seconds per step]) per training loop


def step_times():
    """Collect the wall time of every step of every training loop run inside, as a list of (desc, [seconds]),
    one entry per loop (`hyperbook time` takes medians of these). Outside it, loops are not timed."""
    return _collecting("_STEP_LOG")


def step_clock(steps, device, desc: str, counted: bool = True):
    """Iterate `steps`; inside `step_times()`, note how long each loop body took (batch, forward, backward,
    optimiser, logging: the whole step). On CUDA each timed step ends with a synchronisation, which only
    timing pays for; a training run outside `step_times()` iterates untouched."""
    log = _STEP_LOG
    if log is None or not counted:
        yield from steps
        return
    durations: list[float] = []
    log.append((desc, durations))
    cuda = str(device).startswith("cuda")
    for step in steps:
        t = time.perf_counter()
        yield step
        if cuda:
            torch.cuda.synchronize()
        durations.append(time.perf_counter() - t)


def finish_training(result: FitResult, model, bar, t0: float, items: int, end: int, steps: int,
                    ckpt: Path | None) -> FitResult:
    """The common end of a training loop: timing and throughput, the checkpoint removed once complete."""
    bar.close()
    elapsed = time.time() - t0
    result.wall_s += elapsed
    result.steps = end
    result.items_per_s = items / elapsed if elapsed > 0 else 0.0
    if ckpt is not None and end == steps and ckpt.exists():
        ckpt.unlink()
    model.eval()
    return result


# Adam's kernels: "fused" (one fused kernel per device and dtype; CPU and CUDA in this torch), "foreach"
# (multi-tensor ops) or "plain" (torch's per-parameter loop, the reference). They compute the same update;
# fused differs from plain only by float rounding (tests/test_speed_adam.py bounds it), and on the simple
# HyperNet's 40M parameters it took a large share of the step off (results/_timings/speedups.json).
ADAM_IMPLS = ("fused", "foreach", "plain")
DEFAULT_ADAM_IMPL = "fused"


def _adam_flags(impl: str | None) -> dict:
    impl = DEFAULT_ADAM_IMPL if impl is None else impl
    if impl not in ADAM_IMPLS:
        from .errors import UnknownChoiceError
        raise UnknownChoiceError("Adam implementation", impl, ADAM_IMPLS)
    return {"fused": impl == "fused" or None, "foreach": impl == "foreach" or None}


def make_adam(params, lr: float = 1e-3, weight_decay: float = 0.0, impl: str | None = None, **kwargs):
    """torch.optim.Adam with the kernel `impl` (see ADAM_IMPLS)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **_adam_flags(impl), **kwargs)


def set_adam_impl(opt: torch.optim.Adam, impl: str | None = None) -> torch.optim.Adam:
    """Switch a (restored) Adam to the kernel `impl`; the fused kernel wants its step counts on the device."""
    flags = _adam_flags(impl)
    for group in opt.param_groups:
        group.update(flags)
        if flags["fused"]:
            for p in group["params"]:
                st = opt.state.get(p, {})
                if torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].to(device=p.device, dtype=torch.float32)
    return opt


PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        from .errors import UnknownChoiceError
        raise UnknownChoiceError("precision", precision, PRECISIONS)
    return precision


def checkpoint_path(results_dir, chapter: str, experiment: str, key: str) -> Path:
    """Where an interrupted run keeps its checkpoint (git-ignored)."""
    return Path(results_dir) / "_checkpoints" / chapter / f"{experiment}-{key}.pt"

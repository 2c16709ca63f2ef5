"""Speed of the batched kernels against the naive loops they replace, as ratios in one run.

Not a timed test: timings depend on the machine. `python -m hyperbook.bench` prints them;
chapters call the functions for their own kernels. `python -m hyperbook.bench speedups` measures the exact
savings of the training steps (`hyperbook.speedups`).
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F


def best_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def gated_dense_vs_loop(batch: int = 64, n: int = 200, device="cpu") -> dict:
    """HyperNets' per-sample gated layer: one batched matmul vs a Python loop over the batch."""
    from .models.hypernets import GatedDense
    layer = GatedDense(n, n).to(device)
    x = torch.randn(batch, n, device=device)
    logits = torch.randn(batch, n, n, device=device)
    batched = best_time(lambda: layer(x, logits))
    looped = best_time(lambda: torch.stack([layer(x[b:b + 1], logits[b:b + 1])[0] for b in range(batch)]))
    dense = torch.nn.Linear(n, n, bias=False).to(device)
    plain = best_time(lambda: dense(x))
    return {"kernel": f"gated dense {n}x{n}, batch {batch}", "batched_ms": batched * 1e3,
            "loop_ms": looped * 1e3, "plain_dense_ms": plain * 1e3,
            "loop / batched": looped / batched, "batched / plain dense": batched / plain}


# ---------------------------------------------------------------- issue 16: exact savings as paired step ratios
# Each case trains two copies of one model, identically initialised, on one fixed batch of the experiment's
# full size: the old path (kernels and forms before the saving) and the new one, their steps interleaved so
# that both see the same machine state. A step is zero_grad, forward, loss, backward and the optimiser step
# (the batch is drawn once, outside the timing). `exactness` is measured in the same process: the largest
# relative difference of the two paths' gradients on one batch (max |g_old - g_new| / max |g_old| per
# tensor), and for a change of Adam's kernel the same for the parameters after 3 steps on equal gradients.
SPEEDUPS_PATH = Path(__file__).resolve().parents[2] / "results" / "_timings" / "speedups.json"


@dataclass
class Path2:
    """One side of a pair: the path keyword(s) given to the model's forward, and the optimiser kernel."""
    fast: bool
    adam: str = "plain"


@dataclass
class Case:
    name: str                    # <chapter>/<experiment>: <saving>
    experiment: str
    saving: str
    make: Callable               # data_dir -> (model factory(fast) -> model, batch, loss(model, batch, fast),
                                 #              optimiser factory(params, adam impl))
    old: Path2
    new: Path2


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = a.abs().max().item()
    return (a - b).abs().max().item() / scale if scale > 0 else (a - b).abs().max().item()


def _grads(model, batch, loss, fast, seed=0):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)                       # the same dropout masks on both paths
    loss(model, batch, fast).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _exactness(make_model, batch, loss, make_opt, old: Path2, new: Path2) -> dict:
    out = {}
    model = make_model(old.fast)
    if old.fast != new.fast:
        other = make_model(new.fast)
        other.load_state_dict(model.state_dict())
        g_old, g_new = _grads(model, batch, loss, old.fast), _grads(other, batch, loss, new.fast)
        if g_old.keys() != g_new.keys():
            raise AssertionError(f"the two paths give gradients to different parameters: {g_old.keys() ^ g_new.keys()}")
        out["grad_max_rel"] = max(_rel(g_old[n], g_new[n]) for n in g_old)
    if old.adam != new.adam:
        grads = _grads(model, batch, loss, new.fast)
        copies = [copy.deepcopy(model) for _ in range(2)]
        for m, impl in zip(copies, (old.adam, new.adam)):
            opt = make_opt(m.parameters(), impl)
            for _ in range(3):
                for n, p in m.named_parameters():
                    p.grad = grads[n].clone() if n in grads else None
                opt.step()
        out["adam_param_max_rel_after_3_steps"] = max(_rel(a.detach(), b.detach()) for a, b in
                                                     zip(copies[0].parameters(), copies[1].parameters()))
    return out


def _paired_ms(step_old, step_new, steps: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        step_old()
        step_new()
    t_old, t_new = [], []
    for _ in range(steps):
        for step, times in ((step_old, t_old), (step_new, t_new)):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(t_old), 1e3 * statistics.median(t_new)


def run_case(case: Case, steps: int = 15, warmup: int = 3, data_dir=None) -> dict:
    make_model, batch, loss, make_opt = case.make(data_dir)
    exact = _exactness(make_model, batch, loss, make_opt, case.old, case.new)
    sides = []
    for side in (case.old, case.new):
        torch.manual_seed(0)
        model = make_model(side.fast)
        opt = make_opt([p for p in model.parameters() if p.requires_grad], side.adam)

        def step(model=model, opt=opt, fast=side.fast):
            opt.zero_grad(set_to_none=True)
            loss(model, batch, fast).backward()
            opt.step()
        sides.append(step)
    old_ms, new_ms = _paired_ms(*sides, steps, warmup)
    from .results import _device_name
    return {"experiment": case.experiment, "saving": case.saving, "old_ms": round(old_ms, 2),
            "new_ms": round(new_ms, 2), "ratio": round(old_ms / new_ms, 3), "exactness": exact,
            "date": _dt.date.today().isoformat(), "steps": steps, "warmup": warmup, "batch": len(batch[0]),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": _device_name("cpu")}


# -- the cases
def _mnist(data_dir, n: int, seed: int = 0):
    from .data.mnist import load_mnist
    from .results import REPO_ROOT
    x, y = load_mnist(data_dir or REPO_ROOT / "data", train=True)
    idx = torch.randint(len(x), (n,), generator=torch.Generator().manual_seed(seed))
    return x[idx], y[idx]


def _adam(lr):
    from .train import make_adam
    return lambda params, impl: make_adam(params, lr=lr, impl=impl)


def _hypernets(experiment: str, lever: str = "dedupe"):
    """lever: what `fast` switches: 'dedupe' (each distinct gate once) or 'gate_backward' (`SoftmaxGated`'s
    written-out backward; both sides then take the default dedupe path)."""
    def make(data_dir):
        from .data.mnist import to_signed
        from .experiments import hypernets as H
        from .models.hypernets import build
        config = H.config_for(experiment)("full")
        x, y = _mnist(data_dir, config.batch_size)
        batch = H.make_example(to_signed(x), y, config, torch.Generator().manual_seed(0))
        task, kind, _ = H.RUNS[experiment]

        def make_model(fast):
            torch.manual_seed(0)
            model = build(kind, n_params=6 if task == "affine" else 2, image_control=task == "compensate")
            if lever == "gate_backward":
                model.gated.fused_backward = fast
            return model

        def loss(m, b, fast):
            image, params, target = b
            dedupe = fast if lever == "dedupe" else True
            out = m(image, dedupe=dedupe) if params is None else m(image, params, dedupe=dedupe)
            return (out - target).pow(2).mean()
        return make_model, batch, loss, _adam(config.lr)
    return make


def _hecnn(experiment: str, lever: str = "turn_filters"):
    """lever: what `fast` switches: 'turn_filters' (the generator's turned filters) or 'mean_first' (full heads
    applied to the batch's mean features; the other setting at its default)."""
    def make(data_dir):
        from .data.mnist import to_signed
        from .experiments import hecnn as E
        from .models.hecnn import build
        config = E.config_for(experiment)("full")
        x, y = _mnist(data_dir, config.batch_size)
        x = to_signed(x)
        name = E.RUNS[experiment][0]

        def make_model(fast):
            torch.manual_seed(0)
            model = build(name)
            model.train()
            if hasattr(model, "calibrate"):
                model.calibrate(x)
            return model

        def loss(m, b, fast):
            return F.cross_entropy(m(b[0], config.param_mode, **{lever: fast}), b[1])
        return make_model, (x, y), loss, _adam(config.lr)
    return make


def _rmnist_once(experiment: str):
    """R-MNIST's angles are fixed per image, so its training set is turned once before training; the old path
    turns each batch's images by their fixed angles inside the step (a grid_sample per batch)."""
    def make(data_dir):
        from .experiments import hecnn as E
        from .models.hecnn import build
        from .data.mnist import load_mnist, to_signed
        from .results import REPO_ROOT
        config = E.config_for(experiment)("full")
        x_u8, y = load_mnist(data_dir or REPO_ROOT / "data", train=True)
        angles = E.rmnist_angles(len(x_u8), E.RMNIST_TRAIN_SEED)
        idx = torch.randint(len(x_u8), (config.batch_size,), generator=torch.Generator().manual_seed(0))
        turned_once = E.rotated_mnist(x_u8, E.RMNIST_TRAIN_SEED)[0]   # what `datasets` keeps for training
        name = E.RUNS[experiment][0]

        def make_model(fast):
            torch.manual_seed(0)
            return build(name).train()

        def loss(m, b, fast):
            i, labels = b
            images = turned_once[i] if fast else E.turn_u8(x_u8[i], angles[i])
            return F.cross_entropy(E.forward(m, to_signed(images), config.param_mode), labels)
        return make_model, (idx, y[idx]), loss, _adam(config.lr)
    return make


def _rfnn(kind: str):
    def make(data_dir):
        from .experiments.thesis_rfnn import MnistSizesConfig
        from .models.rfnn import RFNN
        config = MnistSizesConfig.for_profile("full")
        x, y = _mnist(data_dir, config.batch_size)
        x = x.float().div(255.0).unsqueeze(1)

        def make_model(fast):
            torch.manual_seed(0)
            return RFNN(kind, alpha_init=config.alpha_init, banded_lrn=fast).train()

        def opt(params, impl):           # the chapter's Adadelta (rho 0.95, as `fit` builds it)
            return torch.optim.Adadelta(params, lr=config.lr, rho=0.95)
        return make_model, (x, y), lambda m, b, fast: F.cross_entropy(m(b[0]), b[1]), opt
    return make


def _cases() -> list[Case]:
    cases = []
    for exp in ("rotate_simple_discrete", "rotate_deep_discrete"):
        make = _hypernets(exp)
        cases += [Case(f"hypernets/{exp}: distinct gates once", f"hypernets/{exp}", "distinct gates once", make,
                       Path2(False), Path2(True)),
                  Case(f"hypernets/{exp}: fused Adam", f"hypernets/{exp}", "fused Adam", make,
                       Path2(True), Path2(True, "fused")),
                  Case(f"hypernets/{exp}: both", f"hypernets/{exp}", "distinct gates once + fused Adam", make,
                       Path2(False), Path2(True, "fused"))]
    for exp in ("affine_simple", "rotate_deep_all", "compensate_deep"):
        cases.append(Case(f"hypernets/{exp}: fused Adam", f"hypernets/{exp}", "fused Adam", _hypernets(exp),
                          Path2(True), Path2(True, "fused")))
    for exp in ("rotate_deep_all", "affine_deep", "affine_simple", "compensate_deep"):
        cases.append(Case(f"hypernets/{exp}: gate backward", f"hypernets/{exp}", "softmax-gate backward written out",
                          _hypernets(exp, "gate_backward"), Path2(False, "fused"), Path2(True, "fused")))
    exp = "t1_hecnn_l_mnist"
    make = _hecnn(exp)
    cases += [Case(f"hecnn/{exp}: turned filters", f"hecnn/{exp}", "generator: turned filters, one pass", make,
                   Path2(False, "fused"), Path2(True, "fused")),
              Case(f"hecnn/{exp}: fused Adam", f"hecnn/{exp}", "fused Adam", make, Path2(True), Path2(True, "fused")),
              Case(f"hecnn/{exp}: both", f"hecnn/{exp}", "turned filters + fused Adam", make,
                   Path2(False), Path2(True, "fused"))]
    for exp in ("t2_hecnn_regular", "t6_hecnn_n_regular"):
        cases.append(Case(f"hecnn/{exp}: mean features first", f"hecnn/{exp}", "full heads on the batch's mean features",
                          _hecnn(exp, "mean_first"), Path2(False, "fused"), Path2(True, "fused")))
    exp = "t2_hecnn_l_regular"
    cases.append(Case(f"hecnn/{exp}: fused Adam", f"hecnn/{exp}", "fused Adam", _hecnn(exp),
                      Path2(True), Path2(True, "fused")))
    exp = "t1_cnn_rmnist"
    cases.append(Case(f"hecnn/{exp}: R-MNIST turned once", f"hecnn/{exp}", "R-MNIST turned once, not per batch",
                      _rmnist_once(exp), Path2(False, "fused"), Path2(True, "fused")))
    for kind in ("rf", "pixel"):
        cases.append(Case(f"thesis_rfnn/mnist_sizes ({kind}): banded LRN", f"thesis_rfnn/mnist_sizes ({kind})",
                          "LRN as one banded matmul", _rfnn(kind), Path2(False), Path2(True)))
    return cases


CASES = {c.name: c for c in _cases()}


def measure_speedups(only=None, steps: int = 15, warmup: int = 3, data_dir=None, report=None) -> list[dict]:
    """Run the cases whose names contain one of `only` (all when None), one after another, in this process;
    report(row) is called after each."""
    chosen = [c for name, c in CASES.items() if not only or any(o in name for o in only)]
    if not chosen:
        from .errors import UnknownChoiceError
        raise UnknownChoiceError("speed-up case", only, CASES)
    rows = []
    for case in chosen:
        rows.append(run_case(case, steps, warmup, data_dir))
        if report:
            report(rows[-1])
    return rows


def write_speedups(rows: list[dict], path=SPEEDUPS_PATH) -> Path:
    """Merge rows into the JSON file by (experiment, saving). The file sits with the step-time tables, so it
    has their header keys; its `units` stays empty (paired ratios, not step times for the planner)."""
    path = Path(path)
    table = json.loads(path.read_text()) if path.exists() else {}
    kept = {(r["experiment"], r["saving"]): r for r in table.get("speedups", [])}
    kept.update({(r["experiment"], r["saving"]): r for r in rows})
    from .results import _device_name
    table.update(machine=_device_name("cpu"), device="cpu", torch=torch.__version__,
                 threads=torch.get_num_threads(), date=_dt.date.today().isoformat(), units={},
                 note="paired ratios old/new of one training step in one process (hyperbook.bench speedups)",
                 speedups=sorted(kept.values(), key=lambda r: (r["experiment"], r["saving"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    from .results import write_text_atomic
    return write_text_atomic(path, json.dumps(table, indent=1))


def format_speedups(rows: list[dict]) -> str:
    lines = [f"{'experiment':<34} {'saving':<38} {'old ms':>9} {'new ms':>9} {'ratio':>6}  exactness"]
    for r in rows:
        ex = ", ".join(f"{k} {v:.1e}" for k, v in r["exactness"].items())
        lines.append(f"{r['experiment']:<34} {r['saving']:<38} {r['old_ms']:9.1f} {r['new_ms']:9.1f} "
                     f"{r['ratio']:6.2f}  {ex}")
    return "\n".join(lines)


def speedups_markdown(path=SPEEDUPS_PATH) -> str:
    """The README's speed table, drawn from the committed speedups JSON: per saving the paired old/new
    ms per step, the ratio, the exactness check, and the unit's full protocol at the new step time (a row
    named 'unit (model)' times one of the unit's two models, half its steps)."""
    from .units import get_unit
    table = json.loads(Path(path).read_text())
    dates = sorted({r.get("date", table["date"]) for r in table["speedups"]}) or [table["date"]]
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"      # rows are merged over sessions
    lines = [f"Paired medians of one training step, old and new path in one process ({table['machine']}, "
             f"{table['threads']} threads, torch {table['torch']}, {when}; `python -m hyperbook.bench "
             "speedups`).", "",
             "| experiment | saving | ms/step old → new | ratio | exactness (max rel. difference) | full protocol now |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in table["speedups"]:
        unit_key, _, part = r["experiment"].partition(" (")
        unit = get_unit(unit_key)
        steps = unit.steps(unit.config("full")) / (2 if part else 1)
        hours = steps * r["new_ms"] / 3.6e6
        exact = ", ".join(f"{k.replace('_', ' ')} {v:.1e}" for k, v in r["exactness"].items())
        lines.append(f"| {r['experiment']} | {r['saving']} | {r['old_ms']:,.1f} → {r['new_ms']:,.1f} | "
                     f"{r['ratio']:.2f}x | {exact} | {steps:,.0f} steps, {hours:.1f} h |")
    return "\n".join(lines)


def print_kernels() -> None:
    for row in (gated_dense_vs_loop(), gated_dense_vs_loop(n=784, batch=16)):
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})


def main(argv=None) -> None:
    """python -m hyperbook.bench [kernels]: the kernel ratios; python -m hyperbook.bench speedups [...]: the
    exact savings of issue 16 as paired training-step ratios, into results/_timings/speedups.json."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m hyperbook.bench", description=main.__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("kernels", help="batched kernels against the loops they replace (printed)")
    sp = sub.add_parser("speedups", help="paired old/new training-step times of the exact savings -> JSON")
    sp.add_argument("--only", nargs="*", default=None, help="case names or parts of them (default: all)")
    sp.add_argument("--steps", type=int, default=15, help="timed steps per path (median kept; default 15)")
    sp.add_argument("--warmup", type=int, default=3)
    sp.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    sp.add_argument("--out", type=Path, default=None, help=f"default {SPEEDUPS_PATH}")
    sp.add_argument("--data-dir", type=Path, default=None)
    tb = sub.add_parser("table", help="the README's speed table, from the committed speedups JSON (printed)")
    tb.add_argument("--write", action="store_true", help="rewrite the README's speedups block with it instead")
    args = parser.parse_args(argv)
    if args.command == "speedups":
        torch.set_num_threads(args.threads)
        rows = measure_speedups(args.only, steps=args.steps, warmup=args.warmup, data_dir=args.data_dir,
                                report=lambda row: print(format_speedups([row]).splitlines()[1], flush=True))
        path = write_speedups(rows, args.out or SPEEDUPS_PATH)
        print(format_speedups(rows))
        print(f"-> {path}")
    elif args.command == "table":
        if args.write:
            from .readme_blocks import README, write_block
            print(f"{README}: speedups block {'rewritten' if write_block('speedups', speedups_markdown()) else 'unchanged'}")
        else:
            print(speedups_markdown())
    else:
        print_kernels()


if __name__ == "__main__":
    main()

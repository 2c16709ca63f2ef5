"""Per-sample convolution on a GPU: the batched form against a per-image loop and against batch-averaged
parameters, at batch 128, as one short script for a lent GPU (issue 16's goals: the batched form at least
20x faster than the loop, and within 3x of one shared filter bank).

    python -m hyperbook.gpu_check --out gpu_check.json     (device_session keeps it in results/_gpu_check/)

Each row is the median of timed repeats of forward + backward, with the device synchronised around every
repeat; the whole check takes well under two minutes on one GPU. Without a CUDA device it stops with a
clear error (NoGPUError) unless asked for `--device cpu` (used by the tests at a tiny size).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import NoGPUError
from .layers.per_sample_conv import grouped_conv2d, im2col_conv2d, looped_conv2d, per_sample_conv2d

# HE-CNN-L's main-network layers on MNIST (small_cnn: 1 -> 16 and 16 -> 16, 2x2) and E-T2's regular network
# (20 -> 20, 3x3): (in channels, out channels, kernel, map side)
LAYERS = ((1, 16, 2, 28), (16, 16, 2, 27), (20, 20, 3, 26))
GOALS = {"loop_over_batched_min": 20.0, "batched_over_averaged_max": 3.0}


def _timer(device: str, repeat: int, warmup: int = 2):
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def median_ms(fn) -> float:
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times)
    return median_ms


def conv_rows(device: str, batch: int, repeat: int, layers=LAYERS) -> list[dict]:
    """Forward + backward of one per-sample layer, by each formulation, against the loop and a shared filter."""
    median_ms = _timer(device, repeat)
    rows = []
    for cin, cout, k, side in layers:
        x = torch.randn(batch, cin, side, side, device=device, requires_grad=cin > 1)
        w = torch.randn(batch, cout, cin, k, k, device=device, requires_grad=True)
        shared = w.detach().mean(0).requires_grad_()

        def step(conv, weight):
            def run():
                x.grad = w.grad = shared.grad = None
                conv(x, weight).square().mean().backward()
            return run
        ms = {"per_sample_conv2d": median_ms(step(per_sample_conv2d, w)),
              "grouped": median_ms(step(grouped_conv2d, w)), "im2col": median_ms(step(im2col_conv2d, w)),
              "loop": median_ms(step(looped_conv2d, w)), "averaged": median_ms(step(F.conv2d, shared))}
        best = min(ms["per_sample_conv2d"], ms["grouped"], ms["im2col"])
        rows.append({"layer": f"{cin}->{cout}, {k}x{k}, {side}x{side}", "batch": batch, "ms": ms,
                     "loop_over_batched": ms["loop"] / best, "batched_over_averaged": best / ms["averaged"]})
    return rows


def model_rows(device: str, batch: int, repeat: int) -> list[dict]:
    """A whole HE-CNN-L training step (forward + backward, cross-entropy): per-sample batched, batch-averaged,
    and the per-sample loop over the main network."""
    from .experiments.hecnn_speed import LoopedHECNN
    from .models.hecnn import build
    median_ms = _timer(device, repeat)
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    rows = []
    for name in ("hecnn_l", "hecnn_l_regular"):
        model = build(name).to(device)
        model.calibrate(x)
        loop = LoopedHECNN(model)

        def step(m, mode):
            def run():
                model.zero_grad(set_to_none=True)
                F.cross_entropy(m(x, mode), y).backward()
            return run
        ms = {"sample": median_ms(step(model, "sample")), "batch": median_ms(step(model, "batch")),
              "main loop": median_ms(step(loop, "sample"))}
        rows.append({"model": name, "batch": batch, "ms": ms, "loop_over_batched": ms["main loop"] / ms["sample"],
                     "batched_over_averaged": ms["sample"] / ms["batch"]})
    return rows


def check(device: str = "cuda", batch: int = 128, repeat: int = 20) -> dict:
    """Run the conv and model rows on `device` and say whether the issue's goals are met."""
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise NoGPUError(device)
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    convs = conv_rows(device, batch, repeat)
    models = model_rows(device, batch, max(3, repeat // 2))
    from .results import _device_name
    return {"machine": _device_name(device), "device": str(device), "torch": torch.__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "batch": batch,
            "repeat": repeat, "goals": GOALS, "conv": convs, "model": models,
            "goals_met": {"loop_over_batched": all(r["loop_over_batched"] >= GOALS["loop_over_batched_min"]
                                                   for r in convs),
                          "batched_over_averaged": all(r["batched_over_averaged"] <= GOALS["batched_over_averaged_max"]
                                                       for r in convs)},
            "wall_s": round(time.perf_counter() - t0, 1)}


def format_report(report: dict) -> str:
    lines = [f"per-sample convolution on {report['machine']} (torch {report['torch']}), batch {report['batch']}, "
             "forward + backward, median ms"]
    for r in report["conv"]:
        ms = "  ".join(f"{k} {v:.3f}" for k, v in r["ms"].items())
        lines.append(f"  {r['layer']:<22} {ms}  loop/batched {r['loop_over_batched']:.1f}x  "
                     f"batched/averaged {r['batched_over_averaged']:.2f}x")
    for r in report["model"]:
        ms = "  ".join(f"{k} {v:.3f}" for k, v in r["ms"].items())
        lines.append(f"  {r['model']:<22} {ms}  loop/batched {r['loop_over_batched']:.1f}x  "
                     f"batched/averaged {r['batched_over_averaged']:.2f}x")
    lines.append(f"  goals {report['goals']}: met {report['goals_met']} ({report['wall_s']} s)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m hyperbook.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (tests only)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    report = check(args.device, args.batch, args.repeat)
    print(format_report(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        print(f"-> {args.out}")
    return report


if __name__ == "__main__":
    main()

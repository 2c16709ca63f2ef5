"""HE-CNN's speed: per-sample generated filters applied in one batched call (`per_sample_conv2d`), against two
naive Python loops and against parameters averaged over the batch (images/s, forward + backward, in one run).

The two loops are the naive references, labelled by what they loop over:
- main loop: filters generated for the whole batch at once, then the main network one image at a time;
- full loop: the whole per-sample model one image at a time (filters from that image's four turned copies).
Both include the generator, which sees 4 * B turned images and is the same work in every HE-CNN-L case, so on
one CPU thread it bounds every ratio against the batched model (`split_ms` shows its share).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..bench import best_time
from ..layers.per_sample_conv import grouped_conv2d, im2col_conv2d, looped_conv2d, per_sample_conv2d
from ..models.hecnn import HyperCNN, build
from ..profiles import unknown_training_profile
from ..train import seed_everything

BATCHED, AVERAGED = "HE-CNN-L, per-sample batched", "HE-CNN-L, batch-averaged"
MAIN_LOOP = "HE-CNN-L, per-sample loop over the main network"
FULL_LOOP = "HE-CNN-L, per-sample loop over the whole model"


@dataclass(frozen=True)
class BenchConfig:
    batch_size: int = 128
    repeat: int = 3
    code_version: int = 2


def bench_config_for(profile: str) -> BenchConfig:
    if profile == "smoke":
        return BenchConfig(batch_size=32, repeat=1)
    if profile in ("reduced", "full"):
        return BenchConfig(batch_size=128, repeat=3)
    raise unknown_training_profile(profile)


class LoopedHECNN(torch.nn.Module):
    """HE-CNN-L per sample, done naively: one image at a time through plain `F.conv2d` / `F.linear` with that
    image's filters. full=False generates all filters in one batched call and loops the main network only;
    full=True loops the whole model (each image's filters from a generator call on its four turned copies)."""

    def __init__(self, model: HyperCNN, full: bool = False):
        super().__init__()
        self.model, self.full = model, full

    def forward(self, x, mode="sample"):
        if mode != "sample":
            raise ValueError(f"the loop references are per-sample only, got mode={mode!r}")
        images = x.split(1)
        if self.full:
            return torch.cat([self.model.main(xi, _image_params(self.model.generate(xi, "sample"), 0))
                              for xi in images])
        params = self.model.generate(x, "sample")
        return torch.cat([self.model.main(xi, _image_params(params, i)) for i, xi in enumerate(images)])


def _image_params(params, i):
    """Image i's parameters without the batch axis: the main network then runs them as shared (plain) layers."""
    return [(w[i], None if b is None else b[i]) for w, b in params]


def benchmark_experiment(config: BenchConfig, ctx):
    return _benchmark(config, device=ctx.device)


def _benchmark(config: BenchConfig, device):
    """Images/s, forward + backward, for the plain CNN and HE-CNN-L's ways of applying its filters, on one
    thread (on a shared CPU, more threads made timings erratic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seed_everything(0)
        return _measure(config, device)
    finally:
        torch.set_num_threads(threads)


def _measure(config: BenchConfig, device):
    bs, rep = config.batch_size, config.repeat
    x = torch.randn(bs, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    hec = build("hecnn_l").to(device)
    cases = {"plain CNN": (build("cnn").to(device), "sample"), AVERAGED: (hec, "batch"), BATCHED: (hec, "sample"),
             MAIN_LOOP: (LoopedHECNN(hec), "sample"), FULL_LOOP: (LoopedHECNN(hec, full=True), "sample")}
    ips = {name: bs / best_time(lambda: _train_step(model, x, y, mode), repeat=rep)
           for name, (model, mode) in cases.items()}
    metrics = {"targets": [], "images_per_s": ips, "batch_size": bs,
               "ratio_batched_over_main_loop": ips[BATCHED] / ips[MAIN_LOOP],
               "ratio_batched_over_full_loop": ips[BATCHED] / ips[FULL_LOOP],
               "ratio_averaged_over_batched": ips[AVERAGED] / ips[BATCHED],
               "ratio_plain_over_batched": ips["plain CNN"] / ips[BATCHED],
               "split_ms": _split(hec, x, y, rep), "kernel_ms": _kernels(bs, device, rep),
               "torch_threads": torch.get_num_threads()}
    return metrics, {}


def _train_step(model, x, y, mode):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, mode), y).backward()


def _split(hec: HyperCNN, x, y, repeat):
    """The per-sample batched step in its two parts (ms, forward + backward): the filter generation (generator on
    4B turned images, heads, combiner; backward from a stand-in loss) and the main network given fixed filters,
    batched and looped (the part the main loop replaces)."""
    def generate():
        hec.zero_grad(set_to_none=True)
        sum(w.sum() + (0 if b is None else b.sum()) for w, b in hec.generate(x, "sample")).backward()

    with torch.no_grad():
        params = [(w.clone().requires_grad_(), None if b is None else b.clone().requires_grad_())
                  for w, b in hec.generate(x, "sample")]

    def main_loop():
        F.cross_entropy(torch.cat([hec.main(xi, _image_params(params, i)) for i, xi in enumerate(x.split(1))]),
                        y).backward()

    return {"filter generation": best_time(generate, repeat=repeat) * 1e3,
            "main network, batched": best_time(lambda: F.cross_entropy(hec.main(x, params), y).backward(),
                                               repeat=repeat) * 1e3,
            "main network, looped": best_time(main_loop, repeat=repeat) * 1e3}


def _kernels(bs, device, repeat):
    """The per-sample conv kernels alone (ms). 16 -> 16 channels, 2x2, 27x27 maps, forward: the grouped
    convolution (the key name predates im2col) vs a loop vs one shared-filter conv. Then forward + backward for
    both layer shapes of HE-CNN-L's main network, by each formulation (first layer: weight gradient only, as in
    the model, whose input needs no gradient)."""
    def fwd_bwd(conv, x, w):
        def step():
            w.grad = x.grad = None
            conv(x, w).sum().backward()
        return best_time(step, repeat=repeat) * 1e3

    xs = torch.randn(bs, 16, 27, 27, device=device)
    ws = torch.randn(bs, 16, 16, 2, 2, device=device)
    with torch.no_grad():
        out = {"grouped per-sample conv": best_time(lambda: grouped_conv2d(xs, ws), repeat=repeat) * 1e3,
               "looped per-sample conv": best_time(lambda: looped_conv2d(xs, ws), repeat=repeat) * 1e3,
               "plain conv (shared filters)": best_time(lambda: F.conv2d(xs, ws[0]), repeat=repeat) * 1e3}
    for c, size in ((1, 28), (16, 27)):
        x = torch.randn(bs, c, size, size, device=device, requires_grad=c > 1)
        w = torch.randn(bs, 16, c, 2, 2, device=device, requires_grad=True)
        forms = {"per_sample_conv2d": per_sample_conv2d, "grouped": grouped_conv2d, "im2col": im2col_conv2d,
                 "looped": looped_conv2d, "plain (shared filters)": lambda x, w: F.conv2d(x, w[0])}
        out.update({f"{c}->16 on {size}x{size} fwd+bwd, {name}": fwd_bwd(conv, x, w) for name, conv in forms.items()})
    return out


def run_benchmark(ctx):
    return ctx.run("benchmark", bench_config_for, benchmark_experiment)


def main(argv=None) -> None:
    """Measure and print HE-CNN-L's speed table (images/s, forward + backward) on this machine, without recording."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hyperbook.experiments.hecnn_speed", description=main.__doc__)
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the recorded runs)")
    parser.add_argument("--mode", choices=("all", "sample", "batch"), default="all",
                        help="which HE-CNN-L cases to show: per-sample, batch-averaged or all (default)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept (default 3)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.threads < 1 or args.repeat < 1:
        parser.error("--batch, --threads and --repeat must be positive")
    old = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        seed_everything(0)
        metrics, _ = _measure(BenchConfig(batch_size=args.batch, repeat=args.repeat), args.device)
    finally:
        torch.set_num_threads(old)
    rows = {name: v for name, v in metrics["images_per_s"].items()
            if args.mode == "all" or name == "plain CNN" or (name == AVERAGED) == (args.mode == "batch")}
    width = max(map(len, rows))
    print(f"HE-CNN-L speed: batch {args.batch}, {args.threads} thread(s), {args.device}, forward + backward")
    for name, v in rows.items():
        print(f"  {name:<{width}}  {v:10.1f} images/s")
    if args.mode == "all":
        for key in ("ratio_batched_over_main_loop", "ratio_batched_over_full_loop", "ratio_averaged_over_batched"):
            print(f"  {key}: {metrics[key]:.2f}")


if __name__ == "__main__":
    main()

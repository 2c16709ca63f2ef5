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


CASES_OF_MODE = {"all": ("plain CNN", AVERAGED, BATCHED, MAIN_LOOP, FULL_LOOP),
                 "sample": ("plain CNN", BATCHED, MAIN_LOOP, FULL_LOOP), "batch": ("plain CNN", AVERAGED)}
RATIOS = {"ratio_batched_over_main_loop": (BATCHED, MAIN_LOOP), "ratio_batched_over_full_loop": (BATCHED, FULL_LOOP),
          "ratio_averaged_over_batched": (AVERAGED, BATCHED), "ratio_plain_over_batched": ("plain CNN", BATCHED)}


def _measure(config: BenchConfig, device, mode: str = "all", details: bool = True):
    """Images/s of the cases of `mode` (CASES_OF_MODE), the ratios among them, and with `details` the split of
    the batched step and the kernel timings (the recorded benchmark has all of them)."""
    bs, rep = config.batch_size, config.repeat
    x = torch.randn(bs, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    hec = build("hecnn_l").to(device)
    cases = {"plain CNN": (build("cnn").to(device), "sample"), AVERAGED: (hec, "batch"), BATCHED: (hec, "sample"),
             MAIN_LOOP: (LoopedHECNN(hec), "sample"), FULL_LOOP: (LoopedHECNN(hec, full=True), "sample")}
    ips = {name: bs / best_time(lambda: _train_step(model, x, y, pmode), repeat=rep)
           for name, (model, pmode) in cases.items() if name in CASES_OF_MODE[mode]}
    metrics = {"targets": [], "images_per_s": ips, "batch_size": bs, "torch_threads": torch.get_num_threads()}
    metrics.update({key: ips[a] / ips[b] for key, (a, b) in RATIOS.items() if a in ips and b in ips})
    if details:
        metrics.update(split_ms=_split(hec, x, y, rep), kernel_ms=_kernels(bs, device, rep))
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


# ----------------------------------------------------------------------------- the chapter's tables and findings
GOAL_LOOP, GOAL_AVERAGED = 20.0, 3.0      # the speed goals the chapter states: >= 20x a loop, within 3x averaged


def speed_tables(brec):
    """The benchmark record as four tables: images/s per model, the per-sample step split, the kernels alone,
    and the ratios against their goals."""
    import pandas as pd
    from .. import tables
    m = brec.metrics
    line = tables.caption(brec, f"batch {m['batch_size']}, {m['torch_threads']} torch thread(s)",
                          data="random tensors")
    k = m["kernel_ms"]
    ratios = [("per-sample batched / loop over the main network", m["ratio_batched_over_main_loop"], f">= {GOAL_LOOP:g}"),
              ("per-sample batched / loop over the whole model", m["ratio_batched_over_full_loop"], f">= {GOAL_LOOP:g}"),
              ("batch-averaged / per-sample batched", m["ratio_averaged_over_batched"], f"<= {GOAL_AVERAGED:g}"),
              ("plain CNN / per-sample batched (a ceiling: less work than any HE-CNN-L)",
               m["ratio_plain_over_batched"], None),
              ("kernel 16->16, forward: looped / grouped",
               k["looped per-sample conv"] / k["grouped per-sample conv"], None)]
    return [tables.show(pd.DataFrame({"model": list(m["images_per_s"]), "images/s": list(m["images_per_s"].values())}),
                        digits=4, caption=line),
            tables.show(pd.DataFrame({"part of the per-sample step": list(m["split_ms"]),
                                      "time": list(m["split_ms"].values())}), units={"time": "ms"}, caption=line),
            tables.show(pd.DataFrame({"kernel": list(k), "time": list(k.values())}), units={"time": "ms"},
                        digits=3, caption=line),
            tables.show(pd.DataFrame([{"ratio": r, "value": v, "goal": g} for r, v, g in ratios]), digits=3,
                        caption=line)]


def speed_findings(brec) -> list[str]:
    m = brec.metrics
    ips, split, k = m["images_per_s"], m["split_ms"], m["kernel_ms"]
    main_loop, full_loop = m["ratio_batched_over_main_loop"], m["ratio_batched_over_full_loop"]
    step = split["filter generation"] + split["main network, batched"]
    return [f"* Speed ({brec.profile} run, batch {m['batch_size']}, {m['torch_threads']} CPU thread(s)): HE-CNN-L "
            f"with per-sample filters in one batched call runs at {ips[BATCHED]:.0f} images/s, against "
            f"{ips[MAIN_LOOP]:.0f} with a Python loop over the images for the main network ({main_loop:.2f}x) and "
            f"{ips[FULL_LOOP]:.0f} with a loop over the whole per-sample model ({full_loop:.2f}x): the goal of "
            f"{GOAL_LOOP:g}x is " + ("met" if min(main_loop, full_loop) >= GOAL_LOOP else "**not met**")
            + f". Batch-averaged filters run at {ips[AVERAGED]:.0f} images/s "
            f"({m['ratio_averaged_over_batched']:.2f}x of per-sample; goal: within {GOAL_AVERAGED:g}x, "
            + ("met" if m["ratio_averaged_over_batched"] <= GOAL_AVERAGED else "not met") + "). Of the "
            f"{step:.0f} ms per-sample step, generating the filters takes {split['filter generation']:.0f} ms, the "
            f"same work in every variant; the main network takes {split['main network, batched']:.0f} ms batched and "
            f"{split['main network, looped']:.0f} ms looped. The plain CNN, which does strictly less work than any "
            f"HE-CNN-L, runs at {ips['plain CNN']:.0f} images/s, so no implementation on this machine could exceed "
            f"{ips['plain CNN'] / ips[MAIN_LOOP]:.1f}x over the main-network loop or "
            f"{ips['plain CNN'] / ips[FULL_LOOP]:.1f}x over the whole-model loop. The 16 → 16 convolution kernel "
            f"alone, forward, is {k['looped per-sample conv'] / k['grouped per-sample conv']:.1f}x faster grouped "
            f"than looped ({k['grouped per-sample conv']:.1f} vs {k['looped per-sample conv']:.1f} ms)."]


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
        metrics, _ = _measure(BenchConfig(batch_size=args.batch, repeat=args.repeat), args.device, args.mode,
                              details=False)
    finally:
        torch.set_num_threads(old)
    rows = metrics["images_per_s"]
    width = max(map(len, rows))
    print(f"HE-CNN-L speed: batch {args.batch}, {args.threads} thread(s), {args.device}, forward + backward, "
          f"mode {args.mode}")
    for name, v in rows.items():
        print(f"  {name:<{width}}  {v:10.1f} images/s")
    for key in RATIOS:
        if key in metrics:
            print(f"  {key}: {metrics[key]:.2f}")
    return metrics


if __name__ == "__main__":
    main()

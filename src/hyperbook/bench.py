"""Speed of the batched kernels against the naive loops they replace, as ratios in one run.

Not a timed test: timings depend on the machine. `python -m hyperbook.bench` prints them;
chapters call the functions for their own kernels.
"""
from __future__ import annotations

import time

import torch


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


if __name__ == "__main__":
    for row in (gated_dense_vs_loop(), gated_dense_vs_loop(n=784, batch=16)):
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})

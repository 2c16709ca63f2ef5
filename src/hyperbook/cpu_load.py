"""How many CPU cores other processes keep busy: a step time measured beside another job is not the machine's.

On this 2-core machine the committed step-time table of 2026-12-02 read 2-4x the idle figures for the MNIST-scale
units (HE-CNN-L 52 vs 26.5 ms, the plain MNIST CNN 14.9 vs 3.7 ms, remeasured idle on 2026-12-03), so
`hyperbook time` reads this before every unit and refuses to time on a busy machine."""
from __future__ import annotations

import os
import time

BUSY_LIMIT = 0.25      # cores; an idle machine reads about 0.0-0.05 here (shell, editor)


def _busy_jiffies() -> int:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
    return sum(fields[:8]) - idle                                      # user nice system idle iowait irq softirq steal


def _own_jiffies() -> int:
    with open("/proc/self/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()                      # the name may hold spaces
    return int(rest[11]) + int(rest[12])                               # utime + stime (fields 14, 15)


def busy_elsewhere(interval: float = 1.0) -> float | None:
    """Cores kept busy by other processes over the next `interval` seconds (this process's own CPU time
    subtracted); None where /proc is not there (not Linux)."""
    if not os.path.exists("/proc/stat"):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    b0, o0, t0 = _busy_jiffies(), _own_jiffies(), time.monotonic()
    time.sleep(interval)
    b1, o1, t1 = _busy_jiffies(), _own_jiffies(), time.monotonic()
    return max(0.0, ((b1 - b0) - (o1 - o0)) / tick / (t1 - t0))

"""How many CPU cores other processes keep busy: a step time measured beside another job is not the machine's.

On this 2-core machine the committed step-time table of 2026-12-02 read 2-4x the idle figures for the MNIST-scale
units (HE-CNN-L 52 vs 26.5 ms, the plain MNIST CNN 14.9 vs 3.7 ms, remeasured idle on 2026-12-03), so
`hyperbook time` reads this before every unit and refuses to time on a busy machine; `hyperbook campaign` reads it
before it starts and before each unit, since training beside another job slows both (nbval 3 -> 27 minutes)."""
from __future__ import annotations

import time

import psutil

BUSY_LIMIT = 0.25      # cores; an idle machine reads about 0.0-0.05 here (shell, editor)


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (iowait counts as idle where the OS reports it; Linux's
    guest times are already inside user and nice, so they are not added twice)."""
    t = psutil.cpu_times()
    skip = ("idle", "iowait", "guest", "guest_nice")
    return sum(v for name, v in t._asdict().items() if name not in skip)


def _own_seconds(me: psutil.Process) -> float:
    t = me.cpu_times()
    return t.user + t.system


def refuse_if_busy(command: str, allow: bool = False) -> float | None:
    """The reading of busy_elsewhere(); raises BusyMachineError above BUSY_LIMIT unless `allow` (--allow-busy)."""
    from .errors import BusyMachineError
    busy = busy_elsewhere()
    if busy is not None and busy > BUSY_LIMIT and not allow:
        raise BusyMachineError(busy, BUSY_LIMIT, command)
    return busy


class OtherLoad:
    """Cores other processes kept busy while the block ran (`cores`; None where the OS gives no CPU times): the
    check before a timing misses a job that starts during it, so `time_unit` wraps its steps in one of these
    and `hyperbook time` writes no entry that was measured beside other work."""

    def __enter__(self):
        self._me = psutil.Process()
        try:
            self._start = (_busy_seconds(), _own_seconds(self._me), time.monotonic())
        except (psutil.Error, NotImplementedError):
            self._start = None
        self.cores = None
        return self

    def __exit__(self, *exc):
        if self._start is not None:
            b0, o0, t0 = self._start
            b1, o1, t1 = _busy_seconds(), _own_seconds(self._me), time.monotonic()
            self.cores = max(0.0, ((b1 - b0) - (o1 - o0)) / max(t1 - t0, 1e-9))
        return False


def busy_elsewhere(interval: float = 1.0) -> float | None:
    """Cores kept busy by other processes over the next `interval` seconds (this process's own CPU time
    subtracted); None where the OS gives no CPU times."""
    with OtherLoad() as load:
        time.sleep(interval)
    return load.cores

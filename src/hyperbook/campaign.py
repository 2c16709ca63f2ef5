"""A budgeted campaign: the unrecorded units (x seeds) whose estimated time fits the budget left, one process at a time.

Each unit runs as its own `hyperbook train` process with all the machine's threads; one that is still running
when the budget ends is stopped (SIGTERM, then SIGKILL): its fit() checkpoint stays under results/_checkpoints/
and the next campaign resumes it. A killed campaign resumes where it stopped: recorded units are skipped
because their record exists. Never run a campaign beside the test suite: both fight over the cores.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

from .errors import BookError, UnknownChoiceError

ORDERS = ("cheapest", "chapter")


def parse_budget(text: str) -> float:
    """'2h', '90m', '1h30m', '45s', '1.5h' -> seconds."""
    s = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([hms])", "", s).strip():
        raise BookError(f"budget {text!r} is not a duration like 2h, 90m, 1h30m or 45s")
    seconds = sum(float(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in parts)
    if seconds <= 0:
        raise BookError(f"budget {text!r} is not positive")
    return seconds


@dataclass
class Candidate:
    key: str
    estimate_s: float | None     # None: not timed
    recorded: bool
    position: int = 0            # registry order (chapter order)
    seed: int | None = None      # None: the config's own seed (no --seed passed)

    @property
    def label(self) -> str:
        return self.key if self.seed is None else f"{self.key} seed {self.seed}"


def ordered(cands: list[Candidate], order: str) -> list[Candidate]:
    if order not in ORDERS:
        raise UnknownChoiceError("campaign order", order, ORDERS)
    todo = [c for c in cands if not c.recorded]
    if order == "cheapest":      # untimed last (they only run with --include-untimed)
        return sorted(todo, key=lambda c: (c.estimate_s is None, c.estimate_s or 0.0, c.position))
    return sorted(todo, key=lambda c: c.position)


def run_campaign(cands: list[Candidate], budget_s: float, runner: Callable[..., str], *,
                 order: str = "cheapest", include_untimed: bool = False, safety: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] = print,
                 busy: Callable[[], float | None] | None = None, busy_limit: float = 0.25) -> list[tuple]:
    """Run the candidates that fit; returns [(label, status)] in the order decided, status one of
    'done', 'failed', 'stopped at budget', 'skipped: ...'.

    runner(key, timeout_s, seed) -> 'done' | 'failed' | 'timeout' runs one unit (seed None: its config's own),
    stopping it after timeout_s.
    A unit starts only if safety x its estimate fits the budget left; an untimed one only with
    `include_untimed` (then it may use all that is left). A unit stopped at the budget ends the campaign.
    busy() -> cores other processes keep busy (None: unknown) is read before each unit: above busy_limit (a test
    run or another training job was started meanwhile) the campaign stops before starting the unit, since both
    jobs would crawl; rerun it once the machine is idle and it goes on where it stopped.
    """
    start = clock()
    out = []
    for c in cands:
        if c.recorded:
            out.append((c.label, "skipped: recorded"))
    for c in ordered(cands, order):
        left = budget_s - (clock() - start)
        if left <= 0:
            out.append((c.label, "skipped: budget spent"))
            continue
        if c.estimate_s is None and not include_untimed:
            log(f"skip {c.label}: no estimate (time it with `hyperbook time`, or pass --include-untimed)")
            out.append((c.label, "skipped: not timed"))
            continue
        if c.estimate_s is not None and c.estimate_s * safety > left:
            log(f"skip {c.label}: estimated {c.estimate_s / 60:.1f} min does not fit the {left / 60:.1f} min left")
            out.append((c.label, "skipped: does not fit"))
            continue
        load = busy() if busy is not None else None
        if load is not None and load > busy_limit:
            log(f"stop before {c.label}: other processes keep {load:.2f} CPU cores busy (limit {busy_limit}); "
                "run the campaign again once they end")
            out.append((c.label, "stopped: machine busy"))
            break
        est = "not timed" if c.estimate_s is None else f"estimated {c.estimate_s / 60:.1f} min"
        log(f"run  {c.label} ({est}; {left / 60:.1f} min of budget left)")
        status = runner(c.key, left, c.seed)
        if status == "timeout":
            log(f"stop {c.label}: the budget ended while it ran; its checkpoint is kept, the next campaign resumes it")
            out.append((c.label, "stopped at budget"))
            break
        out.append((c.label, status))
    return out


def subprocess_runner(profile: str, device: str, results_dir=None, data_dir=None, log=print,
                      grace_s: float = 30.0) -> Callable[..., str]:
    """runner for run_campaign: `python -m hyperbook.cli train KEY` with every core's thread, stopped cleanly
    (SIGTERM, then SIGKILL after grace_s) at the timeout."""
    threads = os.cpu_count() or 1

    def run(key: str, timeout_s: float, seed: int | None = None) -> str:
        cmd = [sys.executable, "-m", "hyperbook.cli", "train", key, "--profile", profile, "--device", device,
               "--threads", str(threads)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        if results_dir:
            cmd += ["--results-dir", str(results_dir)]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        proc = subprocess.Popen(cmd, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, timeout_s - grace_s))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return "timeout"
        if rc != 0:
            log(f"fail {key}{'' if seed is None else f' seed {seed}'}: exit {rc}")
            return "failed"
        return "done"
    return run


def candidates(units, profile: str, cost, seeds=None, log=print) -> list[Candidate]:
    """One candidate per unit, or per (unit, seed) when seeds are given; the seed goes into the unit's seed
    field, so a seed's record is found by its config hash. A unit with no seed in its config gets only seed 0
    (any other could not be told apart from it)."""
    out = []
    for i, u in enumerate(units):
        if seeds is None:
            est = cost.estimate(u, profile)
            out.append(Candidate(u.key, est.seconds, est.recorded, i))
            continue
        for seed in seeds:
            if u.seed_field is None and seed != 0:
                log(f"skip {u.key} seed {seed}: its config has no seed")
                continue
            if u.seed_field is None:          # seed 0: the config's own
                est, seed = cost.estimate(u, profile), None
            else:
                est = cost.estimate(u, profile, {u.seed_field: seed})
            out.append(Candidate(u.key, est.seconds, est.recorded, i, seed))
    return out

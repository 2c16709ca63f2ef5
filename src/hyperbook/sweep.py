"""Sweeps of units on submitit: SLURM, the local machine (one job per visible GPU) or in-process (debug).

Each job is idempotent (a unit whose record exists is skipped), checkpointable (`UnitJob.checkpoint` requeues
the same units; training resumes from fit()'s checkpoint under results/_checkpoints/) and records through
`Unit.run` -> RunContext.run -> results.run_or_load, i.e. atomically, in the same folder and with the same
hash as a chapter run. A seed goes into the config (so into the record's hash) where the config has a seed.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import submitit

from .errors import BookError, UnknownChoiceError
from .results import DEFAULT_RESULTS_DIR, REPO_ROOT

EXECUTORS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class JobSpec:
    """One (unit, seed) to record: plain data, so it pickles into a job."""
    key: str
    profile: str
    device: str = "auto"
    seed: int = 0
    overrides: tuple = ()          # ((name, value), ...), dotted names for nested configs
    results_dir: str = str(DEFAULT_RESULTS_DIR)
    data_dir: str = str(REPO_ROOT / "data")

    def label(self) -> str:
        return f"{self.key} [{self.profile}, seed {self.seed}]"


def run_spec(spec: JobSpec) -> dict:
    """Record one spec unless its record exists; returns what happened."""
    from .context import RunContext
    from .units import get_unit
    unit = get_unit(spec.key)
    overrides = dict(spec.overrides)
    found = unit.record(spec.profile, spec.results_dir, overrides)
    if found is not None:
        return {"unit": spec.key, "seed": spec.seed, "status": "recorded", "path": str(found.path)}
    ctx = RunContext.from_params(unit.chapter, spec.profile, spec.device, spec.data_dir, spec.results_dir,
                                 reuse=True, seed=spec.seed)
    record = unit.run(ctx, overrides)
    return {"unit": spec.key, "seed": spec.seed, "status": "trained", "path": str(record.path),
            "wall_time_s": record.provenance.get("wall_time_s")}


class UnitJob(submitit.helpers.Checkpointable):
    """A submitit job recording a list of specs in order (one spec per SLURM array task; a shard of them per
    GPU on a local machine)."""

    def __init__(self, specs):
        self.specs = tuple(specs)

    def __call__(self) -> list[dict]:
        return [run_spec(spec) for spec in self.specs]

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """On preemption or timeout: requeue the same specs. Finished ones are skipped (their record exists);
        the interrupted one resumes from its fit() checkpoint."""
        return submitit.helpers.DelayedSubmission(UnitJob(self.specs))


def parse_seeds(text: str | None) -> tuple:
    if not text:
        return (0,)
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip() != "")
    except ValueError:
        raise BookError(f"--seeds {text!r} is not a comma-separated list of integers (e.g. --seeds 0,1,2)")
    if not seeds:
        raise BookError("--seeds is empty")
    return seeds


def make_specs(units, profile: str, seeds=(0,), device: str = "auto", results_dir=DEFAULT_RESULTS_DIR,
               data_dir=None, overrides_for=None, log=print) -> list[JobSpec]:
    """One spec per (unit, seed); a unit whose config has no seed runs once (its record could not tell seeds
    apart), with a message."""
    specs = []
    for unit in units:
        base = dict(overrides_for(unit) if overrides_for else {})
        unit.config(profile, base)           # validates the profile and the overrides now, not in the job
        seed_field = unit.seed_field
        unit_seeds = seeds
        if seed_field is None:
            if tuple(seeds) != (0,):
                log(f"note: {unit.key} has no seed in its config: run once, not per seed")
            unit_seeds = (0,)
        for seed in unit_seeds:
            ov = dict(base)
            if seed_field is not None:      # equal to the default seed: the same config, the same hash
                ov[seed_field] = seed
            specs.append(JobSpec(unit.key, profile, device, int(seed), tuple(sorted(ov.items())),
                                 str(results_dir), str(data_dir or REPO_ROOT / "data")))
    return specs


def gpu_count() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def shard(specs, n: int) -> list[list]:
    """Round-robin split of specs into n shards (n >= 1), empty shards dropped."""
    n = max(1, n)
    shards = [list(specs[i::n]) for i in range(n)]
    return [s for s in shards if s]


def submit(specs, executor: str, folder=None, timeout_min: int = 72 * 60, gpus: int | None = None,
           slurm_params: dict | None = None) -> list:
    """Submit the specs; returns the submitit jobs (call .result() to wait)."""
    if executor not in EXECUTORS:
        raise UnknownChoiceError("executor", executor, EXECUTORS)
    if not specs:
        return []
    results_dir = Path(specs[0].results_dir)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(folder) if folder else results_dir / "_checkpoints" / "submitit" / f"{stamp}-%j"
    if executor == "local":
        # submitit's local executor gives every job the first `gpus_per_node` GPUs and has no array
        # parallelism: one job per visible GPU, each with its own `visible_gpus`, each running its shard in turn
        n_gpu = gpu_count() if gpus is None else gpus
        ex = submitit.LocalExecutor(folder=folder)
        jobs = []
        for g, part in enumerate(shard(specs, n_gpu)):
            ex.update_parameters(timeout_min=timeout_min, gpus_per_node=1 if n_gpu else 0,
                                 visible_gpus=(g,) if n_gpu else ())
            jobs.append(ex.submit(UnitJob(part)))
        return jobs
    ex = submitit.AutoExecutor(folder=folder, cluster=executor)
    params = {"timeout_min": timeout_min, "name": "hyperbook"}
    if executor == "slurm":
        params.update(gpus_per_node=1, tasks_per_node=1, slurm_array_parallelism=len(specs))
        params.update({f"slurm_{k}" if not k.startswith("slurm_") else k: v for k, v in (slurm_params or {}).items()})
    ex.update_parameters(**params)
    jobs = []
    if executor == "slurm":
        with ex.batch():                 # one array job, one task per spec
            for spec in specs:
                jobs.append(ex.submit(UnitJob([spec])))
    else:
        jobs = [ex.submit(UnitJob([spec])) for spec in specs]
    return jobs


def wait(jobs, log=print) -> list[dict]:
    out = []
    for job in jobs:
        for r in job.result():
            log(f"{r['status']:9s} {r['unit']} seed {r['seed']}: {r['path']}")
            out.append(r)
    return out


__all__ = ["JobSpec", "UnitJob", "run_spec", "make_specs", "submit", "wait", "parse_seeds", "shard"]

"""The results store: one folder per (chapter, experiment, profile, config hash).

A run writes metrics.json, arrays.npz (the small arrays a figure needs) and
provenance.json. The folder is assembled under a temporary name and renamed
into place in one step, so a killed run never leaves a half-written record.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .profiles import check_profile

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS_DIR = REPO_ROOT / "results"


def write_text_atomic(path, text: str) -> Path:
    """Write a text file whole or not at all: a temporary file beside it (per process) renamed over it."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def config_dict(config) -> dict:
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def config_hash(config) -> str:
    """Stable 12-hex hash of a config: keys sorted, tuples as lists."""
    blob = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class Record:
    metrics: dict
    arrays: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def profile(self) -> str:
        return self.provenance.get("profile", "?")

    def source(self) -> str:
        """One line saying where these numbers came from, for tables and captions."""
        p = self.provenance
        wall = p.get("wall_time_s")
        wall = f", {wall / 60:.1f} min" if isinstance(wall, (int, float)) else ""
        note = f"; {p['note']}" if p.get("note") else ""
        return (f"{p.get('profile', '?')} run on {p.get('device', '?')}{wall}, "
                f"{p.get('date', '?')[:10]}, commit {p.get('git_commit', '?')[:8]}{note}")


GIT_COMMIT_ENV = "HYPERBOOK_GIT_COMMIT"   # a copy without .git (a lent GPU): the commit `device_session pack` read


def _git_commit() -> str:
    packed = os.environ.get(GIT_COMMIT_ENV, "").strip()
    if packed:                  # set only by device_session, whose copy has no .git of its own
        return packed
    fallback = "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip() if out.returncode == 0 else ""
        if not commit:
            return fallback
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def _device_name(device: str) -> str:
    import torch
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return obj


class ResultsStore:
    def __init__(self, root: str | os.PathLike = DEFAULT_RESULTS_DIR):
        self.root = Path(root)

    def path_for(self, chapter: str, experiment: str, profile: str, config) -> Path:
        return self.root / chapter / experiment / f"{profile}-{config_hash(config)}"

    def load(self, path: Path) -> Record:
        metrics = json.loads((path / "metrics.json").read_text())
        provenance = json.loads((path / "provenance.json").read_text())
        arrays = {}
        if (path / "arrays.npz").exists():
            with np.load(path / "arrays.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        return Record(metrics, arrays, provenance, path)

    def find(self, chapter: str, experiment: str, profile: str, config) -> Record | None:
        path = self.path_for(chapter, experiment, profile, config)
        return self.load(path) if (path / "provenance.json").exists() else None

    def save(self, chapter: str, experiment: str, profile: str, config, metrics: dict,
             arrays: dict | None, provenance: dict) -> Record:
        final = self.path_for(chapter, experiment, profile, config)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        try:
            (tmp / "metrics.json").write_text(json.dumps(_to_jsonable(metrics), indent=1, sort_keys=True))
            if arrays:
                np.savez_compressed(tmp / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
            # provenance last: its presence marks a complete record
            (tmp / "provenance.json").write_text(json.dumps(_to_jsonable(provenance), indent=1, sort_keys=True))
            if final.exists():
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.load(final)


def run_or_load(chapter: str, experiment: str, profile: str, config, run: Callable[[], tuple],
                *, results_dir=DEFAULT_RESULTS_DIR, reuse: bool = True, device: str = "cpu",
                seed: int | None = None, note: str = "") -> Record:
    """Load the recorded run of `config`, or call `run()` and record it.

    `run()` returns (metrics, arrays) and may put `throughput` (items/s) in
    metrics; provenance is filled in here.
    """
    check_profile(profile)
    store = ResultsStore(results_dir)
    if reuse:
        found = store.find(chapter, experiment, profile, config)
        if found is not None:
            return found
    import torch
    from .train import carried_wall
    start = time.time()
    with carried_wall() as carried:
        metrics, arrays = run()
    wall = time.time() - start
    earlier = sum(carried)          # a resumed run: what its earlier processes spent training
    provenance = {
        "chapter": chapter, "experiment": experiment, "profile": profile,
        "config": config_dict(config), "config_hash": config_hash(config),
        "git_commit": _git_commit(), "device": _device_name(device), "torch": torch.__version__,
        "seed": seed if seed is not None else config_dict(config).get("seed"),
        # the run's whole cost: this process's wall time plus the training time resumed checkpoints carried in
        "wall_time_s": round(wall + earlier, 2), "throughput": metrics.get("throughput"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "note": note,
        # the documents trained in fp32; a bf16 run names itself (configs carry `precision`)
        "precision": config_dict(config).get("precision", "fp32"),
    }
    if earlier:
        provenance["resumed_wall_s"] = round(earlier, 2)      # the part of wall_time_s spent in earlier processes
    return store.save(chapter, experiment, profile, config, metrics, arrays, provenance)

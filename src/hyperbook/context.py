"""What a chapter's `parameters` cell turns into: one validated RunContext."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .chapters import check_chapter
from .errors import NoGPUError, UnknownChoiceError
from .profiles import BOOK_PREFERENCE, check_profile, with_overrides
from .results import DEFAULT_RESULTS_DIR, REPO_ROOT, Record, ResultsStore, run_or_load

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """'auto' is CUDA when torch sees a GPU, else CPU; 'cuda' without a GPU is an error."""
    base = str(device).split(":")[0]
    if base not in DEVICES:
        raise UnknownChoiceError("device", device, DEVICES)
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise NoGPUError(device)
    return str(device)


@dataclass(frozen=True)
class RunContext:
    chapter: str
    profile: str
    device: str
    data_dir: Path
    results_dir: Path
    reuse: bool
    seed: int
    timing: bool = False   # a `hyperbook time` run: scratch results, never recorded; a stand-in of the same shape may
                           # replace missing data in any profile (step time depends on shapes, not pixels)

    @classmethod
    def from_params(cls, chapter: str, profile: str = "smoke", device: str = "auto",
                    data_dir=None, results_dir=None, reuse=True, seed: int = 0) -> "RunContext":
        return cls(chapter=check_chapter(chapter), profile=check_profile(profile),
                   device=resolve_device(device),
                   data_dir=Path(data_dir) if data_dir else REPO_ROOT / "data",
                   results_dir=Path(results_dir) if results_dir else DEFAULT_RESULTS_DIR,
                   reuse=bool(int(reuse)) if isinstance(reuse, str) else bool(reuse), seed=int(seed))

    def run(self, experiment: str, config_for: Callable[[str], object],
            fn: Callable[[object, "RunContext"], tuple], overrides: dict | None = None) -> Record:
        """Record (or load) one experiment.

        config_for(profile) -> frozen config; fn(config, ctx) -> (metrics, arrays).
        In the 'book' profile a recorded full (else reduced) run is used when
        present, else a fresh smoke run.
        """
        profile = self.profile
        if profile == "book":
            store = ResultsStore(self.results_dir)
            for recorded in BOOK_PREFERENCE:
                found = store.find(self.chapter, experiment, recorded,
                                   with_overrides(config_for(recorded), overrides))
                if found is not None:
                    return found
            profile = "smoke"
        config = with_overrides(config_for(profile), overrides)
        seed = getattr(config, "seed", self.seed)
        note = f"{profile} profile on CPU" if (profile != "smoke" and self.device == "cpu") else ""
        return run_or_load(self.chapter, experiment, profile, config, lambda: fn(config, self),
                           results_dir=self.results_dir, reuse=self.reuse, device=self.device,
                           seed=seed, note=note)

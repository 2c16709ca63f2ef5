"""Every experiment of the book as a unit of work: (chapter, experiment) -> how to run it, its config per
profile, the data it needs, its steps and its measured cost.

A chapter notebook records its experiments through ``RunContext.run(name, config_for, fn)``; a `Unit` holds
exactly that triple, so ``hyperbook train`` / ``campaign`` / ``sweep`` record the same folder, with the same
hash, as the chapter does. The registry reads each experiments module's own tables (``RUNS``,
``EXPERIMENTS``, ``TRAIN_RUNS`` ...) when it is built, so an experiment added there appears here.

Cost: seconds per step on a device, from

1. the recorded run of this very config on that kind of device (its ``wall_time_s``: exact), else a recorded
   run of the same config with another seed;
2. the committed step-time table ``results/_timings/<machine>.json`` (training steps only; see TIMINGS_FORMAT);
3. a recorded run of the same profile with an older config, scaled by the number of steps.

Steps of a unit are the optimiser steps of all the models it trains (see `Unit.steps_note`).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import time
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

from .chapters import CHAPTERS
from .data.registry import dataset_ready
from .errors import BookError, DatasetMissingError, UnknownChoiceError
from .profiles import TRAINING_PROFILES, check_training_profile, with_overrides
from .results import DEFAULT_RESULTS_DIR, REPO_ROOT, ResultsStore, config_dict, config_hash, write_text_atomic

TIMINGS_DIR = "_timings"
TIMINGS_FORMAT = """results/_timings/<machine slug>.json:
{"machine": "<provenance device string, e.g. 'NVIDIA H200' or 'CPU (x86_64, 2 cores)'>",
 "device": "cpu" | "cuda", "torch": "<torch.__version__>", "threads": <torch.get_num_threads()>,
 "date": "<ISO date of the last entry>",
 "units": {"<chapter>/<experiment>": {"<profile>": {"ms_per_step": <float>, "steps": [warm-up, n], "loops": <int>,
                                                    "loop_ms": [<median ms per step of each training loop>],
                                                    "config_hash": "<hash of the scratch config>", "date": "<ISO>",
                                                    "timing_overrides": {...}, "data": "yes" | "stand-in ..."}}}}
ms_per_step: one scratch run with warm-up + n steps per training loop, each step clocked inside the loop; per loop
the median of the n steps after the warm-up; the mean over the loops the unit trains. Loading and evaluation are
outside the loops. timing_overrides: the unit's fixed-cost-only settings the scratch run used
(`Unit.timing_overrides`); data: "stand-in of the same shape" where the document's data is missing here."""


def _const(*names):
    return lambda config: tuple(names)


def _attr(name: str):
    def get(config):
        value = config
        for part in name.split("."):
            value = getattr(value, part)
        return value
    return get


@dataclass(frozen=True)
class Unit:
    chapter: str
    name: str
    config_for: Callable[[str], object]            # profile -> frozen config (the chapter's own function)
    fn: Callable[[object, object], tuple]          # fn(config, ctx) -> (metrics, arrays)
    datasets: Callable[[object], tuple] = _const()  # config -> names of the datasets it reads
    steps_of: Callable[[object], int] | None = None  # config -> optimiser steps of everything it trains
    step_field: str | None = None                  # the config field `hyperbook time` overrides ('a.b' nested)
    steps_note: str = "no training steps (a fixed-cost measurement)"
    smoke_overrides: dict = field(default_factory=dict)   # tiny settings for tests (never used by the book)
    # `hyperbook time` only: settings that change the fixed cost and no training step (a smaller evaluation, one of
    # several identical repeats), so a full-size step can be timed in minutes; and, where the document's data is
    # missing here, the switch that lets the scratch run use a stand-in of the same tensor shape.
    timing_overrides: dict = field(default_factory=dict)
    standin_overrides: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.chapter}/{self.name}"

    def config(self, profile: str, overrides: dict | None = None):
        return apply_overrides(self.config_for(check_training_profile(profile)), overrides)

    def steps(self, config) -> int | None:
        return int(self.steps_of(config)) if self.steps_of is not None else None

    @property
    def seed_field(self) -> str | None:
        """'seed', or 'part.seed' where the seed sits in a nested config, or None (no seed in the config)."""
        config = self.config_for("smoke")
        names = {f.name for f in fields(config)}
        if "seed" in names:
            return "seed"
        for f in fields(config):
            value = getattr(config, f.name)
            if is_dataclass(value) and "seed" in {g.name for g in fields(value)}:
                return f"{f.name}.seed"
        return None

    def run(self, ctx, overrides: dict | None = None):
        """Record (or load) this unit in `ctx`, exactly as the chapter does (RunContext.run -> run_or_load)."""
        if ctx.chapter != self.chapter:
            raise BookError(f"unit {self.key} run in a context of chapter {ctx.chapter!r}")
        flat = flat_overrides(self.config_for(ctx.profile if ctx.profile != "book" else "smoke"), overrides)
        return ctx.run(self.name, self.config_for, self.fn, flat or None)

    def record(self, profile: str, results_dir=DEFAULT_RESULTS_DIR, overrides: dict | None = None):
        config = self.config(profile, overrides)
        return ResultsStore(results_dir).find(self.chapter, self.name, profile, config)


def flat_overrides(config, overrides: dict | None) -> dict:
    """Overrides with dotted names ('train.steps') turned into a replaced nested config ({'train': ...})."""
    out: dict = {}
    nested: dict = {}
    for key, value in (overrides or {}).items():
        if "." in key:
            head, rest = key.split(".", 1)
            nested.setdefault(head, {})[rest] = value
        else:
            out[key] = value
    valid = {f.name for f in fields(config)}
    for head, sub in nested.items():
        if head not in valid or not is_dataclass(getattr(config, head)):
            raise UnknownChoiceError(f"nested part of {type(config).__name__}", head,
                                     [f.name for f in fields(config) if is_dataclass(getattr(config, f.name))])
        inner = out.get(head, getattr(config, head))
        out[head] = with_overrides(inner, flat_overrides(inner, sub))
    return out


def apply_overrides(config, overrides: dict | None):
    return with_overrides(config, flat_overrides(config, overrides)) if overrides else config


# ============================================================================ the registry
def _hypernets():
    from .experiments import hypernets as M
    return [Unit("hypernets", name, M.config_for(name), M.run_task, _const("mnist"), _attr("steps"), "steps",
                 "TaskConfig.steps (the autoencoder's critic steps and the compensation classifier's "
                 "classifier_steps not counted)", {"steps": 2, "test_per_digit": 2},
                 {"test_per_digit": 10, **({"classifier_steps": 10} if M.config_for(name)("full").classifier_steps
                                           else {})})
            for name in M.RUNS]


def _functional_images():
    from .experiments import functional_images as M

    def sr_data(config):
        return {"benchmarks": ("bsds500", "sr_benchmarks"), "div2k": ("div2k", "sr_benchmarks")}.get(config.data, ())
    units = [Unit("functional_images", "faces", *M.RUNNERS["faces"], lambda c: (c.source,), _attr("steps"),
                  "steps", "FacesConfig.steps", {"steps": 2})]
    units.append(Unit("functional_images", "sr_hypernet", *M.RUNNERS["sr_hypernet"], sr_data, _attr("steps"),
                      "steps", "SRConfig.steps", {"steps": 2}, {"test_limit": 1, "test_max_side": 96}))
    units.append(Unit("functional_images", "sr_srcnn", *M.RUNNERS["sr_srcnn"], sr_data,
                      lambda c: c.steps_per_scale * len(c.scales), "steps_per_scale",
                      "SRCNNConfig.steps_per_scale x len(scales) (one SRCNN per scale)", {"steps_per_scale": 2},
                      {"test_limit": 1, "test_max_side": 96}))
    return units


def _hecnn():
    from .experiments import hecnn as M
    from .experiments import hecnn_images as I
    from .experiments import hecnn_speed as S
    units = [Unit("hecnn", name, M.config_for(name), M.train_experiment(name), _const("mnist"), _attr("steps"),
                  "steps", "TrainConfig.steps", {"steps": 2, "n_test": 16}, {"n_test": 500}) for name in M.RUNS]
    units.append(Unit("hecnn", "filters", M.filters_config_for, M.filters_experiment, _const("mnist"),
                      steps_note="no training (filters of models at initialisation)"))
    units += [Unit("hecnn", name, I.config_for(name), I.train_experiment(name), lambda c: (c.dataset,),
                   _attr("steps"), "steps", "ImageConfig.steps", {"steps": 1, "n_test": 8}, {"n_test": 256},
                   {"allow_standin": True})
              for name in I.RUNS]
    units.append(Unit("hecnn", "benchmark", S.bench_config_for, S.benchmark_experiment,
                      steps_note="no training (a speed benchmark)", smoke_overrides={"batch_size": 2}))
    return units


def _hcnn():
    from .experiments import hcnn as M
    units = [Unit("hcnn", name, M.train_config_for(name), M.train_experiment(name),
                  lambda c: ("cifar10" if c.num_classes == 10 else "cifar100",), _attr("steps"), "steps",
                  "TrainConfig.steps", {"steps": 1, "test_n": 16}, {"test_n": 200}) for name in M.TRAIN_RUNS]
    units.append(Unit("hcnn", "translation", M.translation_config_for, M.translation_experiment,
                      _const("cifar10"), _attr("train.steps"), "train.steps",
                      "TranslationConfig.train.steps (the circular HCNN it trains)",
                      {"train.steps": 1, "bank_n": 16, "n_queries": 4},
                      {"train.test_n": 200, "bank_n": 64, "n_queries": 8}))
    units.append(Unit("hcnn", "speed", M.speed_config_for, M.speed_experiment,
                      steps_note="no training (a speed benchmark)",
                      smoke_overrides={"batch_size": 2, "plain_widths": (), "warmup": 0,
                                       "cases": (("HCNN K=4 Q=8 (test)", 16, 4, 8, False),)}))
    return units


def _thesis_irevnet():
    from .experiments import thesis_irevnet as M
    units = [Unit("thesis_irevnet", f"train_{m}", M.train_config_for(m), M.run_train, _const("cifar10"),
                  _attr("steps"), "steps", "TrainConfig.steps", {"steps": 1},
                  {"n_test": 256, "n_noise": 64, "n_recon": 64, "probe_train": 256, "probe_test": 64,
                   "interp_pairs": 1, "jacobian_images": 0}) for m in M.MODELS]
    units.append(Unit("thesis_irevnet", "memory", M.memory_config_for, M.run_memory,
                      steps_note="no training (peak-memory probes)",
                      smoke_overrides={"cases": (("cifar_b", 2, 32),), "repeats": 0}))
    return units


def _thesis_rfnn():
    from .experiments import thesis_rfnn as M

    def sizes_steps(c):
        return sum(M.steps_for(c, n) for n in c.sizes) * len(c.seeds) * len(c.models)
    notes = {
        "mnist_sizes": (sizes_steps, "max_steps", "sum over sizes of steps_for(size) (min of the official "
                        "epochs and max_steps) x len(seeds) x len(models)", {"max_steps": 2, "n_test": 16},
                        {"n_test": 500, "seeds": (0,)}),
        "ablation": (lambda c: c.steps * len(c.variants), "steps", "AblationConfig.steps x len(variants)",
                     {"steps": 1}),
        "class_subsets": (lambda c: c.steps * len(c.variants) * len(c.class_counts), "steps",
                          "ClassSubsetConfig.steps x len(variants) x len(class_counts)", {"steps": 1}),
        "cifar10": (lambda c: c.steps * len(c.variants), "steps", "CifarConfig.steps x len(variants)",
                    {"steps": 1, "n_test": 8}, {"n_test": 256}),
        "cifar100": (lambda c: c.steps * len(c.variants), "steps", "CifarConfig.steps x len(variants)",
                     {"steps": 1, "n_test": 8}, {"n_test": 256}, {"allow_standin": True}),
    }
    data = {"mnist_sizes": _const("mnist"), "ablation": lambda c: (c.dataset,),
            "class_subsets": lambda c: (c.dataset,), "cifar10": lambda c: (c.which,), "cifar100": lambda c: (c.which,)}
    units = []
    for name, (config_for, fn) in M.EXPERIMENTS.items():
        steps_of, step_field, note, smoke, *timing = notes.get(name, (None, None, "steps not known to the "
                                                                      "registry", {}))
        units.append(Unit("thesis_rfnn", name, config_for, fn, data.get(name, _const()), steps_of, step_field,
                          note, smoke, *timing))
    return units


def _thesis_steerable():
    from .experiments import thesis_steerable as M
    units = [
        Unit("thesis_steerable", "blobs", M.BlobsConfig.for_profile, M.run_blobs, _const(),
             lambda c: c.steps * len(c.kinds) * 2, "steps",
             "BlobsConfig.steps x len(kinds) x 2 (dynamic block and pixel FCN)",
             {"steps": 1, "kinds": ("binary",), "size": 24, "batch": 1, "n_test": 2, "n_panel": 1},
             {"n_test": 8, "n_panel": 1}),
        Unit("thesis_steerable", "cifar_frames", M.CifarFramesConfig.for_profile, M.run_cifar_frames,
             _const("cifar10"), lambda c: M.reduced_steps(c) * len(c.archs) * len(c.frames) * c.runs, "steps",
             "reduced_steps(config) (steps, else epochs x n_train / batch) x archs x frames x runs", {"steps": 1},
             {"runs": 1, "n_test": 256}),
        Unit("thesis_steerable", "bsds", M.BsdsConfig.for_profile, M.run_bsds, _const("bsds500"),
             lambda c: c.steps * 2, "steps", "BsdsConfig.steps x 2 (dynamic and static network)", {"steps": 1},
             {"n_test": 2}),
    ]
    if hasattr(M, "run_canny_calibration"):   # not (yet) called by the chapter; no training
        units.append(Unit("thesis_steerable", "canny_calibration", M.CannyCalibrationConfig.for_profile,
                          M.run_canny_calibration, _const("bsds500"),
                          steps_note="no training (scikit-image's Canny scored on BSDS500)"))
    return units


BUILDERS = {
    "hypernets": _hypernets, "functional_images": _functional_images, "hecnn": _hecnn, "hcnn": _hcnn,
    "thesis_rfnn": _thesis_rfnn, "thesis_steerable": _thesis_steerable, "thesis_irevnet": _thesis_irevnet,
}


@lru_cache(maxsize=None)
def chapter_units(chapter: str) -> tuple:
    if chapter not in BUILDERS:
        raise UnknownChoiceError("chapter", chapter, BUILDERS)
    return tuple(BUILDERS[chapter]())


def all_units() -> list[Unit]:
    return [u for chapter in CHAPTERS if chapter in BUILDERS for u in chapter_units(chapter)]


def get_unit(key: str) -> Unit:
    """'chapter/experiment' -> its Unit; an unknown chapter or experiment names the valid ones."""
    if "/" not in key:
        raise BookError(f"unit {key!r} is not of the form CHAPTER/EXPERIMENT (or a chapter name alone)")
    chapter, name = key.split("/", 1)
    units = {u.name: u for u in chapter_units(chapter if chapter in BUILDERS else _bad_chapter(chapter))}
    if name not in units:
        raise UnknownChoiceError(f"{chapter} experiment", name, units)
    return units[name]


def _bad_chapter(chapter):
    raise UnknownChoiceError("chapter", chapter, BUILDERS)


def select(names: list[str] | None) -> list[Unit]:
    """Unit names ('chapter/experiment') or chapter names (every unit of it); none: every unit. Kept in order,
    without duplicates."""
    if not names:
        return all_units()
    out, seen = [], set()
    for name in names:
        units = [get_unit(name)] if "/" in name else list(chapter_units(name if name in BUILDERS
                                                                        else _bad_chapter(name)))
        for u in units:
            if u.key not in seen:
                seen.add(u.key)
                out.append(u)
    return out


# ============================================================================ data present? (the data layer says)
def data_state(unit: Unit, profile: str, data_dir=None, overrides: dict | None = None) -> str:
    """'yes' (every dataset present), 'none needed', 'stand-in' (missing, and this profile may use a labelled
    stand-in) or 'MISSING: a, b' (missing and the profile refuses stand-ins)."""
    data_dir = Path(data_dir) if data_dir else REPO_ROOT / "data"
    config = unit.config(profile, overrides)
    names = unit.datasets(config)
    if not names:
        return "none needed"
    missing = [n for n in names if dataset_ready(n, data_dir) is False]   # None (unknown): not counted
    if not missing:
        return "yes"
    if getattr(config, "allow_standin", profile != "full"):
        return "stand-in (" + ", ".join(missing) + " absent)"
    return "MISSING: " + ", ".join(missing)


# ============================================================================ measured cost
def device_kind(device_string: str) -> str:
    """'cpu' or 'cuda' of a provenance device string ('CPU (x86_64, 2 cores)', 'NVIDIA H200', 'cuda:0')."""
    s = str(device_string)
    return "cpu" if s.upper().startswith("CPU") else "cuda"


def machine_slug(machine: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-") or "machine"


def scan_records(results_dir=DEFAULT_RESULTS_DIR) -> dict:
    """(chapter, experiment) -> [provenance dict + 'path'] of every complete record under results_dir."""
    out: dict = {}
    root = Path(results_dir)
    for prov_path in sorted(root.glob("*/*/*/provenance.json")):
        if prov_path.parts[-4].startswith("_") or prov_path.parent.name.startswith("."):
            continue
        try:
            prov = json.loads(prov_path.read_text())
        except (OSError, ValueError):
            continue
        prov["path"] = str(prov_path.parent)
        out.setdefault((prov_path.parts[-4], prov_path.parts[-3]), []).append(prov)
    return out


def load_timings(results_dir=DEFAULT_RESULTS_DIR) -> list[dict]:
    folder = Path(results_dir) / TIMINGS_DIR
    tables = []
    for path in sorted(folder.glob("*.json")):
        try:
            table = json.loads(path.read_text())
        except ValueError as err:
            raise BookError(f"step-time table {path} is not valid JSON ({err}); its format:\n{TIMINGS_FORMAT}")
        for key in ("machine", "device", "units"):
            if key not in table:
                raise BookError(f"step-time table {path} has no {key!r}; its format:\n{TIMINGS_FORMAT}")
        table["path"] = str(path)
        tables.append(table)
    return tables


@dataclass
class Estimate:
    seconds: float | None
    source: str                  # where the number comes from ('record', 'timing table ...', 'not timed')
    recorded: bool


class CostModel:
    """Estimated wall time of a unit's config on a kind of device ('cpu' / 'cuda'), optionally one machine."""

    def __init__(self, device: str = "cpu", results_dir=DEFAULT_RESULTS_DIR, machine: str | None = None,
                 records: dict | None = None, timings: list | None = None):
        self.device = device_kind(device) if device not in ("cpu", "cuda") else device
        self.machine = machine
        self.results_dir = Path(results_dir)
        self.records = scan_records(results_dir) if records is None else records
        tables = load_timings(results_dir) if timings is None else timings
        self.timings = [t for t in tables if t.get("device") == self.device
                        and (machine is None or machine.lower() in t["machine"].lower())]

    def _matches(self, prov: dict) -> bool:
        dev = prov.get("device", "")
        return device_kind(dev) == self.device and (self.machine is None or self.machine.lower() in dev.lower())

    def estimate(self, unit: Unit, profile: str, overrides: dict | None = None) -> Estimate:
        config = unit.config(profile, overrides)
        chash = config_hash(config)
        mine = self.records.get((unit.chapter, unit.name), [])
        recorded = any(p.get("profile") == profile and p.get("config_hash") == chash for p in mine)
        timed = [p for p in mine if self._matches(p) and isinstance(p.get("wall_time_s"), (int, float))]
        same = [p for p in timed if p.get("profile") == profile]
        # this config's record, else the same config recorded under another profile (fixed-cost units whose
        # profiles agree): the same work. sorted() is stable, so the newest same-profile record comes last.
        exact = sorted((p for p in timed if p.get("config_hash") == chash), key=lambda p: p.get("profile") == profile)
        if exact:
            p = exact[-1]
            other = "" if p.get("profile") == profile else f" of the same config as {p.get('profile')}"
            return Estimate(float(p["wall_time_s"]), f"record {p.get('date', '?')[:10]}{other} on {p.get('device')}",
                            recorded)
        if unit.seed_field is not None:      # another seed of this very config costs the same
            mine_seedless = _seedless(config, unit.seed_field)
            siblings = [p for p in same if isinstance(p.get("config"), dict)
                        and _seedless(p["config"], unit.seed_field) == mine_seedless]
            if siblings:
                p = siblings[-1]
                return Estimate(float(p["wall_time_s"]), f"record {p.get('date', '?')[:10]} of seed "
                                f"{p.get('seed', '?')} on {p.get('device')}", recorded)
        steps = unit.steps(config)
        for table in self.timings:
            entry = table["units"].get(unit.key, {}).get(profile)
            if entry and steps is not None:
                on_standin = "; on a stand-in of the same shape" if entry.get("data", "").startswith("stand-in") else ""
                return Estimate(entry["ms_per_step"] * steps / 1000.0,
                                f"step-time table {Path(table['path']).name} ({entry.get('date', '?')[:10]}; "
                                f"training steps only{on_standin})", recorded)
        for p in sorted(same, key=lambda q: q.get("date", ""), reverse=True):   # newest record first
            try:
                old_steps = unit.steps(apply_overrides(type(config)(**_rebuild(type(config), p["config"])), None))
            except Exception:          # an old config this code cannot rebuild
                old_steps = None
            if steps is None and old_steps is None:
                return Estimate(float(p["wall_time_s"]), f"older {profile} record {p.get('date', '?')[:10]} "
                                "(fixed cost)", recorded)
            if steps and old_steps:
                return Estimate(float(p["wall_time_s"]) / old_steps * steps,
                                f"older {profile} record {p.get('date', '?')[:10]}, scaled by steps", recorded)
        return Estimate(None, "not timed" if steps is not None else f"not timed: {unit.steps_note}", recorded)


def _seedless(config, seed_field: str) -> str:
    """A config (dataclass or recorded dict) as canonical JSON without its seed field."""
    data = json.loads(json.dumps(config_dict(config), default=str))
    *parents, leaf = seed_field.split(".")
    node = data
    for name in parents:
        node = node.get(name, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node.pop(leaf, None)
    return json.dumps(data, sort_keys=True)


def _rebuild(cls, data: dict) -> dict:
    """Keyword arguments of `cls` from a recorded config dict (lists back to tuples, nested dataclasses)."""
    out = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        default = getattr(cls, f.name, None) if not callable(f.default_factory) else f.default_factory()
        if isinstance(value, dict) and is_dataclass(default):
            value = type(default)(**_rebuild(type(default), value))
        elif isinstance(value, list):
            value = _tupled(value)
        out[f.name] = value
    return out


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


# ============================================================================ plan
def hours(seconds: float | None) -> str:
    if seconds is None:
        return "not timed"
    return f"{seconds / 3600:.2f}" if seconds >= 36 else f"{seconds / 3600:.4f}"


def plan_rows(units: list[Unit], profile: str, cost: CostModel, data_dir=None) -> list[dict]:
    rows = []
    for u in units:
        config = u.config(profile)
        est = cost.estimate(u, profile)
        rows.append({"unit": u.key, "steps": u.steps(config), "hours": est.seconds and est.seconds / 3600,
                     "estimate": hours(est.seconds), "source": est.source,
                     "recorded": "yes" if est.recorded else "no", "data": data_state(u, profile, data_dir)})
    return rows


def format_plan(rows: list[dict], profile: str, device: str) -> str:
    header = ("unit", "steps", "est. hours", "recorded", "data", "estimate from")
    table = [header] + [(r["unit"], "-" if r["steps"] is None else str(r["steps"]), r["estimate"], r["recorded"],
                         r["data"], r["source"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    todo = [r for r in rows if r["recorded"] == "no"]
    timed = [r["hours"] for r in todo if r["hours"] is not None]
    lines.append("")
    lines.append(f"profile {profile} on {device}: {len(rows)} units, {len(rows) - len(todo)} recorded; "
                 f"{len(todo)} to run, {len(timed)} of them timed, estimated {sum(timed):.2f} h "
                 f"({len(todo) - len(timed)} not timed: not included)")
    return "\n".join(lines)


def chapter_costs(chapter: str, profile: str = "full", results_dir=DEFAULT_RESULTS_DIR, data_dir=None):
    """A chapter's "what it costs to rerun" table: per unit, its training steps at `profile`, the estimated hours on
    a CPU and on a GPU (`CostModel`: a record of this config, else the committed step-time table, else an older
    record scaled by steps; "not timed" when none exists), recorded or not, and whether its data is here."""
    import pandas as pd

    from . import tables
    profile = check_training_profile(profile)
    records = scan_records(results_dir)
    models = {d: CostModel(d, results_dir, records=records) for d in ("cpu", "cuda")}
    rows, sources, timed = [], set(), {d: [] for d in models}
    for u in chapter_units(chapter):
        est = {d: m.estimate(u, profile) for d, m in models.items()}
        sources.update(e.source for e in est.values() if e.seconds is not None)
        for d, e in est.items():
            timed[d].append(e.seconds)
        rows.append({"experiment": u.name, "steps": u.steps(u.config(profile)),
                     "CPU hours": hours(est["cpu"].seconds), "GPU hours": hours(est["cuda"].seconds),
                     "recorded": "yes" if est["cpu"].recorded else "no", "data here": data_state(u, profile, data_dir)})
    frame = pd.DataFrame(rows)
    frame["steps"] = frame["steps"].map(lambda v: "-" if v is None or pd.isna(v) else f"{int(v):,}")
    totals = {d: sum(x for x in v if x is not None) / 3600 for d, v in timed.items()}
    untimed = {d: sum(x is None for x in v) for d, v in timed.items()}
    caption = (f"{profile} profile. Estimates from: {'; '.join(sorted(sources)) or 'nothing measured yet'}. Training "
               f"steps only (loading and evaluation excluded). Timed units add up to {totals['cpu']:.1f} CPU hours "
               f"({untimed['cpu']} units not timed on a CPU) and {totals['cuda']:.1f} GPU hours ({untimed['cuda']} "
               f"not timed on a GPU). One unit: `hyperbook train {chapter}/<experiment> --profile {profile}`.")
    return tables.show(frame, caption=caption)


def full_cost_markdown(results_dir=DEFAULT_RESULTS_DIR, fits_hours: float = 2.0) -> str:
    """The README's "what the full protocols cost" block, from the committed records and step-time tables: per
    chapter the units, how many are timed on a CPU, their estimated CPU hours, and which fit in `fits_hours`."""
    cpu = CostModel("cpu", results_dir)
    tables_used = sorted({f"{t['machine']}, {t.get('threads', '?')} threads, torch {t.get('torch', '?')}, "
                          f"{str(t.get('date', '?'))[:10]}" for t in cpu.timings if t.get("units")})
    lines = [f"Estimated training hours of every unit's `full` protocol on a CPU ({'; '.join(tables_used) or 'none'}; "
             "`hyperbook plan --profile full`): a recorded run's wall time, else the measured ms/step times the steps. "
             "Loading and evaluation are not included.", "",
             f"| chapter | units | timed | CPU hours of the timed ones | longest | within {fits_hours:g} h |",
             "| --- | --- | --- | --- | --- | --- |"]
    fitting = []
    for chapter in CHAPTERS:
        if chapter not in BUILDERS:
            continue
        units = [u for u in chapter_units(chapter) if u.step_field is not None]   # benchmarks train nothing
        est = {u.key: cpu.estimate(u, "full").seconds for u in units}
        timed = {k: v / 3600 for k, v in est.items() if v is not None}
        fit = sorted((h, k) for k, h in timed.items() if h <= fits_hours)
        fitting += fit
        longest = max(timed.items(), key=lambda kv: kv[1]) if timed else None
        lines.append(f"| {chapter} | {len(units)} | {len(timed)} | {sum(timed.values()):,.1f} | "
                     + (f"{longest[0].split('/')[1]} ({longest[1]:,.0f} h)" if longest else "-")
                     + f" | {len(fit)} |")
    lines += ["", f"Within {fits_hours:g} CPU hours: " + (", ".join(f"{k} ({h:.2f} h)" for h, k in sorted(fitting))
                                                          or "none") + "."]
    return "\n".join(lines)


# ============================================================================ hyperbook time
class UntimeableError(BookError):
    """A unit whose data is missing here and which has no stand-in of the same shape."""


def time_unit(unit: Unit, profile: str, n: int, device: str = "cpu", data_dir=None, scratch=None,
              warmup: int = 2) -> dict:
    """ms per training step of `unit` at `profile`: one scratch run with its step field at warmup + n, every step
    of every training loop clocked (`train.step_times`); per loop, the median of the steps after the first
    `warmup`; ms_per_step = the mean of those medians over the loops it trains (models of one unit train equal
    step counts). Loading and evaluation are outside the loops, so they never enter the figure; the unit's
    `timing_overrides` only make them cheaper."""
    import statistics
    import tempfile

    import torch

    from .context import RunContext
    from .cpu_load import OtherLoad
    from .train import step_times
    if unit.step_field is None:
        raise BookError(f"{unit.key} has no step field in its config ({unit.steps_note}): it cannot be timed "
                        "per step")
    if n < 1 or warmup < 0:
        raise BookError(f"--steps must be at least 1 and --warmup at least 0, got {n} and {warmup}")
    state = data_state(unit, profile, data_dir)
    standin = state.startswith("MISSING")
    fixed = {**unit.timing_overrides, **(unit.standin_overrides if standin else {})}
    overrides = {**fixed, unit.step_field: warmup + n}
    with tempfile.TemporaryDirectory(prefix="hyperbook-time-", dir=scratch) as tmp:
        ctx = replace(RunContext.from_params(unit.chapter, profile, device, data_dir, tmp, reuse=False), timing=True)
        t0 = time.perf_counter()
        with step_times() as loops, OtherLoad() as load:
            try:
                unit.run(ctx, overrides)
            except DatasetMissingError as err:
                raise UntimeableError(f"{unit.key} cannot be timed at {profile} here: {state.lower()} and it has "
                                      f"no stand-in of the same shape ({err})") from err
        wall = time.perf_counter() - t0
    timed = [d[warmup:] for _, d in loops if len(d) > warmup]
    if not timed:
        raise BookError(f"{unit.key}: no training loop ran more than {warmup} steps with {unit.step_field}="
                        f"{warmup + n}; pick a larger --steps")
    medians = [statistics.median(d) for d in timed]
    from .results import _device_name
    return {"unit": unit.key, "profile": profile, "ms_per_step": round(1000.0 * statistics.fmean(medians), 3),
            "steps": [warmup, n], "loops": len(timed),
            "loop_ms": [round(1000.0 * m, 3) for m in medians], "wall_s": round(wall, 3),
            "config_hash": config_hash(unit.config(profile, overrides)),
            "timing_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in fixed.items()},
            "data": "stand-in of the same shape (" + state[len("MISSING: "):] + " absent)" if standin else state,
            "machine": _device_name(device), "device": device_kind(device if device != "auto" else "cpu"),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "busy_during_cores": None if load.cores is None else round(load.cores, 2),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def write_timing(entry: dict, results_dir=DEFAULT_RESULTS_DIR) -> Path:
    """Merge one `time_unit` result into results/_timings/<machine>.json (written atomically)."""
    folder = Path(results_dir) / TIMINGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{machine_slug(entry['machine'])}.json"
    table = json.loads(path.read_text()) if path.exists() else {"machine": entry["machine"], "units": {}}
    table.update(machine=entry["machine"], device=entry["device"], torch=entry["torch"], threads=entry["threads"],
                 date=entry["date"])
    table["units"].setdefault(entry["unit"], {})[entry["profile"]] = {
        k: entry[k] for k in ("ms_per_step", "steps", "loops", "loop_ms", "config_hash", "date", "timing_overrides",
                              "data", "busy_elsewhere_cores", "busy_during_cores") if k in entry}
    return write_text_atomic(path, json.dumps(table, indent=1, sort_keys=True))


__all__ = ["Unit", "all_units", "get_unit", "select", "chapter_units", "CostModel", "Estimate", "plan_rows",
           "format_plan", "data_state", "time_unit", "write_timing", "UntimeableError", "chapter_costs",
           "full_cost_markdown", "TRAINING_PROFILES", "replace"]

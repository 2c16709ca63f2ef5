"""One results vocabulary for the whole book: a `Check` per stated number, and its verdict.

A check compares one number the document states with the number our recorded run gives.
Verdicts (`VERDICTS`):

- ``exact``: a data-independent quantity (a parameter count, a bound from the code) equal to the document's;
- ``matches``: within the stated tolerance of the document's value (or a stated bound holds);
- ``diverges``: outside it, from a run that can decide (a full-protocol run, or a data-independent quantity);
- ``inconclusive``: no recorded run, no number to compare (a figure judged by eye), a trained number
  from a cut-down (``reduced``) run that is outside the tolerance (short training cannot decide the gap),
  or a mean over seeds outside the tolerance but within seed noise (below);
- ``not comparable``: the run is a ``smoke`` run or used stand-in data; such a number is never set
  against the document's (no difference is computed);
- ``not reproducible here``: with the reason (e.g. restricted clinical data).

Seeds. ``hyperbook train UNIT --seed S`` (and ``sweep --seeds``) writes the seed into the config, so a seed's
record has its own config hash. A record counts as a *seed replicate* of a unit when its hash is the one today's
code gives that unit's config at that profile with only the seed set to the seed the record states (its config's
seed field, else provenance ``seed``); any other difference (a superseded model or protocol) leaves it out, as
before. The replicates of one (chapter, experiment, profile) make one `Run`: ``metrics`` / ``provenance`` are
the default seed's record (else the lowest seed's), ``replicates`` the (seed, metrics) of every seed.
A trained (not data-independent) check of a run with n > 1 seeds takes ``ours`` = the mean over the seeds and
``std`` = their sample standard deviation (n - 1 in the denominator). The document's number is one training
run, so it is set against the spread of single runs, not of the mean:

- the mean within the tolerance: ``matches``;
- outside it, but within the tolerance widened by 2 std (for a bound: mean -/+ 2 std still on the stated
  side): ``inconclusive``, "within seed noise (n seeds, std x)", for a reduced run and a full one alike;
- beyond that: ``diverges`` for a full run; a reduced run stays ``inconclusive`` (training cut short).

Data-independent checks are judged on the default seed's record alone, as before (such a quantity does not
depend on the seed's training). `rows` shows a mean over seeds as "mean ± std (n seeds)"; `seed_summary` gives
(mean, std, n) of any metric for a chapter's own tables.

Chapters call ``verdicts.for_chapter("hecnn")`` for their "what agrees" section; the status page
(`hyperbook.status`) calls ``all_checks()``.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from .results import DEFAULT_RESULTS_DIR, config_hash
from .tables import DASH, format_value
from .targets import BY_ID, TARGETS

VERDICTS = ("exact", "matches", "diverges", "inconclusive", "not comparable", "not reproducible here")
PROFILE_RANK = {"full": 3, "reduced": 2, "book": 1, "smoke": 0}
DATA_KEYS = ("data_source", "source", "data", "stand_in_for", "texture_source", "dataset")


# ----------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    """What a verdict needs to know of one recorded run."""
    chapter: str
    experiment: str
    profile: str
    metrics: dict = field(default_factory=dict, compare=False, repr=False)
    provenance: dict = field(default_factory=dict, compare=False, repr=False)
    # (seed, metrics) of every seed replicate of this config, this run's own record included; () for a lone run
    replicates: tuple = field(default=(), compare=False, repr=False)
    # the device kinds (`device_kind`) of those replicates' records, sorted, each once
    devices: tuple = field(default=(), compare=False, repr=False)

    @property
    def seeds(self) -> tuple:
        return tuple(seed for seed, _ in self.replicates)

    @property
    def n_seeds(self) -> int:
        return max(len(self.replicates), 1)

    def values(self, path) -> list[float]:
        """The metric at `path` (as in SPEC) of every seed replicate that records it."""
        every = [m for _, m in self.replicates] or [self.metrics]
        return [v for v in (_get(m, path) for m in every) if v is not None]

    @property
    def date(self) -> str:
        return str(self.provenance.get("date", "?"))[:10]

    @property
    def commit(self) -> str:
        return str(self.provenance.get("git_commit", "?"))[:8]

    @property
    def device(self) -> str:
        return str(self.provenance.get("device", "?"))

    @property
    def device_kind(self) -> str:
        """The device as a table cell names it: 'CPU' for 'CPU (x86_64, 2 cores)', the GPU's name as recorded
        ('NVIDIA H200'); '' where the record names none (records older than the device field)."""
        name = self.device
        return "" if name == "?" else name.split(" (")[0]

    @property
    def devices_cell(self) -> str:
        """'CPU', or 'CPU + NVIDIA H200' where the seed replicates come from both; '' where none is named."""
        return " + ".join(k for k in self.devices or (self.device_kind,) if k)

    def data(self, keys=DATA_KEYS) -> str:
        """The run's own statement of its data ('' if it states none)."""
        dataset, replaced = self.metrics.get("dataset"), self.metrics.get("stand_in_for")
        if isinstance(replaced, str) and replaced:
            return f"{dataset or 'a stand-in'} standing in for {replaced}"
        for key in keys:
            value = self.metrics.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    def is_stand_in(self, keys=DATA_KEYS) -> bool:
        if self.metrics.get("stand_in") is True or self.metrics.get("stand_in_for"):
            return True
        return is_stand_in_text(self.data(keys))


def is_stand_in(source: str) -> bool:
    return is_stand_in_text(source)


def is_stand_in_text(source: str) -> bool:
    s = (source or "").lower()
    return any(word in s for word in ("stand-in", "stand in", "stands in", "standing in", "not available"))


def current_hashes() -> dict[tuple[str, str, str], str]:
    """(chapter, experiment, profile) -> the config hash today's code gives that unit (from the registry)."""
    from .units import all_units
    out = {}
    for unit in all_units():
        for profile in ("reduced", "full"):
            digest = today_hash(unit.chapter, unit.name, profile)
            if digest is not None:
                out[(unit.chapter, unit.name, profile)] = digest
    return out


@lru_cache(maxsize=None)
def today_hash(chapter: str, experiment: str, profile: str, seed: int | None = None) -> str | None:
    """The hash today's code gives the unit's `profile` config with its seed field set to `seed` (None: the
    default seed); None for a unit the registry does not know, a profile it does not define, or smoke (a
    scratch record, never checked against today's code)."""
    if profile not in ("reduced", "full"):
        return None
    from .units import get_unit
    try:
        unit = get_unit(f"{chapter}/{experiment}")
        overrides = {unit.seed_field: seed} if (seed is not None and unit.seed_field) else None
        return config_hash(unit.config(profile, overrides))
    except Exception:        # an unknown unit, or a profile the unit does not define
        return None


@lru_cache(maxsize=None)
def _known_unit(chapter: str, experiment: str) -> bool:
    from .units import get_unit
    try:
        get_unit(f"{chapter}/{experiment}")
        return True
    except Exception:
        return False


def record_seed(provenance: dict) -> int | None:
    """The seed a record states: its config's `seed` (or a nested part's, e.g. `train.seed`), else the
    provenance's `seed`."""
    config = provenance.get("config")
    candidates = []
    if isinstance(config, dict):
        candidates.append(config.get("seed"))
        candidates += [part.get("seed") for part in config.values() if isinstance(part, dict)]
    candidates.append(provenance.get("seed"))
    return next((int(s) for s in candidates if isinstance(s, int) and not isinstance(s, bool)), None)


def _hash_lookup(current):
    """(chapter, experiment, profile, seed) -> today's hash. `current` None: the registry (`today_hash`);
    a dict: {(chapter, experiment, profile): default hash, optionally (chapter, experiment, profile, seed):
    that seed's hash} (tests, or {} to keep every record)."""
    if current is None:
        return today_hash
    return lambda c, e, p, seed=None: current.get((c, e, p, seed), current.get((c, e, p))) \
        if seed is not None else current.get((c, e, p))


def _read(prov_path: Path):
    try:
        return json.loads(prov_path.read_text()), json.loads((prov_path.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return None, None


def _date(run: Run) -> str:
    return str(run.provenance.get("date", ""))


def load_runs(results_dir=DEFAULT_RESULTS_DIR, include_smoke: bool = False, current: dict | None = None,
              chapter: str | None = None, experiment: str | None = None) -> dict[tuple[str, str], Run]:
    """(chapter, experiment) -> its best recorded run: full over reduced (over smoke), then the newest.

    Smoke runs are git-ignored scratch records (CI's and a reader's own): by default they are left out, so
    the status page says the same on every machine, from the committed records alone. A record whose config
    is not today's config of its unit at that profile, up to the seed (a run of a superseded model or
    protocol, kept as history), is left out too, as the chapters leave it out; the seed replicates of today's
    config are grouped into one Run (module docstring). `current`: see `_hash_lookup` (default: the
    registry). `chapter` / `experiment`: read only those folders.
    """
    lookup = _hash_lookup(current)
    pattern = f"{chapter or '*'}/{experiment or '*'}/*/provenance.json"
    groups: dict[tuple, tuple] = {}         # group key -> ((chapter, experiment folder), {seed: (is default, Run)})
    for prov_path in sorted(Path(results_dir).glob(pattern)):
        if prov_path.parts[-4].startswith("_") or prov_path.parent.name.startswith("."):
            continue
        prov, metrics = _read(prov_path)
        if prov is None:
            continue
        ch, ex = prov_path.parts[-4], prov_path.parts[-3]
        run = Run(ch, prov.get("experiment", ex), prov.get("profile", "?"), metrics, prov)
        if run.profile == "smoke" and not include_smoke:
            continue
        digest, seed = prov.get("config_hash"), record_seed(prov)
        if current is None and run.profile in ("reduced", "full") and not _known_unit(ch, ex):
            continue                                # an experiment the book no longer has (e.g. i-RevNet on MNIST)
        default = lookup(ch, ex, run.profile)
        if default is None or digest is None:       # nothing to check it against: a run of its own
            groups[("lone", str(prov_path))] = ((ch, ex), {seed: (True, run)})
            continue
        if digest != default and (seed is None or digest != lookup(ch, ex, run.profile, seed)):
            continue                                # not today's config, whatever the seed
        members = groups.setdefault((ch, ex, run.profile), ((ch, ex), {}))[1]
        if seed not in members or _date(run) > _date(members[seed][1]):
            members[seed] = (digest == default, run)
    best: dict[tuple[str, str], Run] = {}
    for key, members in groups.values():
        run = _grouped(members)
        old = best.get(key)
        rank = (PROFILE_RANK.get(run.profile, -1), _date(run))
        if old is None or rank > (PROFILE_RANK.get(old.profile, -1), _date(old)):
            best[key] = run
    return best


def _grouped(members: dict) -> Run:
    """One Run of a config's seed replicates: the default seed's record (else the lowest seed's) with the
    (seed, metrics) of all of them."""
    order = sorted(members, key=lambda s: (s is None, s if s is not None else 0))
    lead = next((s for s in order if members[s][0]), order[0])
    run = members[lead][1]
    kinds = tuple(sorted({members[s][1].device_kind for s in order} - {""}))
    return replace(run, replicates=tuple((s, members[s][1].metrics) for s in order), devices=kinds)


def runs_for_target(target_id: str, runs: dict[tuple[str, str], Run]) -> list[Run]:
    """Recorded runs whose metrics name the target, best profile first."""
    found = [r for r in runs.values() if target_id in (r.metrics.get("targets") or [])]
    return sorted(found, key=lambda r: (-PROFILE_RANK.get(r.profile, -1), r.experiment))


# ----------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Check:
    """One number of a document against ours.

    mode: "abs" (|ours - document| <= tolerance; tolerance 0 asks for equality), "factor" (within a
    factor `tolerance` either way), "below" / "above" (the document states a bound: ours must be under /
    over `document`). `data_independent`: the quantity does not depend on training data or length
    (parameter counts, equivariance from the construction), so a reduced run decides it. `std`, `n_seeds`:
    the spread of `ours` (a mean) over that many seeds (the rule: module docstring)."""
    target: str
    claim: str
    document: float | str | None
    ours: float | None = None
    tolerance: float | None = None
    unit: str = ""
    mode: str = "abs"
    data_independent: bool = False
    run: Run | None = None
    data_keys: tuple = DATA_KEYS
    note: str = ""
    std: float | None = None
    n_seeds: int = 1

    def __post_init__(self):
        if self.mode not in ("abs", "factor", "below", "above"):
            raise ValueError(f"Check {self.target}: mode {self.mode!r} is not one of abs, factor, below, above")
        if self.target not in BY_ID:
            raise ValueError(f"Check: unknown target id {self.target!r}")

    @property
    def awaits_run(self) -> bool:
        """A trained number whose run is not recorded (not one computed from the code)."""
        return self.run is None and self.note.startswith(NO_RUN)

    @property
    def comparable(self) -> bool:
        if self.run is None or self.run.profile == "smoke":
            return False
        return not (self.run.is_stand_in(self.data_keys) and not self.data_independent)

    @property
    def numeric(self) -> bool:
        return isinstance(self.document, (int, float)) and isinstance(self.ours, (int, float)) \
            and not (isinstance(self.ours, float) and math.isnan(self.ours))

    @property
    def difference(self) -> float | None:
        """ours - document; None where the two may not be compared."""
        if not (self.numeric and self.comparable) or self.mode in ("below", "above"):
            return None
        return float(self.ours) - float(self.document)

    @property
    def spread(self) -> bool:
        """ours is a mean over seeds with a measured spread, and the verdict weighs it."""
        return self.n_seeds > 1 and self.std is not None and not self.data_independent

    def within(self, ours: float | None = None) -> bool:
        """ours (or the value given) is within the tolerance of the document's, or on the bound's side."""
        d, o = float(self.document), float(self.ours if ours is None else ours)
        tol = self.tolerance or 0.0
        if self.mode == "below":
            return o < d
        if self.mode == "above":
            return o > d
        if self.mode == "factor":
            return d != 0 and o != 0 and (d > 0) == (o > 0) and max(o / d, d / o) <= tol
        return abs(o - d) <= tol + 1e-12 * max(abs(d), 1.0)

    def within_noise(self) -> bool:
        """Some value within 2 std of the mean is within: the one nearest the document's (for a bound, the
        end of mean -/+ 2 std on the stated side)."""
        lo, hi = float(self.ours) - 2 * self.std, float(self.ours) + 2 * self.std
        nearest = {"below": lo, "above": hi}.get(self.mode, min(max(float(self.document), lo), hi))
        return self.within(nearest)

    @property
    def seed_note(self) -> str:
        return f"{self.n_seeds} seeds, std {format_value(self.std, self.unit, digits=2)}"

    @property
    def verdict(self) -> str:
        return self.judge()[0]

    @property
    def reason(self) -> str:
        return self.judge()[1]

    def judge(self) -> tuple[str, str]:
        t = BY_ID[self.target]
        if t.not_reproducible:
            return "not reproducible here", t.not_reproducible
        if self.run is None:
            return "inconclusive", self.note or "no recorded run"
        if self.run.profile == "smoke":
            return "not comparable", "smoke run: a few dozen steps exercise the code, they measure nothing"
        if self.run.is_stand_in(self.data_keys) and not self.data_independent:
            return "not comparable", f"stand-in data: {self.run.data(self.data_keys)}"
        if not self.numeric:
            return "inconclusive", self.note or "no number to compare: judge the figure"
        if self.within():
            exact = self.mode == "abs" and not self.tolerance and self.data_independent
            return ("exact" if exact else "matches"), self.note
        if self.data_independent:
            return "diverges", self.note
        if self.spread and self.within_noise():
            return "inconclusive", _joined(f"within seed noise ({self.seed_note})", self.note)
        if self.run.profile == "full":
            return "diverges", self.note
        return "inconclusive", _joined(f"{self.run.profile} protocol: training cut short cannot decide this gap"
                                       + (f" (mean of {self.seed_note})" if self.spread else ""), self.note)


def _joined(reason: str, note: str) -> str:
    return f"{reason}; {note}" if note else reason


# ----------------------------------------------------------------------------- the book's checks
def _get(metrics: dict, path):
    """metrics value at a dotted path (list of keys; a callable gets the metrics)."""
    if callable(path):
        try:
            return path(metrics)
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            return None
    node = metrics
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node):
            node = node[key]
        else:
            return None
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _score(set_name, method, scale, field_name):
    """F-T1/F-T2: the score of (set, method, scale); the first set recorded if `set_name` is absent."""
    def get(m):
        rows = [r for r in m.get("scores", []) if r.get("method") == method and r.get("scale") == scale]
        exact = [r for r in rows if r.get("set") == set_name]
        return (exact or rows)[0][field_name]
    return get


# (target, claim, document, chapter, experiment, metrics path, tolerance, unit, mode, data_independent, extra)
_ACC = 1.0     # percentage points: within a point of the document counts as a match
SPEC = [
    # HyperNets
    ("H-T1", "affine task, simple HyperNet: test MSE", 0.049395, "hypernets", "affine_simple", ["test_mse"], 0.005, "", "abs", False),
    ("H-T1", "affine task, deep HyperNet: test MSE", 0.0138223, "hypernets", "affine_deep", ["test_mse"], 0.005, "", "abs", False),
    ("H-T1", "affine task, autoencoder: test MSE", 0.0606265, "hypernets", "affine_autoencoder", ["test_mse"], 0.005, "", "abs", False),
    # Functional images (Set5 x2; the first recorded set stands in where Set5 is absent)
    ("F-T1", "Set5 x2 PSNR, bicubic (checks the evaluation: tolerance 0.05 dB)", 33.64, "functional_images", "sr_srcnn", _score("Set5", "bicubic", 2, "psnr"), 0.05, "dB", "abs", False),
    ("F-T1", "Set5 x3 PSNR, bicubic (checks the evaluation: tolerance 0.05 dB)", 30.41, "functional_images", "sr_srcnn", _score("Set5", "bicubic", 3, "psnr"), 0.05, "dB", "abs", False),
    ("F-T1", "Set5 x4 PSNR, bicubic (checks the evaluation: tolerance 0.05 dB)", 28.42, "functional_images", "sr_srcnn", _score("Set5", "bicubic", 4, "psnr"), 0.05, "dB", "abs", False),
    ("F-T1", "Set14 x2 PSNR, bicubic (checks the evaluation: tolerance 0.05 dB)", 30.33, "functional_images", "sr_srcnn", _score("Set14", "bicubic", 2, "psnr"), 0.05, "dB", "abs", False),
    ("F-T1", "Set14 x3 PSNR, bicubic (checks the evaluation: tolerance 0.05 dB)", 27.63, "functional_images", "sr_srcnn", _score("Set14", "bicubic", 3, "psnr"), 0.05, "dB", "abs", False),
    ("F-T1", "Set14 x4 PSNR, bicubic (checks the evaluation: tolerance 0.05 dB)", 26.08, "functional_images", "sr_srcnn", _score("Set14", "bicubic", 4, "psnr"), 0.05, "dB", "abs", False),
    ("F-T1", "Set5 x2 PSNR, SRCNN", 36.66, "functional_images", "sr_srcnn", _score("Set5", "SRCNN", 2, "psnr"), 0.3, "dB", "abs", False),
    ("F-T1", "Set5 x2 PSNR, hypernetwork", 36.09, "functional_images", "sr_hypernet", _score("Set5", "hypernetwork", 2, "psnr"), 0.3, "dB", "abs", False),
    ("F-T2", "Set5 x2 SSIM, bicubic", 0.930, "functional_images", "sr_srcnn", _score("Set5", "bicubic", 2, "ssim"), 0.005, "", "abs", False),
    ("F-T2", "Set5 x2 SSIM, SRCNN", 0.9542, "functional_images", "sr_srcnn", _score("Set5", "SRCNN", 2, "ssim"), 0.005, "", "abs", False),
    ("F-T2", "Set5 x2 SSIM, hypernetwork", 0.9505, "functional_images", "sr_hypernet", _score("Set5", "hypernetwork", 2, "ssim"), 0.005, "", "abs", False),
    # HE-CNN
    ("E-T1", "CNN parameters", 3370, "hecnn", "t1_cnn_mnist", ["parameters"], 0, "", "abs", True),
    ("E-T1", "Z4-CNN parameters", 12522, "hecnn", "t1_z4cnn_mnist", ["parameters"], 0, "", "abs", True),
    ("E-T1", "HE-CNN-L parameters", 11527, "hecnn", "t1_hecnn_l_mnist", ["parameters"], 0, "", "abs", True),
    ("E-T1", "CNN trained on MNIST, tested on MNIST", 96.29, "hecnn", "t1_cnn_mnist", ["accuracy", "MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "CNN trained on MNIST, tested on R-MNIST", 34.81, "hecnn", "t1_cnn_mnist", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "CNN trained on MNIST, tested on 90-MNIST", 17.76, "hecnn", "t1_cnn_mnist", ["accuracy", "90-MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "CNN trained on R-MNIST, tested on MNIST", 75.27, "hecnn", "t1_cnn_rmnist", ["accuracy", "MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "CNN trained on R-MNIST, tested on R-MNIST", 73.08, "hecnn", "t1_cnn_rmnist", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "CNN trained on R-MNIST, tested on 90-MNIST", 75.68, "hecnn", "t1_cnn_rmnist", ["accuracy", "90-MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "HE-CNN-L trained on R-MNIST, tested on MNIST", 96.44, "hecnn", "t1_hecnn_l_rmnist", ["accuracy", "MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "HE-CNN-L trained on R-MNIST, tested on R-MNIST", 96.32, "hecnn", "t1_hecnn_l_rmnist", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "HE-CNN-L trained on R-MNIST, tested on 90-MNIST", 96.44, "hecnn", "t1_hecnn_l_rmnist", ["accuracy", "90-MNIST"], _ACC, "%", "abs", False),
    ("E-F5", "MSE of layer-3/7 filters after rotating back (bound)", 1e-6, "hecnn", "filters", ["mse_max_all_conv_layers"], None, "", "below", True),
    ("E-T2", "Regular CNN on R-MNIST (document: Schmidt & Roth's, quoted; ours: E-T2's Z2CNN-shaped main network trained alone)", 96.02, "hecnn", "t2_cnn_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T2", "P4-CNN on R-MNIST", 97.72, "hecnn", "t2_p4cnn_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T2", "Z4-HE-CNN on R-MNIST", 99.50, "hecnn", "t2_hecnn_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T2", "Z4-HE-CNN-L on R-MNIST", 97.91, "hecnn", "t2_hecnn_l_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T2", "D8-HE-CNN-L on R-MNIST", 98.01, "hecnn", "t2_d8_hecnn_l_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T2", "D16-HE-CNN-L on R-MNIST", 98.05, "hecnn", "t2_d16_hecnn_l_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T2", "Z4-HE-CNN parameters (document: 9.68M)", 9.68e6, "hecnn", "t2_hecnn_regular", ["parameters"], 0.005e6, "", "abs", True),
    ("E-T2", "Z4-HE-CNN-L parameters (document: 51.9k)", 51.9e3, "hecnn", "t2_hecnn_l_regular", ["parameters"], 50, "", "abs", True),
    ("E-T3", "CIFAR-10, residual net, Z4 HE-CNN", 85.99, "hecnn", "t3_residual_z4_hecnn_cifar10", ["accuracy"], _ACC, "%", "abs", False),
    ("E-T4", "STL-10, WRN16/8 base", 87.26, "hecnn", "t4_wrn16_8_cnn", ["accuracy"], _ACC, "%", "abs", False),
    ("E-T4", "STL-10, Z4-HE-WRN", 90.08, "hecnn", "t4_wrn16_8_z4_hecnn", ["accuracy"], _ACC, "%", "abs", False),
    ("E-T5", "dynamic Z4-CNN parameters", 32964, "hecnn", "t5_dynamic_z4cnn_rmnist", ["parameters"], 0, "", "abs", True),
    ("E-T5", "dynamic Z4-CNN loses equivariance: equivariance difference above 0", 0.0, "hecnn", "t5_dynamic_z4cnn_rmnist", ["equivariance_difference"], None, "%", "above", True),
    ("E-T6", "HE-CNN on R-MNIST", 99.50, "hecnn", "t2_hecnn_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T6", "HE-CNN-N on R-MNIST", 99.52, "hecnn", "t6_hecnn_n_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T6", "HE-CNN-L on R-MNIST", 97.91, "hecnn", "t2_hecnn_l_regular", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-F7", "equivariant generator: filter asymmetry collapses (below 1e-5)", 1e-5, "hecnn", "filters", lambda m: max(m["asymmetry_hecnn_l_eqgen"]), None, "", "below", True),
    ("E-F7", "non-equivariant generator: filters stay asymmetric (above 1e-3)", 1e-3, "hecnn", "filters", lambda m: min(m["asymmetry_hecnn_l"]), None, "", "above", False),
    ("E-B1", "rotation-loss alternative stays below 50% on MNIST", 50.0, "hecnn", "b1_rotation_loss_mnist", ["accuracy", "MNIST"], None, "%", "below", False),
    # HCNN (parameter counts of the document's full specification are data-independent)
    ("C-T1", "HCNN parameters (document: 0.098M)", 98000, "hcnn", "cifar10_hcnn", ["document_count_full_spec"], 500, "", "abs", True),
    ("C-T1", "HCNN(+) parameters (document: 0.34M)", 340000, "hcnn", "cifar10_hcnn_plus", ["document_count_full_spec"], 5000, "", "abs", True),
    ("C-T1", "HCNN on CIFAR-10", 91.23, "hcnn", "cifar10_hcnn", ["test_accuracy"], _ACC, "%", "abs", False),
    ("C-T1", "HCNN(+) on CIFAR-10", 92.30, "hcnn", "cifar10_hcnn_plus", ["test_accuracy"], _ACC, "%", "abs", False),
    ("C-T2", "HCNN parameters (document: 0.25M)", 250000, "hcnn", "cifar100_hcnn", ["document_count_full_spec"], 5000, "", "abs", True),
    ("C-T2", "HCNN(+) parameters (document: 0.89M)", 890000, "hcnn", "cifar100_hcnn_plus", ["document_count_full_spec"], 5000, "", "abs", True),
    ("C-T2", "HCNN on CIFAR-100", 62.01, "hcnn", "cifar100_hcnn", ["test_accuracy"], _ACC, "%", "abs", False),
    ("C-T2", "HCNN(+) on CIFAR-100", 63.19, "hcnn", "cifar100_hcnn_plus", ["test_accuracy"], _ACC, "%", "abs", False),
    ("C-Q", "Q = 9 -> 16: relative accuracy gain", 4.2, "hcnn", "cifar10_hcnn_q16", None, _ACC, "%", "abs", False),
    # Thesis ch. 3
    ("R-T1", "3rd order + scales, top-1", 69.65, "thesis_rfnn", "ablation", ["results", "rf_scale_order3", "top1"], _ACC, "%", "abs", False),
    ("R-T1", "NiN, top-1", 67.30, "thesis_rfnn", "ablation", ["results", "nin", "top1"], _ACC, "%", "abs", False),
    ("R-T2", "Gaussian basis in layer 1, top-1", 68.63, "thesis_rfnn", "ablation", ["results", "refactor_layer1_gauss", "top1"], _ACC, "%", "abs", False),
    ("R-T2", "freely learned basis in layer 1, top-1", 64.10, "thesis_rfnn", "ablation", ["results", "refactor_layer1_free", "top1"], _ACC, "%", "abs", False),
    ("R-T3", "RFNiN on CIFAR-10", 86.31, "thesis_rfnn", "cifar10", ["results", "rfnin", "top1"], _ACC, "%", "abs", False),
    ("R-T3", "RFNiN on CIFAR-100", 63.81, "thesis_rfnn", "cifar100", ["results", "rfnin", "top1"], _ACC, "%", "abs", False),
    # Thesis ch. 4
    ("S-T6", "ResNet, pixel basis: CIFAR-10+ error", 6.70, "thesis_steerable", "cifar_frames", lambda m: [r for r in m["results"] if r["frame"] == "pixel"][0]["error_mean"], 0.3, "%", "abs", False),
    ("S-F11", "dynamic ResNet ODS", 0.732, "thesis_steerable", "bsds", ["results", "dynamic", "ods"], 0.01, "", "abs", False),
    ("S-F11", "dynamic ResNet OIS", 0.751, "thesis_steerable", "bsds", ["results", "dynamic", "ois"], 0.01, "", "abs", False),
    ("S-F11", "static ResNet ODS", 0.720, "thesis_steerable", "bsds", ["results", "static", "ods"], 0.01, "", "abs", False),
    ("S-F11", "static ResNet OIS", 0.733, "thesis_steerable", "bsds", ["results", "static", "ois"], 0.01, "", "abs", False),
    ("S-F11", "scorer calibration: Canny ODS (published by Arbelaez et al. 2011; checks the evaluation: tolerance 0.02)", 0.60, "thesis_steerable", "canny_calibration", ["ods"], 0.02, "", "abs", False),
    ("S-F11", "scorer calibration: Canny OIS (published by Arbelaez et al. 2011; checks the evaluation: tolerance 0.02)", 0.63, "thesis_steerable", "canny_calibration", ["ois"], 0.02, "", "abs", False),
    # Thesis ch. 6
    ("I-T9", "i-RevNet (b) top-1 error", 26.7, "thesis_irevnet", "train_cifar_b", ["test_error_pct"], _ACC, "%", "abs", False),
    ("I-T9", "ResNet top-1 error", 24.7, "thesis_irevnet", "train_cifar_resnet", ["test_error_pct"], _ACC, "%", "abs", False),
    ("I-E1", "reconstruction error on noise, float32 (within 10x)", 5e-6, "thesis_irevnet", "train_cifar_b", ["e1_trained", "noise_float32"], 10.0, "", "factor", True),
]
# Where the document's claim needs a ratio of two runs
_C_Q_NOTE = "relative gain of the Q = 16 model's accuracy over the Q = 9 model's"


def _c_q(runs):
    """From each run's mean accuracy over its seeds."""
    lo, hi = runs.get(("hcnn", "cifar10_hcnn_q9")), runs.get(("hcnn", "cifar10_hcnn_q16"))
    if lo is None or hi is None:
        return None
    a, b = (stats(r.values(["test_accuracy"]))[0] for r in (lo, hi))
    return None if not a or b is None else 100.0 * (b - a) / a


def stats(values) -> tuple[float | None, float | None, int]:
    """(mean, sample std, n) of numbers; one number is itself with std None; none: (None, None, 0)."""
    values = list(values)
    if len(values) < 2:
        return (values[0] if values else None), None, len(values)
    return float(statistics.fmean(values)), float(statistics.stdev(values)), len(values)


DATA_KEYS_FOR = {"H-F4": ("letters_source",) + DATA_KEYS}


def all_checks(results_dir=DEFAULT_RESULTS_DIR, runs=None) -> list[Check]:
    """Every check of the book, in target order: the numeric ones of SPEC, and one figure check for each
    target SPEC does not cover (judged by eye, or not comparable when its run used stand-in data)."""
    runs = load_runs(results_dir) if runs is None else runs
    checks: list[Check] = []
    by_target: dict[str, list[Check]] = {}
    for tid, claim, doc, chapter, experiment, path, tol, unit, mode, indep in SPEC:
        run = runs.get((chapter, experiment))
        std, n = None, 1
        if path is None and tid == "C-Q":
            ours, note = _c_q(runs), _C_Q_NOTE
        elif run is None:
            ours, note = None, ""
        elif indep:                 # the seed does not enter it: the default seed's record decides
            ours, note = _get(run.metrics, path), ""
        else:
            (ours, std, n), note = stats(run.values(path)), ""
        check = Check(tid, claim, doc, ours, tol, unit, mode, indep, run,
                      DATA_KEYS_FOR.get(tid, DATA_KEYS), note or ("" if run else f"{NO_RUN} {experiment}"),
                      std, max(n, 1))
        by_target.setdefault(tid, []).append(check)
    for t in TARGETS:
        if t.id in by_target:
            checks += by_target[t.id]
            continue
        found = runs_for_target(t.id, runs)
        run = found[0] if found else None
        note = ("drawn from the code, no training: nothing to compare with a number" if run is None
                else "no number in the document to compare: judge the figure")
        checks.append(Check(t.id, t.what, t.document or None, None, None, "", "abs", False, run,
                            DATA_KEYS_FOR.get(t.id, DATA_KEYS), note))
    return checks


def summary(checks) -> dict[str, int]:
    """Verdict -> number of checks, in the order of VERDICTS (zeros left out)."""
    counts = {v: 0 for v in VERDICTS}
    for c in checks:
        counts[c.verdict] += 1
    return {k: v for k, v in counts.items() if v}


TARGET_PRIORITY = ("not reproducible here", "diverges", "inconclusive", "not comparable", "matches", "exact")


def target_verdict(checks) -> str:
    """One word for a target from its checks: the least favourable one (TARGET_PRIORITY order)."""
    words = {c.verdict for c in checks}
    return next((w for w in TARGET_PRIORITY if w in words), "inconclusive")


NO_RUN = "no recorded run of"


def run_cells(check: Check) -> tuple[str, str]:
    """(run, data) as the tables state a check's provenance: 'reduced, t1_cnn_mnist, 2026-12-02, CPU, 3 seeds' and
    the run's data ('the document's' where the record names none); 'from code (no training)' for a number
    computed from the code; 'no run recorded' where the check waits for a run that is not there."""
    if check.awaits_run:
        return "no run recorded", DASH
    if check.run is None:
        return "from code (no training)", "none needed"
    seeds = f", {check.run.n_seeds} seeds" if check.run.n_seeds > 1 else ""
    # a reader weighs a CPU run and a GPU run alike, but should see which made the number (every seed's device)
    device = f", {check.run.devices_cell}" if check.run.devices_cell else ""
    return (f"{check.run.profile}, {check.run.experiment}, {check.run.date}{device}{seeds}",
            check.run.data(check.data_keys) or "the document's")


def format_mean(mean, std, n: int, unit: str = "") -> str:
    """'97.52 ± 0.31% (3 seeds)'."""
    return f"{format_value(mean)} ± {format_value(std, unit, digits=2)} ({n} seeds)"


def ours_cell(check: Check):
    """What a table shows as ours: "mean ± std (n seeds)" over several seeds, else the plain number."""
    if check.n_seeds > 1 and check.std is not None and check.ours is not None:
        return format_mean(check.ours, check.std, check.n_seeds, check.unit)
    return check.ours


def rows(checks) -> list[dict]:
    """Plain rows (one per check) for tables: the document's value and ours side by side (ours a string
    "mean ± std (n seeds)" where there are several seeds; `std`, `n_seeds` alongside)."""
    out = []
    for c in checks:
        comparable = c.comparable
        run, data = run_cells(c)
        out.append({
            "target": c.target, "claim": c.claim,
            "document": c.document,
            "ours": ours_cell(c), "std": c.std, "n_seeds": c.n_seeds,
            "difference": c.difference,
            "tolerance": (None if c.mode in ("below", "above") else c.tolerance),
            "unit": c.unit, "verdict": c.verdict, "why": c.reason,
            "profile": c.run.profile if c.run else ("no run" if c.awaits_run else "from code"),
            "data": data, "run": run, "comparable": comparable,
        })
    return out


def for_chapter(chapter: str, results_dir=DEFAULT_RESULTS_DIR):
    """The chapter's checks as a DataFrame (show it with `hyperbook.tables.show`): target, claim, document,
    ours, difference, tolerance, unit, verdict, why, profile, data."""
    import pandas as pd
    from .chapters import check_chapter
    check_chapter(chapter)
    ids = {t.id for t in TARGETS if t.chapter == chapter}
    table = [r for r in rows(all_checks(results_dir)) if r["target"] in ids]
    frame = pd.DataFrame(table, columns=["target", "claim", "document", "ours", "difference", "tolerance",
                                         "unit", "verdict", "why", "profile", "data", "std", "n_seeds"])
    return frame


def seed_summary(chapter: str, experiment: str, metric_path, results_dir=DEFAULT_RESULTS_DIR):
    """(mean, std, n) of one metric over the recorded seeds of the run the verdicts use for
    (chapter, experiment): std None for one seed, (None, None, 0) with no run or no such metric.
    metric_path: a list of keys (or a dotted string, 'accuracy.R-MNIST'), or a callable of the metrics."""
    path = metric_path.split(".") if isinstance(metric_path, str) else metric_path
    run = load_runs(results_dir, chapter=chapter, experiment=experiment).get((chapter, experiment))
    return stats(run.values(path)) if run is not None else (None, None, 0)

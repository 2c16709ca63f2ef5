"""One results vocabulary for the whole book: a `Check` per stated number, and its verdict.

A check compares one number the document states with the number our recorded run gives.
Verdicts (`VERDICTS`):

- ``exact``: a data-independent quantity (a parameter count, a bound from the code) equal to the document's;
- ``matches``: within the stated tolerance of the document's value (or a stated bound holds);
- ``diverges``: outside it, from a run that can decide (a full-protocol run, or a data-independent quantity);
- ``inconclusive``: no recorded run, no number to compare (a figure judged by eye), or a trained number
  from a cut-down (``reduced``) run that is outside the tolerance: short training cannot decide the gap;
- ``not comparable``: the run is a ``smoke`` run or used stand-in data; such a number is never set
  against the document's (no difference is computed);
- ``not reproducible here``: with the reason (e.g. restricted clinical data).

Chapters call ``verdicts.for_chapter("hecnn")`` for their "what agrees" section; the status page
(`hyperbook.status`) calls ``all_checks()``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .results import DEFAULT_RESULTS_DIR
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

    @property
    def date(self) -> str:
        return str(self.provenance.get("date", "?"))[:10]

    @property
    def commit(self) -> str:
        return str(self.provenance.get("git_commit", "?"))[:8]

    @property
    def device(self) -> str:
        return str(self.provenance.get("device", "?"))

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
    from .results import config_hash
    from .units import all_units
    out = {}
    for unit in all_units():
        for profile in ("reduced", "full"):
            try:
                out[(unit.chapter, unit.name, profile)] = config_hash(unit.config(profile))
            except Exception:        # a profile a unit does not define
                continue
    return out


def load_runs(results_dir=DEFAULT_RESULTS_DIR, include_smoke: bool = False,
              current: dict | None = None) -> dict[tuple[str, str], Run]:
    """(chapter, experiment) -> its best recorded run: full over reduced (over smoke), then the newest.

    Smoke runs are git-ignored scratch records (CI's and a reader's own): by default they are left out, so
    the status page says the same on every machine, from the committed records alone. A record whose config
    hash is not the one today's code gives its unit (a run of a superseded model or protocol, kept as
    history) is left out too, as the chapters leave it out: `current` maps (chapter, experiment, profile) to
    today's hash (default: `current_hashes()`; pass {} to keep every record).
    """
    current = current_hashes() if current is None else current
    best: dict[tuple[str, str], Run] = {}
    for prov_path in sorted(Path(results_dir).glob("*/*/*/provenance.json")):
        if prov_path.parts[-4].startswith("_") or prov_path.parent.name.startswith("."):
            continue
        try:
            prov = json.loads(prov_path.read_text())
            metrics = json.loads((prov_path.parent / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        chapter, experiment = prov_path.parts[-4], prov_path.parts[-3]
        run = Run(chapter, prov.get("experiment", experiment), prov.get("profile", "?"), metrics, prov)
        if run.profile == "smoke" and not include_smoke:
            continue
        today = current.get((chapter, experiment, run.profile))
        if today is not None and prov.get("config_hash") not in (None, today):
            continue
        key = (chapter, experiment)
        old = best.get(key)
        rank = (PROFILE_RANK.get(run.profile, -1), str(prov.get("date", "")))
        if old is None or rank > (PROFILE_RANK.get(old.profile, -1), str(old.provenance.get("date", ""))):
            best[key] = run
    return best


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
    (parameter counts, equivariance from the construction), so a reduced run decides it."""
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

    def __post_init__(self):
        if self.mode not in ("abs", "factor", "below", "above"):
            raise ValueError(f"Check {self.target}: mode {self.mode!r} is not one of abs, factor, below, above")
        if self.target not in BY_ID:
            raise ValueError(f"Check: unknown target id {self.target!r}")

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

    def within(self) -> bool:
        d, o = float(self.document), float(self.ours)
        tol = self.tolerance or 0.0
        if self.mode == "below":
            return o < d
        if self.mode == "above":
            return o > d
        if self.mode == "factor":
            return d != 0 and o != 0 and (d > 0) == (o > 0) and max(o / d, d / o) <= tol
        return abs(o - d) <= tol + 1e-12 * max(abs(d), 1.0)

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
        if self.data_independent or self.run.profile == "full":
            return "diverges", self.note
        return "inconclusive", (f"{self.run.profile} protocol: training cut short cannot decide this gap"
                                + (f"; {self.note}" if self.note else ""))


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
    ("E-T1", "HE-CNN-L trained on R-MNIST, tested on MNIST", 96.44, "hecnn", "t1_hecnn_l_rmnist", ["accuracy", "MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "HE-CNN-L trained on R-MNIST, tested on R-MNIST", 96.32, "hecnn", "t1_hecnn_l_rmnist", ["accuracy", "R-MNIST"], _ACC, "%", "abs", False),
    ("E-T1", "HE-CNN-L trained on R-MNIST, tested on 90-MNIST", 96.44, "hecnn", "t1_hecnn_l_rmnist", ["accuracy", "90-MNIST"], _ACC, "%", "abs", False),
    ("E-F5", "MSE of layer-3/7 filters after rotating back (bound)", 1e-6, "hecnn", "filters", ["mse_max_all_conv_layers"], None, "", "below", True),
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
    # Thesis ch. 6
    ("I-T9", "i-RevNet (b) top-1 error", 26.7, "thesis_irevnet", "train_mnist_b", ["test_error_pct"], _ACC, "%", "abs", False),
    ("I-T9", "ResNet top-1 error", 24.7, "thesis_irevnet", "train_mnist_resnet", ["test_error_pct"], _ACC, "%", "abs", False),
    ("I-E1", "reconstruction error on noise, float32 (within 10x)", 5e-6, "thesis_irevnet", "train_mnist_b", ["e1_trained", "noise_float32"], 10.0, "", "factor", True),
]
# Where the document's claim needs a ratio of two runs
_C_Q_NOTE = "relative gain of the Q = 16 model's accuracy over the Q = 9 model's"


def _c_q(runs):
    lo, hi = runs.get(("hcnn", "cifar10_hcnn_q9")), runs.get(("hcnn", "cifar10_hcnn_q16"))
    if lo is None or hi is None:
        return None
    a, b = lo.metrics.get("test_accuracy"), hi.metrics.get("test_accuracy")
    return None if not a or b is None else 100.0 * (b - a) / a


DATA_KEYS_FOR = {"H-F4": ("letters_source",) + DATA_KEYS}


def all_checks(results_dir=DEFAULT_RESULTS_DIR, runs=None) -> list[Check]:
    """Every check of the book, in target order: the numeric ones of SPEC, and one figure check for each
    target SPEC does not cover (judged by eye, or not comparable when its run used stand-in data)."""
    runs = load_runs(results_dir) if runs is None else runs
    checks: list[Check] = []
    by_target: dict[str, list[Check]] = {}
    for tid, claim, doc, chapter, experiment, path, tol, unit, mode, indep in SPEC:
        run = runs.get((chapter, experiment))
        if path is None and tid == "C-Q":
            ours, note = _c_q(runs), _C_Q_NOTE
        else:
            ours, note = (_get(run.metrics, path) if run else None), ""
        check = Check(tid, claim, doc, ours, tol, unit, mode, indep, run,
                      DATA_KEYS_FOR.get(tid, DATA_KEYS), note or ("" if run else f"no recorded run of {experiment}"))
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


def run_label(run: Run | None, keys=DATA_KEYS) -> str:
    if run is None:
        return "from code (no training)"
    data = run.data(keys)
    return f"{run.profile} ({run.experiment}, {run.date})" + (f"; {data}" if data else "")


def rows(checks) -> list[dict]:
    """Plain rows (one per check) for tables: the document's value and ours side by side."""
    out = []
    for c in checks:
        comparable = c.comparable
        out.append({
            "target": c.target, "claim": c.claim,
            "document": c.document,
            "ours": c.ours,
            "difference": c.difference,
            "tolerance": (None if c.mode in ("below", "above") else c.tolerance),
            "unit": c.unit, "verdict": c.verdict, "why": c.reason,
            "profile": c.run.profile if c.run else "from code",
            "data": (c.run.data(c.data_keys) if c.run else "") or "—",
            "run": run_label(c.run, c.data_keys), "comparable": comparable,
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
                                         "unit", "verdict", "why", "profile", "data"])
    return frame

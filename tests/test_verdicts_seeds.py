"""Seed replicates in the verdicts: grouping, mean and spread, and the verdict rule (hyperbook.verdicts).

Records are written by the results store's own writer (`run_or_load`), with the configs of the registry's
unit, so their folders and hashes are the ones `hyperbook train UNIT --seed S` makes.
"""
import statistics

import pytest

from hyperbook import verdicts
from hyperbook.results import config_hash, run_or_load
from hyperbook.status import render_status, status_rows
from hyperbook.units import get_unit
from hyperbook.verdicts import Check, Run

UNIT = "hecnn/t2_hecnn_l_regular"     # E-T2 "Z4-HE-CNN-L on R-MNIST": document 97.91%, tolerance 1 point
CLAIM = "Z4-HE-CNN-L on R-MNIST"
DOC = 97.91


def record(root, profile, seed, accuracy, parameters=51_900, **overrides):
    """One record of UNIT at `profile` with its seed field set to `seed` (plus any other overrides)."""
    unit = get_unit(UNIT)
    config = unit.config(profile, {unit.seed_field: seed, **overrides})
    metrics = {"targets": ["E-T2"], "accuracy": {"R-MNIST": accuracy}, "parameters": parameters}
    return run_or_load(unit.chapter, unit.name, profile, config, lambda: (metrics, {}), results_dir=root,
                       seed=seed)


def check_of(root, claim=CLAIM):
    return next(c for c in verdicts.all_checks(root) if c.claim == claim)


def test_seed_records_have_their_own_folders_and_are_grouped_into_one_run(tmp_path):
    paths = {record(tmp_path, "reduced", s, acc).path for s, acc in ((0, 97.0), (1, 97.4), (2, 97.8))}
    assert len(paths) == 3                         # the seed is in the hash: three folders
    runs = verdicts.load_runs(tmp_path)
    assert list(runs) == [("hecnn", "t2_hecnn_l_regular")]
    run = runs[("hecnn", "t2_hecnn_l_regular")]
    assert run.seeds == (0, 1, 2) and run.n_seeds == 3
    assert run.metrics["accuracy"]["R-MNIST"] == 97.0       # the default seed's record leads
    assert run.values(["accuracy", "R-MNIST"]) == [97.0, 97.4, 97.8]


def test_one_seed_stays_a_plain_number(tmp_path):
    record(tmp_path, "reduced", 0, 97.4)
    c = check_of(tmp_path)
    assert c.n_seeds == 1 and c.std is None and c.ours == 97.4 and c.verdict == "matches"
    row = next(r for r in verdicts.rows([c]))
    assert row["ours"] == 97.4 and row["n_seeds"] == 1
    assert verdicts.seed_summary("hecnn", "t2_hecnn_l_regular", "accuracy.R-MNIST", tmp_path) == (97.4, None, 1)


def test_mean_and_std_over_seeds_in_checks_rows_and_seed_summary(tmp_path):
    accs = (97.0, 97.4, 97.8)
    for s, acc in enumerate(accs):
        record(tmp_path, "reduced", s, acc)
    c = check_of(tmp_path)
    assert c.n_seeds == 3
    assert c.ours == pytest.approx(statistics.fmean(accs)) and c.std == pytest.approx(0.4)
    assert c.difference == pytest.approx(97.4 - DOC)
    assert c.verdict == "matches"
    row = verdicts.rows([c])[0]
    assert row["ours"] == "97.4 ± 0.4% (3 seeds)" and row["std"] == pytest.approx(0.4)
    mean, std, n = verdicts.seed_summary("hecnn", "t2_hecnn_l_regular", ["accuracy", "R-MNIST"], tmp_path)
    assert (mean, std, n) == (pytest.approx(97.4), pytest.approx(0.4), 3)
    assert verdicts.seed_summary("hecnn", "t2_hecnn_l_regular", ["no", "such"], tmp_path) == (None, None, 0)
    assert verdicts.seed_summary("hecnn", "t1_cnn_mnist", ["parameters"], tmp_path) == (None, None, 0)


def test_the_status_page_shows_the_mean_and_the_seeds(tmp_path):
    for s, acc in enumerate((97.0, 97.4, 97.8)):
        record(tmp_path, "reduced", s, acc)
    row = next(r for r in status_rows(tmp_path, chapters_built=["hecnn"]) if r["claim"] == CLAIM)
    assert row["ours"] == "97.4 ± 0.4% (3 seeds)" and row["run"].endswith("3 seeds")
    line = next(x for x in render_status(tmp_path, chapters_built=["hecnn"]).splitlines() if CLAIM in x)
    assert "| 97.4 ± 0.4% (3 seeds) |" in line and "**matches**" in line


def _run(profile, n):
    return Run("hecnn", "x", profile, {}, {}, tuple((s, {}) for s in range(n)))


@pytest.mark.parametrize("profile", ["reduced", "full"])
def test_the_verdict_rule_weighs_the_seed_spread(profile):
    def judge(mean, std, n=3, doc=DOC, **kw):
        return Check("E-T2", "acc", doc, mean, 1.0, "%", run=_run(profile, n), std=std, n_seeds=n, **kw).judge()
    assert judge(97.4, 0.4)[0] == "matches"
    # 1.91 points off: outside the 1-point tolerance, inside 1 + 2 x 0.6 = 2.2 -> seed noise decides nothing
    assert judge(96.0, 0.6) == ("inconclusive", "within seed noise (3 seeds, std 0.6%)")
    # the same gap with a tight spread (1 + 2 x 0.2 = 1.4)
    word, why = judge(96.0, 0.2)
    assert word == ("diverges" if profile == "full" else "inconclusive")
    assert profile == "full" or why.startswith("reduced protocol") and "3 seeds" in why
    # one seed has no spread to weigh: the old rule
    assert judge(96.0, None, n=1)[0] == ("diverges" if profile == "full" else "inconclusive")
    assert "seed noise" not in judge(96.0, None, n=1)[1]
    # a stated bound: below 50%; the mean is over it, but mean - 2 std is under it
    assert judge(49.0, 1.0, doc=50.0, mode="below")[0] == "matches"
    assert judge(51.0, 1.0, doc=50.0, mode="below") == ("inconclusive", "within seed noise (3 seeds, std 1%)")
    assert judge(51.0, 0.4, doc=50.0, mode="below")[0] == ("diverges" if profile == "full" else "inconclusive")


def test_full_runs_over_seeds_end_to_end(tmp_path):
    """Three full seeds 1.91 points off with std 0.6: seed noise; the default seed alone would diverge."""
    record(tmp_path / "one", "full", 0, 96.0)
    assert check_of(tmp_path / "one").verdict == "diverges"
    for s, acc in enumerate((96.0, 95.4, 96.6)):
        record(tmp_path / "three", "full", s, acc)
    c = check_of(tmp_path / "three")
    assert (c.n_seeds, c.ours) == (3, pytest.approx(96.0)) and c.std == pytest.approx(0.6)
    assert c.verdict == "inconclusive" and c.reason == "within seed noise (3 seeds, std 0.6%)"


def test_a_full_run_outranks_reduced_seeds(tmp_path):
    for s in range(3):
        record(tmp_path, "reduced", s, 97.0 + s)
    record(tmp_path, "full", 0, 97.5)
    run = verdicts.load_runs(tmp_path)[("hecnn", "t2_hecnn_l_regular")]
    assert (run.profile, run.n_seeds) == ("full", 1)


def test_a_config_differing_beyond_the_seed_is_not_a_replicate(tmp_path):
    record(tmp_path, "reduced", 0, 97.0)
    record(tmp_path, "reduced", 1, 97.4)
    odd = record(tmp_path, "reduced", 2, 10.0, steps=7)            # another protocol, with a seed of its own
    assert odd.provenance["seed"] == 2 and odd.provenance["config_hash"] != config_hash(
        get_unit(UNIT).config("reduced", {"seed": 2}))
    run = verdicts.load_runs(tmp_path)[("hecnn", "t2_hecnn_l_regular")]
    assert run.seeds == (0, 1) and 10.0 not in run.values(["accuracy", "R-MNIST"])
    # nor is a record of another protocol at the default seed
    record(tmp_path / "alone", "reduced", 0, 10.0, steps=7)
    assert verdicts.load_runs(tmp_path / "alone") == {}


def test_smoke_seed_records_stay_out(tmp_path):
    for s in range(3):
        record(tmp_path, "smoke", s, 50.0)
    assert verdicts.load_runs(tmp_path) == {}
    assert check_of(tmp_path).run is None
    # shown only on request, and never grouped: each smoke record is a run of its own
    shown = verdicts.load_runs(tmp_path, include_smoke=True)[("hecnn", "t2_hecnn_l_regular")]
    assert (shown.profile, shown.n_seeds) == ("smoke", 1)
    record(tmp_path, "reduced", 0, 97.0)
    run = verdicts.load_runs(tmp_path)[("hecnn", "t2_hecnn_l_regular")]
    assert (run.profile, run.seeds) == ("reduced", (0,))


def test_data_independent_checks_use_the_default_seed_alone(tmp_path):
    """A parameter count does not depend on the seed: no mean, the default seed's record decides."""
    record(tmp_path, "reduced", 0, 97.0, parameters=51_900)
    record(tmp_path, "reduced", 1, 97.4, parameters=60_000)
    record(tmp_path, "reduced", 2, 97.8, parameters=60_000)
    c = check_of(tmp_path, "Z4-HE-CNN-L parameters (document: 51.9k)")
    assert (c.ours, c.n_seeds, c.std, c.verdict) == (51_900, 1, None, "matches")


def test_a_table_of_hashes_may_name_seed_hashes():
    """The dict form of `current` (for tests without the registry): (c, e, p) and (c, e, p, seed) keys."""
    lookup = verdicts._hash_lookup({("a", "b", "reduced"): "h0", ("a", "b", "reduced", 1): "h1"})
    assert lookup("a", "b", "reduced") == "h0" and lookup("a", "b", "reduced", 1) == "h1"
    assert lookup("a", "b", "reduced", 2) == "h0" and lookup("a", "c", "reduced") is None


def test_the_run_cell_names_the_device_of_the_record(tmp_path):
    record(tmp_path, "reduced", 0, 97.4)
    row = next(r for r in status_rows(tmp_path, chapters_built=["hecnn"]) if r["claim"] == CLAIM)
    assert ", CPU" in row["run"]                   # written here: 'CPU (x86_64, 2 cores)'
    gpu = Run("hecnn", "x", "full", {}, {"device": "NVIDIA H200", "date": "2026-12-04T00:00"})
    old = Run("hecnn", "x", "full", {}, {"date": "2026-12-04T00:00"})
    assert gpu.device_kind == "NVIDIA H200" and old.device_kind == ""
    cell = verdicts.run_cells(Check("E-T2", "acc", DOC, 97.0, 1.0, "%", run=gpu))[0]
    assert cell == "full, x, 2026-12-04, NVIDIA H200"
    assert verdicts.run_cells(Check("E-T2", "acc", DOC, 97.0, 1.0, "%", run=old))[0] == "full, x, 2026-12-04"


def test_the_run_cell_names_every_device_of_the_seeds(tmp_path):
    """Seeds 0 and 1 on this CPU, seed 2 on a GPU: the cell names both, whichever record leads."""
    import json
    paths = [record(tmp_path, "reduced", s, acc).path for s, acc in ((0, 97.0), (1, 97.4), (2, 97.8))]
    prov = json.loads((paths[2] / "provenance.json").read_text())
    (paths[2] / "provenance.json").write_text(json.dumps({**prov, "device": "NVIDIA H200"}))
    row = next(r for r in status_rows(tmp_path, chapters_built=["hecnn"]) if r["claim"] == CLAIM)
    assert row["run"].endswith(", CPU + NVIDIA H200, 3 seeds"), row["run"]

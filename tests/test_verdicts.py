import json

import pytest

from hyperbook import verdicts
from hyperbook.verdicts import Check, Run


def run(profile="reduced", **metrics):
    return Run("hecnn", "x", profile, metrics, {"date": "2026-11-23"})


def test_verdict_words():
    assert Check("E-T1", "params", 3370, 3370, 0, data_independent=True, run=run()).verdict == "exact"
    assert Check("E-T1", "params", 11527, 11488, 0, data_independent=True, run=run()).verdict == "diverges"
    assert Check("E-T2", "acc", 97.72, 97.0, 1.0, run=run()).verdict == "matches"
    # a reduced run far from the document decides nothing; a full run does
    assert Check("E-T2", "acc", 97.72, 47.5, 1.0, run=run()).verdict == "inconclusive"
    assert Check("E-T2", "acc", 97.72, 47.5, 1.0, run=run("full")).verdict == "diverges"
    assert Check("E-F5", "bound", 1e-6, 1e-21, mode="below", data_independent=True, run=run()).verdict == "matches"
    assert Check("I-E1", "order", 5e-6, 2.7e-6, 10.0, mode="factor", data_independent=True,
                 run=run()).verdict == "matches"
    assert Check("R-T5", "mri", None, None).verdict == "not reproducible here"
    assert Check("E-T2", "acc", 97.72, None, 1.0).verdict == "inconclusive"


@pytest.mark.parametrize("r", [run("smoke"), run(data_source="Fashion-MNIST stand-in for CIFAR-10"),
                               run(stand_in=True), run(dataset="fashion_mnist", stand_in_for="ILSVRC2012-100")])
def test_smoke_runs_and_stand_in_data_are_never_compared(r):
    c = Check("E-T3", "acc", 85.99, 85.99, 1.0, run=r)
    assert c.verdict == "not comparable" and c.difference is None


def test_bad_check_is_refused():
    with pytest.raises(ValueError, match="mode"):
        Check("E-T1", "x", 1, 1, mode="near")
    with pytest.raises(ValueError, match="unknown target"):
        Check("Z-9", "x", 1, 1)


def test_checks_from_recorded_runs_and_for_chapter(tmp_path):
    folder = tmp_path / "hecnn" / "t1_cnn_mnist" / "reduced-abc"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"targets": ["E-T1"], "parameters": 3370}))
    (folder / "provenance.json").write_text(json.dumps({"profile": "reduced", "date": "2026-11-23"}))
    smoke = tmp_path / "hecnn" / "t1_cnn_mnist" / "smoke-def"        # a smoke record never outranks it
    smoke.mkdir(parents=True)
    (smoke / "metrics.json").write_text(json.dumps({"targets": ["E-T1"], "parameters": 1}))
    (smoke / "provenance.json").write_text(json.dumps({"profile": "smoke", "date": "2026-12-01"}))
    frame = verdicts.for_chapter("hecnn", results_dir=tmp_path)
    row = frame[frame.claim == "CNN parameters"].iloc[0]
    assert row.verdict == "exact" and row.ours == 3370 and row.difference == 0
    assert set(frame.target) == {t.id for t in verdicts.TARGETS if t.chapter == "hecnn"}
    with pytest.raises(Exception, match="chapter"):
        verdicts.for_chapter("nope", results_dir=tmp_path)


def test_the_recorded_results_give_every_verdict_a_reason():
    checks = verdicts.all_checks()
    assert {c.target for c in checks} == {t.id for t in verdicts.TARGETS}
    for c in checks:
        if c.verdict in ("inconclusive", "not comparable", "not reproducible here"):
            assert c.reason, c
    assert sum(verdicts.summary(checks).values()) == len(checks)


def test_git_ignored_smoke_records_do_not_change_the_status(tmp_path):
    """Smoke records are scratch (git-ignored): by default they are not runs the status page may show."""
    smoke = tmp_path / "hecnn" / "t1_cnn_mnist" / "smoke-def"
    smoke.mkdir(parents=True)
    (smoke / "metrics.json").write_text(json.dumps({"targets": ["E-T1"], "parameters": 3370}))
    (smoke / "provenance.json").write_text(json.dumps({"profile": "smoke", "date": "2026-12-01"}))
    assert verdicts.load_runs(tmp_path) == {}
    assert verdicts.load_runs(tmp_path, include_smoke=True)[("hecnn", "t1_cnn_mnist")].profile == "smoke"


def test_records_of_a_superseded_config_are_left_out(tmp_path):
    """A record whose config hash is not today's (an older model, kept as history) is not shown as current."""
    for name, digest, acc in (("reduced-old", "old", 10.0), ("reduced-new", "new", 50.0)):
        folder = tmp_path / "hecnn" / "t1_cnn_mnist" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"targets": ["E-T1"], "accuracy": acc}))
        date = "2026-12-01" if digest == "new" else "2026-12-02"      # the stale one is even newer
        (folder / "provenance.json").write_text(json.dumps({"profile": "reduced", "date": date,
                                                            "config_hash": digest}))
    today = {("hecnn", "t1_cnn_mnist", "reduced"): "new"}
    assert verdicts.load_runs(tmp_path, current=today)[("hecnn", "t1_cnn_mnist")].metrics["accuracy"] == 50.0
    assert verdicts.load_runs(tmp_path, current={})[("hecnn", "t1_cnn_mnist")].metrics["accuracy"] == 10.0


def test_the_canny_calibration_is_a_verdict_of_the_status_page(tmp_path):
    """S-F11's scorer check reads the Canny record; within 0.02 of the published ODS / OIS it matches."""
    folder = tmp_path / "thesis_steerable" / "canny_calibration" / "reduced-abc"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"targets": ["S-F11"], "source": "BSDS500",
                                                     "ods": 0.605, "ois": 0.66}))
    (folder / "provenance.json").write_text(json.dumps({"profile": "reduced", "date": "2026-12-02"}))
    frame = verdicts.for_chapter("thesis_steerable", results_dir=tmp_path)
    rows = frame[frame.claim.str.startswith("scorer calibration: Canny")].set_index("document")
    assert rows.loc[0.60, "verdict"] == "matches" and rows.loc[0.63, "verdict"] != "matches"

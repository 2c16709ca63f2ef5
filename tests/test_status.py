import json

from hyperbook.chapters import BOOK_DIR
from hyperbook.status import render_status, status_rows
from hyperbook.targets import BY_ID, TARGETS


def record(root, chapter, experiment, profile, targets, **metrics):
    folder = root / chapter / experiment / f"{profile}-abc"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"targets": targets, **metrics}))
    (folder / "provenance.json").write_text(json.dumps({"profile": profile, "experiment": experiment,
                                                        "date": "2026-11-23T00:00:00"}))


def test_status_rows_carry_the_verdicts_of_the_recorded_runs(tmp_path):
    record(tmp_path, "hecnn", "t1_cnn_mnist", "reduced", ["E-T1"], parameters=3370)
    record(tmp_path, "hecnn", "t3_residual_z4_hecnn_cifar10", "reduced", ["E-T3"], accuracy=85.9,
           data_source="Fashion-MNIST stand-in for CIFAR-10")
    rows = status_rows(tmp_path, chapters_built=["hecnn", "thesis_rfnn"])
    by = {(r["id"], r["claim"]): r for r in rows}
    assert by[("E-T1", "CNN parameters")]["verdict"] == "exact"
    e_t3 = [r for r in rows if r["id"] == "E-T3"][0]
    # a stand-in run is never compared with the document, even when the numbers happen to be close
    assert e_t3["verdict"] == "not comparable" and e_t3["difference"] is None
    assert "Fashion-MNIST" in e_t3["data"]
    assert [r["verdict"] for r in rows if r["id"] == "R-T5"] == ["not reproducible here"]
    assert {r["verdict"] for r in rows if r["id"] == "H-T1"} == {"not yet built"}
    # a training-free diagram is not "no recorded run yet": it says it is drawn from code
    assert [r["run"] for r in rows if r["id"] == "E-F3"] == ["from code (no training)"]
    # a number that waits for a run says so, never "from code" with "the document's" data
    e_t4 = [r for r in rows if r["id"] == "E-T4"][0]
    assert (e_t4["run"], e_t4["data"]) == ("no run recorded", "—")


def test_status_page_links_resolve_to_the_chapter_labels_and_totals_come_first():
    text = render_status()
    assert "{ref}`H-F1 <h-f1>`" in text
    assert "html#" not in text          # the old dead form `chapters/hypernets.html#h-f1`
    head = text.split("## ")[1] if "## " in text else text
    assert "| verdict | checks | targets |" in text.split("## HyperNets")[0]
    assert "regenerated" not in text


def test_every_target_is_listed_once():
    ids = [t.id for t in TARGETS]
    assert len(ids) == len(set(ids)) == 62
    assert BY_ID["H-T1"].document.startswith("simple 0.049395")
    text = render_status()
    for t in TARGETS:
        assert t.id in text


def test_committed_status_page_is_up_to_date():
    """book/status.md must be what the recorded results say now (run `make status` after recording)."""
    assert (BOOK_DIR / "status.md").read_text() == render_status()

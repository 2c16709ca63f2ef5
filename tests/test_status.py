import json

from hyperbook.chapters import BOOK_DIR
from hyperbook.status import render_status, status_rows
from hyperbook.targets import BY_ID, TARGETS


def record(root, chapter, experiment, profile, targets, verdicts=None):
    folder = root / chapter / experiment / f"{profile}-abc"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"targets": targets, "verdicts": verdicts or {}}))
    (folder / "provenance.json").write_text(json.dumps({"profile": profile, "experiment": experiment,
                                                        "date": "2026-11-23T00:00:00"}))


def test_status_words_follow_the_recorded_runs(tmp_path):
    record(tmp_path, "hypernets", "affine_deep", "reduced", ["H-T1"])
    record(tmp_path, "hypernets", "rotate_deep_all", "full", ["H-F7"], {"H-F7": "diverges"})
    record(tmp_path, "hypernets", "affine_simple", "smoke", ["H-F8"])       # smoke runs never count
    rows = {r["id"]: r for r in status_rows(tmp_path, chapters_built=["hypernets", "thesis_rfnn"])}
    assert rows["H-T1"]["status"] == "regenerated" and "reduced" in rows["H-T1"]["detail"]
    assert rows["H-F7"]["status"] == "diverges"
    assert rows["H-F8"]["status"] == "regenerated" and "no recorded run" in rows["H-F8"]["detail"]
    assert rows["R-T5"]["status"] == "not reproducible here"
    assert rows["E-T1"]["status"] == "not yet built"
    assert rows["H-F3"]["link"] == "chapters/hypernets.html#h-f3"
    more = {r["id"]: r for r in status_rows(tmp_path, chapters_built=["hecnn", "functional_images"])}
    assert more["E-T3"]["status"] == "regenerated" and "stands in for CIFAR" in more["E-T3"]["detail"]
    assert more["E-T1"]["status"] == "regenerated"
    assert "stand in for CelebA" in more["F-F1"]["detail"]


def test_a_target_marked_missing_is_not_yet_built():
    from dataclasses import replace
    from hyperbook.status import target_status
    t = replace(BY_ID["E-T3"], missing="the models are not implemented")
    assert target_status(t, {"hecnn"}, []) == ("not yet built", "the models are not implemented")


def test_every_target_is_listed_once():
    ids = [t.id for t in TARGETS]
    assert len(ids) == len(set(ids)) == 62
    assert BY_ID["H-T1"].document.startswith("simple 0.049395")


def test_committed_status_page_is_up_to_date():
    """book/status.md must be what the recorded results say now (run `make status` after recording)."""
    assert (BOOK_DIR / "status.md").read_text() == render_status()

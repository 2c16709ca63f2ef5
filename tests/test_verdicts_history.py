"""A record of an experiment the book no longer has (a removed unit) is history, not today's result."""
import json

from hyperbook import verdicts


def _record(root, chapter, experiment, digest):
    folder = root / chapter / experiment / f"reduced-{digest}"
    folder.mkdir(parents=True)
    (folder / "provenance.json").write_text(json.dumps({"profile": "reduced", "config_hash": digest,
                                                        "date": "2026-12-02T00:00:00+00:00"}))
    (folder / "metrics.json").write_text(json.dumps({"test_error_pct": 50.0}))


def test_records_of_removed_units_are_left_out(tmp_path):
    _record(tmp_path, "thesis_irevnet", "train_mnist_b", "0123456789ab")      # i-RevNet once trained on MNIST
    today = verdicts.today_hash("hecnn", "t2_hecnn_l_regular", "reduced")
    _record(tmp_path, "hecnn", "t2_hecnn_l_regular", today)
    runs = verdicts.load_runs(tmp_path)
    assert ("hecnn", "t2_hecnn_l_regular") in runs
    assert ("thesis_irevnet", "train_mnist_b") not in runs
    # a hand-given hash table (tests, tools) still keeps what it is not told about
    assert ("thesis_irevnet", "train_mnist_b") in verdicts.load_runs(tmp_path, current={})


def test_irevnet_checks_read_the_cifar_units():
    names = {row[4] for row in verdicts.SPEC if row[3] == "thesis_irevnet"}
    assert names and not any("mnist" in n for n in names), names

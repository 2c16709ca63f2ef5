import numpy as np
import pandas as pd
import pytest

from hyperbook import tables


def test_show_keeps_long_cells_drops_the_index_and_formats_numbers():
    long = "Fashion-MNIST stand-in for CIFAR-10, reduced run of 2026-11-23, commit f977c63a"
    frame = pd.DataFrame({"model": [long, "CNN"], "parameters": [3370.0, 12522.0], "accuracy": [96.44, np.nan],
                          "note": [None, "x"]})
    html = tables.show(frame, units={"accuracy": "%"}).to_html()
    assert long in html and "..." not in html
    assert "3,370" in html and "3370.00" not in html and "12,522" in html
    assert "accuracy (%)" in html
    assert "nan" not in html.lower().replace("nan-", "") and "None" not in html and tables.DASH in html
    assert "row_heading" not in html
    assert ">0<" not in html.split("<tbody>")[1].split("</tr>")[0]  # no row-number index cell


def test_format_value():
    assert tables.format_value(3370) == "3,370"
    assert tables.format_value(3370.0) == "3,370"
    assert tables.format_value(None) == tables.DASH
    assert tables.format_value(float("nan")) == tables.DASH
    assert tables.format_value(85.99, "%") == "85.99%"
    assert tables.format_value(2.8e-21) == "2.800e-21"
    assert tables.format_difference(-0.5, "dB") == "-0.5 dB"
    assert tables.format_difference(1.25) == "+1.25"


def test_display_options_never_cut_a_cell():
    assert "x" * 120 not in repr(pd.DataFrame({"a": ["x" * 120]}))     # pandas' default cuts at 50
    try:
        tables.set_display_options()
        assert "x" * 120 in repr(pd.DataFrame({"a": ["x" * 120]}))
        assert "3370.00" not in repr(pd.DataFrame({"n": [3370.0, 1.5]}))
    finally:
        for opt in ("display.max_colwidth", "display.max_columns", "display.max_rows", "display.width",
                    "display.float_format"):
            pd.reset_option(opt)


def test_caption_and_compare():
    class R:
        provenance = {"profile": "reduced", "device": "CPU", "date": "2026-11-23T01:02:03", "git_commit": "abcdef123456"}
        metrics = {"data_source": "Fashion-MNIST stand-in for CIFAR-10"}
    line = tables.caption(R())
    for part in ("reduced run", "Fashion-MNIST stand-in", "CPU", "2026-11-23", "abcdef12"):
        assert part in line
    frame = tables.compare([{"what": "CNN", "document": 3370, "ours": 3370}, {"what": "acc", "document": 85.99,
                            "ours": 30.0, "unit": "%", "not_comparable": True}])
    assert list(frame.difference) == ["+0", tables.NOT_COMPARABLE]     # never a difference against the document


class Rec:
    """A stand-in for results.Record: what the table helpers read."""

    def __init__(self, profile, date="2026-11-23T01:02:03", commit="abcdef123456", **metrics):
        self.provenance = {"profile": profile, "device": "CPU", "date": date, "git_commit": commit}
        self.metrics = metrics

    @property
    def profile(self):
        return self.provenance["profile"]


def test_a_table_is_deterministic_escaped_and_captioned_under_itself():
    frame = pd.DataFrame({"model": ["HE-CNN"], "error": ["< 1e-9 (invariant)"], "parameters": [11488]})
    a, b = tables.show(frame, caption="drawn from the code"), tables.show(frame.copy(), caption="drawn from the code")
    assert a.to_html() == b.to_html() and repr(a) == repr(b)          # nbval may compare a checked cell's table
    html = a._repr_html_()
    assert "&lt; 1e-9" in html and "< 1e-9" not in html
    assert "caption-side: bottom" in html and "drawn from the code</caption>" in html
    assert repr(a).splitlines()[-1] == "drawn from the code" and "11,488" in repr(a)
    assert "11,488" in tables.show(frame, caption="other").to_html()
    assert tables.show(frame, caption="other").to_html() != html        # the element ids follow the content


def test_digits_per_column_and_unknown_columns():
    frame = pd.DataFrame({"a": [0.123456], "b": [0.123456]})
    text = repr(tables.show(frame, digits={"a": 2}))
    assert "0.12 " in text + " " and "0.1235" in text
    with pytest.raises(KeyError):
        tables.show(frame, units={"c": "%"})


def test_caption_of_several_runs_summarises_each_field():
    runs = [Rec("reduced"), Rec("reduced", date="2026-11-30T00:00:00", commit="1234567890ab"),
            Rec("smoke", data_source="Fashion-MNIST stand-in for CIFAR-10")]
    line = tables.caption(runs)
    assert line.startswith("reduced run (2), smoke run")
    assert "2026-11-23 to 2026-11-30" in line and "abcdef12, 12345678" in line and "commits:" in line
    assert "Fashion-MNIST stand-in for CIFAR-10" in line and "the document's data (2)" in line
    assert tables.caption(runs[0], "H-T1").startswith("H-T1: reduced run")
    assert tables.caption([]) == "drawn from the code, no recorded run"
    assert tables.caption({"x": runs[0]}) == tables.caption(runs[0])


def test_comparable_runs_and_row_labels():
    assert not tables.comparable(Rec("smoke"))
    assert not tables.comparable(Rec("reduced", data_source="Fashion-MNIST stand-in for CIFAR-10"))
    assert not tables.comparable(Rec("full", dataset="fashion_mnist", stand_in_for="ILSVRC2012-100"))
    assert tables.comparable(Rec("reduced", data_source="CIFAR-10 (JPEG mirror)"))
    assert tables.comparable(Rec("full"))
    assert tables.run_label(Rec("reduced", data_source="CIFAR-10 (JPEG mirror)")) == "reduced · CIFAR-10"
    assert tables.run_label(None) == "quoted, not run here"


def test_compare_keeps_lead_and_extra_columns_and_never_differs_a_blocked_row():
    frame = tables.compare([
        {"trained on": "MNIST", "model": "CNN", "document": 96.29, "ours": 43.1, "unit": "%", "not_comparable": True,
         "run": "smoke"},
        {"trained on": "MNIST", "model": "CNN", "document": 3370, "ours": 3370, "run": "smoke"},
        {"trained on": "R-MNIST", "model": "P4", "document": "below 50%", "ours": 11.7, "unit": "%"}])
    assert list(frame.columns) == ["trained on", "model", "document", "ours", "difference", "run"]
    assert list(frame.difference) == [tables.NOT_COMPARABLE, "+0", tables.DASH]
    assert list(frame.document) == ["96.29%", "3,370", "below 50%"]


def test_runs_table_names_profile_data_and_steps():
    t = tables.runs_table({"a": Rec("reduced", steps=900, throughput=12.5),
                           "b": Rec("smoke", steps=2, data_source="stand-in photos")},
                          {"steps x2": lambda r: 2 * r.metrics["steps"]})
    text = repr(t)
    assert "reduced" in text and "stand-in photos" in text and "1,800" in text and "the document's" in text
    assert t.caption.startswith("reduced run, smoke run")


def test_a_short_run_label_keeps_the_word_stand_in():
    rec = Rec("reduced", data_source="scikit-image lfw_subset faces (25x25 grey), a stand-in for CelebA")
    assert tables.run_label(rec) == "reduced · scikit-image lfw_subset faces (stand-in)"


def test_large_floats_are_rounded_to_integers_not_given_spurious_decimals():
    assert tables.format_value(2476.4, digits=3) == "2,476"
    assert tables.format_value(12345.678) == "12,346"
    assert tables.format_value(96.44) == "96.44"


def test_a_unit_is_added_to_numbers_only():
    assert tables.format_value("below 50%", "%") == "below 50%"
    assert tables.format_value(None, "%") == tables.DASH
    assert tables.format_value(0.5, "dB") == "0.5 dB"


def test_a_caption_names_random_tensors_where_a_run_measures_no_data_set():
    assert "data: random tensors ·" in tables.caption(Rec("reduced"), data="random tensors")

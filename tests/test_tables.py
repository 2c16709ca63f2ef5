import numpy as np
import pandas as pd

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
    assert list(frame.difference) == ["+0", tables.DASH]

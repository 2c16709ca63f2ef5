import nbformat
import pytest

from hyperbook import nbtools
from hyperbook.cli import check_build_log
from hyperbook.errors import BookError


def notebook():
    nb = nbformat.v4.new_notebook()
    png = "iVBORw0KGgo="
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("profile = 'book'", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_markdown_cell('<a id="h-f1"></a><a id="h-f2"></a>\n\n## H-F1, H-F2: diagrams\n\ntext'),
                nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"),
                nbformat.v4.new_code_cell("fig", outputs=[nbformat.v4.new_output(
                    "display_data", data={"image/png": png, "text/plain": "<Figure>"})])]
    return nb


def test_staging_hides_code_removes_parameters_and_labels_the_targets():
    nb = nbtools.stage_for_site(nbtools.with_book_setup(notebook()))
    params, setup, injected, md, checked, figure = nb.cells
    assert "remove-cell" in params.metadata["tags"] and "remove-cell" in injected.metadata["tags"]
    assert "remove-cell" in setup.metadata["tags"] and "set_display_options" in setup.source
    assert md.source.startswith("(h-f1)=\n(h-f2)=\n## H-F1") and "<a id" not in md.source
    assert checked.source == "print(1)" and "hide-input" in checked.metadata["tags"]
    assert figure.metadata["mystnb"]["figure"]["caption"].startswith("H-F1, H-F2: diagrams")
    assert figure.metadata["mystnb"]["image"]["alt"]


def test_anchor_without_heading_still_becomes_a_label():
    assert nbtools.anchors_to_labels('<a id="i-f17"></a>Some text') == "(i-f17)=\n\nSome text"
    assert nbtools.anchors_to_labels("no anchor") == "no anchor"


def test_the_build_fails_on_an_unresolved_cross_reference():
    check_build_log("build succeeded, 3 warnings.")
    with pytest.raises(BookError, match="unresolved"):
        check_build_log("status.md:7: WARNING: undefined label: 'h-f1'")


def _figure_outputs(name, caption="H-F3: rotated digits.", provenance="reduced run · data: MNIST"):
    meta = {nbtools.FIGURE_KEY: {"figure": name, "caption": caption, "provenance": provenance, "alt": "digits"}}
    return [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
                                   metadata=meta),
            nbformat.v4.new_output("display_data", data={"text/markdown": f"**{caption}**"},
                                   metadata={nbtools.FIGURE_KEY: {"caption_of": name}})]


def test_a_shown_figure_becomes_one_numbered_figure_with_its_caption_label_and_alt_text():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## H-F3: a heading"),
                nbformat.v4.new_code_cell("plots.show_figure(...)", outputs=_figure_outputs("fig-h-f3"))]
    cell = nbtools.stage_for_site(nb).cells[1]
    figure = cell.metadata["mystnb"]["figure"]
    assert figure["name"] == "fig-h-f3"
    caption, legend = figure["caption"].split("\n\n")
    assert caption == "H-F3: rotated digits." and legend == "reduced run · data: MNIST"    # not the heading
    assert cell.metadata["mystnb"]["image"]["alt"] == "digits"
    assert len(cell.outputs) == 1 and "image/png" in cell.outputs[0]["data"]   # the notebook's caption is dropped


def test_two_figures_in_one_cell_are_an_error():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("two", outputs=_figure_outputs("fig-a") + _figure_outputs("fig-b"))]
    with pytest.raises(BookError, match="one figure per cell"):
        nbtools.stage_for_site(nb)

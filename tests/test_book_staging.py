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

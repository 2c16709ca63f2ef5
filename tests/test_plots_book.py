import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from hyperbook import plots


def test_image_grid_puts_the_title_above_the_column_labels():
    fig = plots.image_grid(np.zeros((8, 8, 8)), 2, 4, titles=list("abcdefgh"), col_labels=list("ABCD"),
                           suptitle="a title over four column labels")
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent()
    for ax in fig.axes[:4]:
        label = ax.title.get_window_extent()
        assert title.y0 >= label.y1 - 0.5, "the suptitle overlaps a column label"
        assert ax.get_title() in "ABCD"          # per-image titles do not overwrite the column labels
    assert fig.axes[0].get_xlabel() == "a"


def test_a_long_strip_is_wrapped_into_rows():
    fig = plots.image_grid(np.zeros((25, 8, 8)))
    assert plots.wrap_shape(25) == (3, 10)
    assert fig.get_size_inches()[0] < 12
    with pytest.raises(ValueError):
        plots.wrap_shape(0)


def _displayed(monkeypatch):
    """What plots.show_figure displays, as notebook outputs (the display function captured)."""
    import nbformat
    shown = []

    def display(obj, metadata=None):
        if hasattr(obj, "savefig"):
            data = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
        else:
            data = {"text/markdown": obj.data}
        shown.append(nbformat.v4.new_output("display_data", data=data, metadata=metadata or {}))
    monkeypatch.setattr("IPython.display.display", display)
    return shown


def test_figures_are_saved_at_2x_and_shown_with_caption_alt_and_label(tmp_path, monkeypatch):
    from skimage.io import imread
    fig = plots.image_grid(np.zeros((4, 8, 8)), 1, 4)
    path = plots.save_figure(fig, tmp_path / "f.png")
    w_inches = fig.get_size_inches()[0]
    assert imread(path).shape[1] >= 1.5 * w_inches * 100 * 0.8      # ~200 dpi, not 80-100
    shown = _displayed(monkeypatch)
    plots.show_figure(fig, caption="X-F1: four blanks.", alt="four black squares", name="fig-blank",
                      provenance="reduced run · data: none")
    image, caption = shown
    meta = image.metadata[plots.FIGURE_KEY]
    assert meta == {"figure": "fig-blank", "caption": "X-F1: four blanks.", "provenance": "reduced run · data: none",
                    "alt": "four black squares"}
    assert "X-F1: four blanks." in caption.data["text/markdown"] and "reduced run" in caption.data["text/markdown"]
    assert caption.metadata[plots.FIGURE_KEY] == {"caption_of": "fig-blank"}
    with pytest.raises(ValueError):
        plots.show_figure(fig, caption="", alt="x", name="fig-x")
    with pytest.raises(ValueError):
        plots.show_figure(fig, caption="c", alt="x", name="Bad Name")
    with pytest.raises(ValueError):
        plots.show_figure(fig, caption="c", alt="x", name="no-prefix")


def test_a_figure_without_records_says_it_is_drawn_from_the_code(monkeypatch):
    shown = _displayed(monkeypatch)
    plots.show_figure(plots.image_grid(np.zeros((2, 4, 4)), 1, 2), caption="c", alt="a", name="fig-code")
    assert shown[0].metadata[plots.FIGURE_KEY]["provenance"].startswith("drawn from the code")

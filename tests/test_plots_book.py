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


def test_figures_are_saved_at_2x_and_shown_with_caption_alt_and_label(tmp_path):
    from skimage.io import imread
    fig = plots.image_grid(np.zeros((4, 8, 8)), 1, 4)
    path = plots.save_figure(fig, tmp_path / "f.png")
    w_inches = fig.get_size_inches()[0]
    assert imread(path).shape[1] >= 1.5 * w_inches * 100 * 0.8      # ~200 dpi, not 80-100
    text = plots.figure_markdown(fig, caption="Four blanks.", alt="four black squares", name="fig-blank")
    assert text.startswith("```{figure} data:image/png;base64,") and ":alt: four black squares" in text
    assert ":name: fig-blank" in text and "Four blanks." in text
    with pytest.raises(ValueError):
        plots.figure_markdown(fig, caption="", alt="x", name="fig-x")
    with pytest.raises(ValueError):
        plots.figure_markdown(fig, caption="c", alt="x", name="Bad Name")

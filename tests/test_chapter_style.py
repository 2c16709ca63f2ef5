"""Static checks of the chapter notebooks (no execution): the reader's book conventions.

Figures go through `plots.show_figure` (numbered, captioned, labelled), tables through `hyperbook.tables`
(built in src, so cells stay short), every `{numref}` in the text names a figure of its chapter, and the
papermill parameters cell comes first.
"""
import re

import nbformat
import pytest

from hyperbook.chapters import BOOK_DIR, CHAPTERS, available_chapters

NAME = re.compile(r"""name=(?:f?["'])(fig-[a-z0-9-]+)["']""")
NUMREF = re.compile(r"\{numref\}`([^`<]+?)`")
MAX_LINES = 16        # a chapter's code cell: a call or two into src, not a page of drawing code


def notebooks():
    return [(name, nbformat.read(BOOK_DIR / CHAPTERS[name], as_version=4))
            for name in available_chapters()]


@pytest.mark.parametrize("name,nb", notebooks(), ids=lambda v: v if isinstance(v, str) else "")
def test_chapter_follows_the_books_table_and_figure_conventions(name, nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{name}: the parameters cell must come first"
    problems = []
    for k, c in enumerate(code):
        src = c.source
        if "plt.show()" in src or "pd.DataFrame(" in src or "print(pd." in src:
            problems.append(f"cell {k}: draws a figure or builds a table inline (move it into src/hyperbook)")
        if len(src.splitlines()) > MAX_LINES:
            problems.append(f"cell {k}: {len(src.splitlines())} lines (at most {MAX_LINES})")
        if src.count("plots.show_figure(") > 1:
            problems.append(f"cell {k}: two figures in one cell (one numbered figure per cell)")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_every_cross_reference_names_a_figure_of_its_chapter_and_names_are_unique():
    seen = {}
    for name, nb in notebooks():
        names = [n for c in nb.cells if c.cell_type == "code" for n in NAME.findall(c.source)]
        for n in names:
            assert n not in seen, f"figure name {n} is used by {seen.get(n)} and {name}"
            seen[n] = name
        refs = {r.strip() for c in nb.cells if c.cell_type == "markdown" for r in NUMREF.findall(c.source)}
        assert refs <= set(names), f"{name}: {{numref}} to figures it does not draw: {sorted(refs - set(names))}"
        shown = sum(c.source.count("plots.show_figure(") for c in nb.cells if c.cell_type == "code")
        assert shown == len(names), f"{name}: every show_figure call needs a literal name=\"fig-...\""

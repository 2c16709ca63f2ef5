"""Notebook housekeeping: keep stored outputs only where nbval compares them.

`python -m hyperbook.nbtools keep-checked book/chapters/x.ipynb --from executed.ipynb`
copies the outputs of cells whose first line is `# NBVAL_CHECK_OUTPUT` from an
executed copy into the source notebook and clears every other output, so the
committed notebooks stay small and nbval (--nbval-lax) compares only what is
deterministic.
"""
from __future__ import annotations

import argparse
import re

import nbformat

from .errors import BookError

MARK = "# NBVAL_CHECK_OUTPUT"
FIGURE_KEY = "hyperbook"          # output metadata of plots.show_figure, read by the staging step
SETUP_TAG = "book-setup"
SETUP_SOURCE = ("# set by the book's staging step: no table cell cut, figures at 2x\n"
                "from hyperbook.tables import set_display_options as _sdo\n"
                "from hyperbook.plots import setup_figures as _sf\n_sdo(); _sf()")
ANCHOR = re.compile(r'<a\s+id="([A-Za-z0-9_.-]+)"\s*>\s*</a>')
HEADING = re.compile(r"^#{1,6} +(.+?)\s*$", re.M)


def add_tag(cell, tag: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def with_book_setup(nb):
    """A copy of nb with a hidden setup cell (display options, 2x figures) after the parameters cell."""
    nb = nbformat.from_dict(nb)
    cell = nbformat.v4.new_code_cell(SETUP_SOURCE, metadata={"tags": [SETUP_TAG, "remove-cell"]})
    at = next((k + 1 for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), 0)
    nb.cells.insert(at, cell)
    return nb


def anchors_to_labels(source: str) -> str:
    """`<a id="h-f1"></a>` anchors -> MyST labels `(h-f1)=` on their own lines right before the next
    heading (a label Sphinx resolves: `{ref}` links to it work, a dead one fails the build)."""
    ids = ANCHOR.findall(source)
    if not ids:
        return source
    text = ANCHOR.sub("", source)
    labels = "".join(f"({i})=\n" for i in ids)
    m = HEADING.search(text)
    if m is None:
        return labels + "\n" + text.lstrip("\n")
    before = text[:m.start()]
    return (before.rstrip("\n") + "\n\n" if before.strip() else "") + labels + text[m.start():]


def _has_image(cell) -> bool:
    return any(o.get("output_type") in ("display_data", "execute_result") and
               any(k.startswith("image/") for k in o.get("data", {})) for o in cell.get("outputs", []))


def _figure_meta(output) -> dict:
    return (output.get("metadata") or {}).get(FIGURE_KEY) or {}


def caption_figure(cell) -> bool:
    """A cell that `plots.show_figure` drew: its image output becomes one numbered figure (mystnb figure
    options: the caption, the provenance line as the legend under it, the label `name`; the alt text), and
    the caption output that the notebook shows under the image is dropped. Returns whether it was one.
    A cell with two figures, or with a figure and another displayed output, would give every output the same
    caption and label: that is an error."""
    figures = [o for o in cell.get("outputs", []) if _figure_meta(o).get("figure")]
    if not figures:
        return False
    shown = [o for o in cell.outputs if o.get("output_type") in ("display_data", "execute_result")
             and not _figure_meta(o).get("caption_of")]
    if len(figures) > 1 or len(shown) > 1:
        names = [_figure_meta(o)["figure"] for o in figures]
        raise BookError(f"a cell shows {len(shown)} outputs with figure(s) {names}: one figure per cell, "
                        "and nothing else displayed in it (plots.show_figure)")
    meta = _figure_meta(figures[0])
    opts = cell.metadata.setdefault("mystnb", {})
    opts["figure"] = {"caption": f"{meta['caption']}\n\n{meta['provenance']}", "name": meta["figure"]}
    opts["image"] = {"alt": meta["alt"]}
    cell.outputs = [o for o in cell.outputs if not _figure_meta(o).get("caption_of")]
    return True


def stage_for_site(nb, chapter: str = ""):
    """What the reader sees of an executed chapter (the notebook in book/chapters is untouched):
    the parameters cell, papermill's injected cell and the setup cell removed; every code cell's input
    hidden behind a toggle, with `# NBVAL_CHECK_OUTPUT` marker lines stripped; target anchors turned into
    MyST labels; each figure drawn by `plots.show_figure` made a numbered figure with its caption, label and
    alt text (`caption_figure`); any other figure output captioned (numbered) by the heading of its section,
    with that as alt text too, unless the cell already sets mystnb figure/image options."""
    heading = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = anchors_to_labels(cell.source)
            found = HEADING.findall(cell.source)
            if found:
                heading = re.sub(r"[*_`]", "", found[-1]).strip()
            continue
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if {"parameters", "injected-parameters", SETUP_TAG} & set(tags):
            add_tag(cell, "remove-cell")
            continue
        cell.source = "\n".join(line for line in cell.source.splitlines() if line.strip() != MARK).lstrip("\n")
        if "remove-input" not in tags:
            add_tag(cell, "hide-input")
        if caption_figure(cell):
            continue
        if _has_image(cell) and heading:
            opts = cell.metadata.setdefault("mystnb", {})
            n_images = sum(1 for o in cell.outputs if any(k.startswith("image/") for k in o.get("data", {})))
            if "figure" not in opts:
                what = f"{heading} (drawn by this chapter's code from its recorded runs)"
                opts["figure"] = {"caption": what if n_images == 1 else what + "."}
            opts.setdefault("image", {"alt": f"Figure: {heading}"})
    return nb


def is_checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)


def keep_checked(source_path, executed_path=None) -> int:
    nb = nbformat.read(source_path, as_version=4)
    executed = nbformat.read(executed_path, as_version=4) if executed_path else None
    by_source = {}
    if executed is not None:
        for cell in executed.cells:
            if is_checked(cell):
                by_source[cell.source] = cell
    kept, count = 0, 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        if is_checked(cell) and cell.source in by_source:
            cell.outputs = [o for o in by_source[cell.source].outputs if o.get("name") != "stderr"]
            cell.execution_count = count
            kept += 1
        elif is_checked(cell) and executed is None:
            cell.execution_count = count
            kept += 1
        else:
            cell.outputs, cell.execution_count = [], None
    missing = [c.source.splitlines()[0] for c in nb.cells if is_checked(c)
               and executed is not None and c.source not in by_source]
    if missing:
        raise SystemExit(f"checked cells not found in the executed notebook: {missing}")
    nbformat.write(nb, source_path)
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hyperbook.nbtools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keep-checked", help="keep outputs only in # NBVAL_CHECK_OUTPUT cells")
    k.add_argument("notebook")
    k.add_argument("--from", dest="executed", help="executed copy to take those outputs from")
    args = parser.parse_args(argv)
    kept = keep_checked(args.notebook, args.executed)
    print(f"{args.notebook}: kept outputs of {kept} checked cells, cleared the rest")


if __name__ == "__main__":
    main()

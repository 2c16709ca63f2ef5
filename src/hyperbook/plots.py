"""Figures drawn from recorded arrays and from model objects (never by hand)."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .nbtools import FIGURE_KEY

FIGURE_DPI = 200          # 2x the screen's 100 dpi: thin strips stay readable
MAX_COLUMNS = 10          # a strip longer than this is wrapped into rows


def setup_figures() -> None:
    """Notebook figures at 2x resolution (retina PNG: twice the pixels, shown at the same size).
    The book's staging step calls it at the top of every chapter; chapters need not."""
    plt.rcParams["savefig.dpi"] = FIGURE_DPI
    plt.rcParams["figure.dpi"] = 100
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("retina")
    except Exception:  # noqa: BLE001 -- outside IPython there is nothing to set
        pass


def wrap_shape(n: int, max_cols: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) of a strip of n images wrapped at max_cols."""
    if n < 1 or max_cols < 1:
        raise ValueError(f"wrap_shape: need n >= 1 and max_cols >= 1, got n={n}, max_cols={max_cols}")
    cols = min(n, max_cols)
    return -(-n // cols), cols


def image_grid(images, nrows: int | None = None, ncols: int | None = None, *, titles=None, row_labels=None,
               col_labels=None, cmap="gray", vmin=-1.0, vmax=1.0, scale: float = 0.9, suptitle: str | None = None,
               max_cols: int = MAX_COLUMNS):
    """Show images [n, H, W] (or [n, 1, H, W], or [n, H, W, 3]) in a grid; returns the figure.

    Without nrows/ncols a strip is wrapped into rows of at most `max_cols`. Column labels sit above the
    top row, per-image titles under each image when column labels are given too, and the suptitle above
    everything (a constrained layout keeps them apart)."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = np.moveaxis(images, 1, -1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if nrows is None or ncols is None:
        nrows, ncols = wrap_shape(len(images), max_cols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols + (0.8 if row_labels is not None else 0),
                                                    scale * nrows + (0.35 if suptitle else 0) + 0.2),
                             squeeze=False, layout="constrained")
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if k < len(images):
            ax.imshow(images[k], cmap=cmap if images[k].ndim == 2 else None, vmin=vmin, vmax=vmax)
        if titles is not None and k < len(titles):
            if col_labels is not None:
                ax.set_xlabel(titles[k], fontsize=7)
            else:
                ax.set_title(titles[k], fontsize=7)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if col_labels is not None:
        for c, label in enumerate(col_labels):
            axes[0, c].set_title(label, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def save_figure(fig, path, dpi: int = FIGURE_DPI):
    """Save at 2x dpi (PNG) or as SVG (by the file's suffix); returns the path."""
    from pathlib import Path
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"save_figure: {path.name}: use .png, .svg or .pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


NAME = re.compile(r"fig-[a-z0-9][a-z0-9-]*")


def show_figure(fig, *, caption: str, alt: str, name: str, records=None, provenance: str | None = None):
    """Show a figure with a number, a caption and alt text; the cell should show nothing else.

        plots.show_figure(fig, caption="H-F3: the simple HyperNet's outputs ...", alt="Grid of digits ...",
                          name="fig-h-f3", records=rec)

    caption: what is shown, starting with the target id; the provenance line (`tables.caption(records)`,
    or `provenance` for a figure drawn from the code) goes under it. In a notebook: the image, then the
    caption. On the site the staging step (`nbtools.stage_for_site`) makes the two one numbered figure
    labelled `name`, which the text cites as {numref}`name`."""
    from IPython.display import Markdown, display
    from . import tables
    if not caption or not caption.strip() or not alt or not alt.strip():
        raise ValueError("show_figure: a figure needs a caption and an alt text")
    if not NAME.fullmatch(name or ""):
        raise ValueError(f"show_figure: name {name!r} must be 'fig-' then lower-case letters, digits and dashes")
    if provenance:
        line = provenance
    elif records is not None:
        line = tables.caption(records)
    else:
        line = tables.here("drawn from the code when this page was built")
    meta = {"figure": name, "caption": " ".join(caption.split()), "provenance": line, "alt": " ".join(alt.split())}
    display(fig, metadata={FIGURE_KEY: meta})
    plt.close(fig)
    display(Markdown(f"**{meta['caption']}**\n\n*{line}*"), metadata={FIGURE_KEY: {"caption_of": name}})


def layer_table(model: torch.nn.Module, *example_inputs, leaf_only: bool = True, **example_kwargs) -> pd.DataFrame:
    """Every module's output shape and own parameter count, from one forward pass.

    This is how the book draws architecture diagrams: from the model object, so
    they stay true when the code changes.
    """
    rows, hooks = [], []

    def shape_of(out):
        if isinstance(out, torch.Tensor):
            return tuple(out.shape)
        if isinstance(out, (tuple, list)):
            return [shape_of(o) for o in out if isinstance(o, (torch.Tensor, tuple, list))]
        return type(out).__name__

    for name, module in model.named_modules():
        if name == "" or (leaf_only and any(True for _ in module.children())):
            continue

        def hook(mod, inputs, output, name=name):
            rows.append({"layer": name, "type": type(mod).__name__, "output shape": str(shape_of(output)),
                         "parameters": sum(p.numel() for p in mod.parameters(recurse=False))})
        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(*example_inputs, **example_kwargs)
            model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return pd.DataFrame(rows)


def draw_layer_diagram(table: pd.DataFrame, ax=None, title: str | None = None, highlight: dict | None = None):
    """Draw a layer table as a vertical block diagram (one box per layer, arrows between).

    highlight maps a layer name to a colour (e.g. the gated layer of a HyperNet).
    """
    highlight = highlight or {}
    n = len(table)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 0.48 * n + 0.6))
    for k, row in enumerate(table.itertuples(index=False)):
        y = n - 1 - k
        colour = highlight.get(row.layer, "#dbe8f6")
        ax.add_patch(plt.Rectangle((0.05, y + 0.12), 0.9, 0.76, facecolor=colour, edgecolor="#335"))
        params = f", {row.parameters:,} params" if row.parameters else ""
        ax.text(0.5, y + 0.5, f"{row.layer}: {row.type} -> {row._2}{params}", ha="center",
                va="center", fontsize=7)
        if k:
            ax.annotate("", xy=(0.5, y + 0.88), xytext=(0.5, y + 1.12),
                        arrowprops=dict(arrowstyle="->", color="#335"))
    ax.set_xlim(0, 1), ax.set_ylim(0, n)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax

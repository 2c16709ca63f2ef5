"""Figures drawn from recorded arrays and from model objects (never by hand)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def image_grid(images, nrows: int, ncols: int, *, titles=None, row_labels=None, col_labels=None,
               cmap="gray", vmin=-1.0, vmax=1.0, scale: float = 0.9, suptitle: str | None = None):
    """Show images [nrows*ncols, H, W] (or [.., 1, H, W], or [.., H, W, 3]) in a grid; returns the figure."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = np.moveaxis(images, 1, -1)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if k < len(images):
            ax.imshow(images[k], cmap=cmap if images[k].ndim == 2 else None, vmin=vmin, vmax=vmax)
        if titles is not None and k < len(titles):
            ax.set_title(titles[k], fontsize=7)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if col_labels is not None:
        for c, label in enumerate(col_labels):
            axes[0, c].set_title(label, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(pad=0.2)
    return fig


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

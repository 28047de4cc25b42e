"""Figures of evaluated cases: axial slices with the reference and the prediction drawn as contours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sidepair.plotting import axial, save_figure, subplots


def render_overlay(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]],
    out: str | Path,
    title: str,
    columns: int | None = None,
) -> Path:
    """Axial slices through the reference kidney with reference (green) and prediction (red) contours.

    Args:
        panels: ``(caption, image_hu, reference, prediction, spacing_xyz)`` with RAS arrays.
        out: PNG path (written atomically).
        title: Title; it must say what data this is.
        columns: Panels per row (default: all in one row).

    Returns:
        The PNG path.
    """
    ncols = columns or len(panels)
    nrows = -(-len(panels) // ncols)
    fig, axes = subplots(nrows, ncols, figsize=(3.4 * ncols, 3.6 * nrows + 0.3), squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    for ax, (caption, image, ref, pred, spacing) in zip(axes.ravel(), panels, strict=False):
        where = np.argwhere(ref > 0)
        k = int(np.median(where[:, 2])) if len(where) else image.shape[2] // 2
        ax.imshow(np.clip(axial(image, k), -250, 350), cmap="gray", aspect=spacing[1] / spacing[0])
        for mask, colour in ((axial(ref, k) > 0, "#30ff30"), (axial(pred, k) > 0, "#ff3030")):
            if mask.any():
                ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.9)
        ax.set_title(f"{caption}\naxial z={k}; green reference, red prediction", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, out, title, fontsize=9)

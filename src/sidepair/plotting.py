"""What every figure shares: figures without a display, atomic PNG writes, how slices are shown.

Slices are shown in the radiological convention (the patient's right on the image's left, anterior at
the top of axial views, superior at the top of coronal views), from RAS arrays.

Figures are :class:`matplotlib.figure.Figure` objects, not pyplot's: they need no backend chosen at import
(which would change the process's backend for whoever imports sidepair), keep no global state, and are
freed when dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from sidepair.atomic import atomic_path


def subplots(
    nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), **kwargs: Any
) -> tuple[Figure, Any]:
    """A new figure and its axes, as :func:`matplotlib.pyplot.subplots` gives them, without pyplot.

    Args:
        nrows: Rows of axes.
        ncols: Columns of axes.
        figsize: Width and height in inches.
        **kwargs: Passed to :meth:`matplotlib.figure.Figure.subplots` (``squeeze``, ``sharex``, ...).

    Returns:
        The figure and its axes (one, or an array of them).
    """
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def colour(cmap: str, i: int) -> tuple[float, float, float, float]:
    """Colour ``i`` of a named colour map (``tab10`` for categories)."""
    return matplotlib.colormaps[cmap](i)


def save_figure(fig: Figure, out: str | Path, title: str, fontsize: int = 9) -> Path:
    """Title, lay out and write a figure as PNG atomically."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # leave the top strip to the title
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(out)


def axial(array: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a RAS array, oriented for display (radiological)."""
    return array[:, :, k].T[::-1, ::-1]


def coronal(array: np.ndarray, j: int) -> np.ndarray:
    """Coronal slice ``j`` of a RAS array, oriented for display (radiological, superior up)."""
    return array[:, j, :].T[::-1, ::-1]

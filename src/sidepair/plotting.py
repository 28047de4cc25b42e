"""What every figure shares: matplotlib without a display, atomic PNG writes, how slices are shown.

Slices are shown in the radiological convention (the patient's right on the image's left, anterior at
the top of axial views, superior at the top of coronal views), from RAS arrays.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sidepair.atomic import atomic_path  # noqa: E402


def save_figure(fig: plt.Figure, out: str | Path, title: str, fontsize: int = 9) -> Path:
    """Title, lay out and write a figure as PNG atomically, then close it."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # leave the top strip to the title
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(out)


def axial(array: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a RAS array, oriented for display (radiological)."""
    return array[:, :, k].T[::-1, ::-1]


def coronal(array: np.ndarray, j: int) -> np.ndarray:
    """Coronal slice ``j`` of a RAS array, oriented for display (radiological, superior up)."""
    return array[:, j, :].T[::-1, ::-1]

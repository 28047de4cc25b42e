"""Figures for looking at data: montages of axial and coronal slices with labels overlaid.

Slices are shown in the radiological convention (the patient's right on the image's left, anterior at
the top of axial views, superior at the top of coronal views), from RAS arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _show(ax, image: np.ndarray, label: np.ndarray, aspect: float, title: str) -> None:
    ax.imshow(np.clip(image, -250, 350), cmap="gray", aspect=aspect, interpolation="nearest")
    for value, colour in ((1, "#00b4ff"), (2, "#ff3030")):
        if (label == value).any():
            ax.contour(label == value, levels=[0.5], colors=colour, linewidths=0.8)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.02, 0.5, "R", color="yellow", transform=ax.transAxes, fontsize=8, va="center")
    ax.text(0.98, 0.5, "L", color="yellow", transform=ax.transAxes, fontsize=8, va="center", ha="right")


def render_montage(
    cases: Sequence[tuple[str, np.ndarray, np.ndarray, tuple[float, float, float]]],
    out: str | Path,
    title: str,
) -> Path:
    """Write a PNG with an axial and a coronal slice through the kidneys of each case.

    Args:
        cases: ``(name, image_hu, label, spacing_xyz)`` with RAS arrays.
        out: PNG path (written atomically).
        title: Figure title; it must say what data this is (e.g. "phantom").

    Returns:
        The PNG path.
    """
    n = len(cases)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.6), squeeze=False)
    for col, (name, image, label, spacing) in enumerate(cases):
        kidney = np.argwhere(label > 0)
        centre = kidney.mean(axis=0).astype(int) if len(kidney) else np.array(image.shape) // 2
        _show(
            axes[0, col],
            axial(image, centre[2]),
            axial(label, centre[2]),
            spacing[1] / spacing[0],
            f"{name} axial z={centre[2]}",
        )
        _show(
            axes[1, col],
            coronal(image, centre[1]),
            coronal(label, centre[1]),
            spacing[2] / spacing[0],
            f"{name} coronal y={centre[1]}",
        )
    return save_figure(fig, out, title, fontsize=10)


def montage_from_folder(
    folder: str | Path, out: str | Path, max_cases: int = 6, title: str | None = None
) -> Path:
    """Montage of the first ``max_cases`` KiTS-layout cases of ``folder``."""
    from sidepair.data.volume import load_nifti

    folder = Path(folder)
    items = []
    for case_dir in sorted(folder.glob("case_*"))[:max_cases]:
        image = load_nifti(case_dir / "imaging.nii.gz")
        label = load_nifti(case_dir / "segmentation.nii.gz", role="label")
        items.append((case_dir.name, image.array, label.array, image.spacing))
    return render_montage(items, out, title or f"{folder.name} (synthetic phantom, not patient data)")


def plot_history(history: list[dict], keys: Sequence[str], out: str | Path, title: str) -> Path:
    """Learning curves: losses on the left axis panel, metrics on the right one, per epoch.

    Args:
        history: One dict per epoch (``metrics.jsonl`` rows).
        keys: Row keys to draw; names ending in ``loss`` go to the loss panel.
        out: PNG path (written atomically).
        title: Title; it must say what data this is.

    Returns:
        The PNG path.
    """
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in keys:
        values = [row.get(key, np.nan) for row in history]
        ax = ax_loss if key.endswith("loss") else ax_metric
        ax.plot(epochs, values, marker="o", ms=3, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("metric")
    ax_metric.set_ylim(0, 1.02)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, out, title, fontsize=9)


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
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.6 * nrows + 0.3), squeeze=False)
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

"""Montages of phantom or dataset cases: an axial and a coronal slice through the kidneys, labels drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sidepair.data.volume import load_nifti
from sidepair.plotting import axial, coronal, save_figure, subplots


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
    fig, axes = subplots(2, n, figsize=(2.6 * n, 5.6), squeeze=False)
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
    folder = Path(folder)
    items = []
    for case_dir in sorted(folder.glob("case_*"))[:max_cases]:
        image = load_nifti(case_dir / "imaging.nii.gz")
        label = load_nifti(case_dir / "segmentation.nii.gz", role="label")
        items.append((case_dir.name, image.array, label.array, image.spacing))
    return render_montage(items, out, title or f"{folder.name} (synthetic phantom, not patient data)")

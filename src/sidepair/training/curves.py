"""Learning curves of a run: losses and metrics per epoch, as a PNG beside the metrics log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sidepair.plotting import save_figure, subplots


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
    fig, (ax_loss, ax_metric) = subplots(1, 2, figsize=(10, 3.8))
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

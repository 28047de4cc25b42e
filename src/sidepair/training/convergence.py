"""When a segmentation run counts as converged: a plateau of its (smoothed) validation Dice."""

from __future__ import annotations

from typing import Any

from sidepair.config import SegmentSettings
from sidepair.evaluation.statistics import plateaued
from sidepair.training.segment_config import TrainConfig


def converged(history: list[dict[str, Any]], config: SegmentSettings) -> bool:
    """The convergence rule of ``config`` on a run's validation Dice curve."""
    curve = [float(h["val_dice"]) for h in history]
    return plateaued(
        curve, config.plateau_window, config.plateau_min_delta, config.smoothing, config.min_epochs
    )


def convergence_rule(config: SegmentSettings) -> str:
    """The convergence rule of ``config``, in words (run.json and the report)."""
    rule = (
        f"converged: the last {config.plateau_window} epochs did not raise the best validation Dice by "
        f"more than {config.plateau_min_delta:g}"
    )
    if config.smoothing > 0:
        rule = (
            f"converged: the last {config.plateau_window} epochs did not raise the best of the validation "
            f"Dice's moving average (smoothing {config.smoothing:g}) by more than "
            f"{config.plateau_min_delta:g}"
        )
    if config.min_epochs:
        rule += f", after at least {config.min_epochs} epochs"
    return rule


def convergence(history: list[dict[str, Any]], config: TrainConfig) -> dict[str, Any]:
    """Whether a run converged, by the plateau rule, and whether it stopped early (for run.json)."""
    return {
        "epochs_run": len(history),
        "stopped_on_plateau": config.stop_on_plateau and len(history) < config.epochs,
        "converged": converged(history, config),
        "convergence_rule": convergence_rule(config),
    }

"""Segmentation training: ``run_train`` trains the U-Net of a resolved config into a run folder.

The task (``segment_task``) says what is trained; the lifecycle (``lifecycle``) writes the run folder:
``config.yaml``, ``run.json`` (with the convergence verdict and the chosen checkpoint's whole-volume Dice
once training ends), checkpoints, ``metrics.jsonl``, ``tensorboard/`` and ``learning_curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Unpack

from sidepair.training.lifecycle import RunOptions, run_task
from sidepair.training.segment_config import TrainConfig
from sidepair.training.segment_task import SegmentationTask


def run_train(config: TrainConfig, out: str | Path, **options: Unpack[RunOptions]) -> list[dict[str, Any]]:
    """Train a U-Net on ``config`` into the run folder ``out`` and return its per-epoch history.

    ``options`` (:class:`~sidepair.training.lifecycle.RunOptions`): ``resume`` continues an interrupted
    run and leaves a finished one as it is; ``progress``, ``label`` and ``bar`` shape the progress lines;
    ``performance`` holds the speed options (recorded in run.json, not part of the run's config).
    """
    return run_task(config, out, SegmentationTask, **options)

"""Pretraining: side-pair (the method) or a generic pretext task, on the same encoder, data and budget.

``run_pretrain`` builds the task a config names (``task: side-pair | restoration | contrastive-views``)
and runs it through the same lifecycle as segmentation (``lifecycle``). The run folder holds
``config.yaml``, ``run.json``, ``checkpoint_last.pt`` / ``checkpoint_best.pt`` (whose ``encoder_config``
and ``encoder.*`` weights are what the segmentation U-Net loads), ``metrics.jsonl``, ``tensorboard/`` and
``learning_curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Unpack

from sidepair.training.lifecycle import RunOptions, run_task
from sidepair.training.pretext import SidePairTask, build_task
from sidepair.training.pretrain_config import PretrainConfig, label_subset, resolve_config

__all__ = ["PretrainConfig", "SidePairTask", "label_subset", "resolve_config", "run_pretrain"]


def run_pretrain(
    config: PretrainConfig, out: str | Path, **options: Unpack[RunOptions]
) -> list[dict[str, Any]]:
    """Pretrain and write the run folder.

    Args:
        config: Resolved config.
        out: Run folder.
        **options: ``resume``, ``progress``, ``stop_after``, ``label``, ``bar``, ``performance``
            (:class:`~sidepair.training.lifecycle.RunOptions`).

    Returns:
        The per-epoch history.
    """
    return run_task(config, out, build_task, **options)

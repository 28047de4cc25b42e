"""The pretext tasks, one file each: side-pair (the method), restoration and contrastive views (controls)."""

from __future__ import annotations

from sidepair.data.store import Store
from sidepair.training.pretext.base import SectionTask
from sidepair.training.pretext.contrastive_views import ContrastiveViewsTask
from sidepair.training.pretext.restoration import RestorationTask
from sidepair.training.pretext.side_pair import SidePairTask
from sidepair.training.pretrain_config import PretrainConfig

TASKS: dict[str, type[SectionTask]] = {
    "side-pair": SidePairTask,
    "restoration": RestorationTask,
    "contrastive-views": ContrastiveViewsTask,
}


def build_task(config: PretrainConfig, store: Store) -> SectionTask:
    """The task ``config.task`` names, built on ``store``."""
    return TASKS[config.task](config, store)


__all__ = ["TASKS", "ContrastiveViewsTask", "RestorationTask", "SectionTask", "SidePairTask", "build_task"]

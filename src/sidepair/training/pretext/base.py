"""What every pretext task shares: the store's split, the section samplers, the encoder, the budget.

Every task reads the same sections (masked, bbox or half) from the same cases, builds the same
:class:`~sidepair.models.encoder.Encoder`, and runs the same optimiser steps over the same number of
sections per epoch: ``pairs_per_epoch`` pairs of side-pair are ``2 * pairs_per_epoch`` sections in
``pairs_per_epoch / batch_size`` steps, and so are ``pairs_per_epoch`` two-view items of
contrastive-views or ``2 * pairs_per_epoch`` restorations. They differ only in what is learnt.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from sidepair.data.sections import SectionSampler
from sidepair.data.splits import hold_out_groups
from sidepair.data.store import Store
from sidepair.errors import StoreError
from sidepair.models.backends import build_encoder
from sidepair.models.checkpoint import PretrainCheckpoint
from sidepair.training.pretrain_config import PretrainConfig, label_subset
from sidepair.training.task import Task


class SectionTask(Task):
    """Base of the pretext tasks: splits, samplers, labels read, the encoder and the loaders.

    Subclasses set ``monitor`` (the validation metric that picks the best checkpoint, higher is better),
    ``name`` (the task in words),
    ``measure`` (what it is, in words),
    ``curves`` (the metrics of the learning-curve figure), build ``self.model`` around ``self.encoder``,
    and give ``train_batches``, ``train_step`` and ``validate``.

    Args:
        config: The resolved run config.
        store: The open store.

    Raises:
        StoreError: No validation cases, naming the store.
    """

    kind = "pretrain"
    checkpoint_type = PretrainCheckpoint
    monitor = "val_acc"
    measure: ClassVar[str] = "held-out pair accuracy"
    curves: ClassVar[list[str]] = ["train_loss", "val_loss"]
    name: ClassVar[str] = "pretext"  # the task's name in words (figure titles)

    def __init__(self, config: PretrainConfig, store: Store) -> None:
        self.config = config
        self.store = store
        store.protect_test_labels()
        train, val = store.split("train"), store.split("val")
        if config.sections != "half":
            train = [c for c in train if store.cases[c].labelled]
            val = [c for c in val if store.cases[c].labelled]
            if config.label_cases is not None:
                train = label_subset(store, config.label_cases)
        self.val_source = "the store's validation split"
        if not val and config.sections == "half":
            # A store of unlabelled scans only: annotation-free sections validate on held-out unlabelled
            # patients of its training split, which then train on the others.
            train, val = hold_out_groups({c: store.cases[c].group for c in train}, config.seed)
            self.val_source = "held-out unlabelled training patients (the store has no validation split)"
        if not val:
            raise StoreError(
                f"{store.path}: no validation cases in the store's split (it needs at least 3 "
                "labelled patients, or 2 patients for half sections); validation sections come only "
                "from held-out cases"
            )
        size = tuple(config.section_size)
        self.train_sampler = SectionSampler(
            store, train, config.sections, config.dims, size, jitter=config.jitter
        )
        self.val_sampler = SectionSampler(store, val, config.sections, config.dims, size)
        # Masks read: those that cut the sections (none for half sections, which read no label).
        with_labels = config.sections != "half"
        self.labels_read = {
            "train": sorted(train) if with_labels else [],
            "selection": sorted(val) if with_labels else [],
        }
        config.check_store(store)
        torch.manual_seed(config.seed)
        self.encoder = build_encoder(config.encoder_config())

    def loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        """An unshuffled loader (the draws are already in a seeded order)."""
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.config.workers,
            pin_memory=torch.cuda.is_available(),
        )

    def checkpoint_fields(self) -> dict[str, Any]:
        """Config, encoder description and store settings, so the U-Net can rebuild and check the encoder."""
        return {
            "config": json.loads(self.config.model_dump_json()),
            "encoder_config": self.config.encoder_config(),
            "store_fingerprint": self.store.fingerprint,
            "preprocess": self.store.settings.model_dump(mode="json"),
            "labels_read": self.labels_read,
        }

    def run_info(self) -> dict[str, Any]:
        """The task, its sections and validation, the preprocessing and whose labels it read (run.json)."""
        config = self.config
        return {
            "task": config.task,
            "mirror": config.mirror,
            "sections": {"train": len(self.train_sampler.units), "val": len(self.val_sampler.units)},
            "validation": self.val_source,
            "val_cases": sorted({case for case, _ in self.val_sampler.units}),
            "preprocess": self.store.settings.model_dump(mode="json"),
            "labels_read": self.labels_read,
            "encoder_tensors": len(self.model.encoder.state_dict()),
        }

    def title(self) -> str:
        """``<task> pretraining, <sections> <dims>D``, its loss and whether sections were mirrored."""
        config = self.config
        title = f"{self.name} pretraining, {config.sections} {config.dims}D"
        title += f" {config.loss}" if config.task == "side-pair" else ""
        return title + (", mirrored" if config.mirror else "")

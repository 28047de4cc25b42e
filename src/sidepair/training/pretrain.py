"""Side-pair self-supervised pretraining: the siamese network learns same side / different side.

``run_pretrain`` resolves a config from a preset and overrides, builds the sections and pairs from a
store, and trains with the shared loop. The run folder holds ``config.yaml``, ``run.json``,
``checkpoint_last.pt`` / ``checkpoint_best.pt`` (whose ``encoder_config`` and the ``encoder.*``
weights are what the segmentation U-Net loads), ``metrics.jsonl``, ``tensorboard/`` and
``learning_curves.png``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ConfigDict, Field, model_validator
from torch.utils.data import DataLoader

from sidepair.config import ArchitectureSettings, PresetName, PretrainSettings, get_preset, validated
from sidepair.data.augment import Augmenter
from sidepair.data.pairs import Pair, PairDataset, sample_pairs
from sidepair.data.sections import SectionSampler
from sidepair.data.store import Store
from sidepair.errors import ConfigError, StoreError
from sidepair.evaluation.proxy import pair_metrics
from sidepair.models import Siamese
from sidepair.models.checkpoint import PretrainCheckpoint
from sidepair.models.encoder import Encoder
from sidepair.training.curves import plot_history
from sidepair.training.distributed import check_batch, dist_info, gather_lists, is_main_process, shard
from sidepair.training.loop import LoopSettings, fit
from sidepair.training.losses import ContrastiveLoss, PairBCELoss, pair_distance
from sidepair.training.performance import Performance
from sidepair.training.runinfo import write_run_config, write_run_info

VAL_EPOCH = 1_000_000  # validation pairs use a fixed "epoch" of their own


class PretrainConfig(PretrainSettings, ArchitectureSettings):
    """Resolved settings of one pretraining run (written to ``config.yaml``).

    The hyperparameters are :class:`~sidepair.config.PretrainSettings` and
    :class:`~sidepair.config.ArchitectureSettings`; here are only the run's own fields.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str
    store: str
    section_size: tuple[int, ...] = Field(
        description="Section size, one value per axis (repeat the option); the preset's for the mode."
    )
    label_cases: tuple[str, ...] | None = Field(
        None,
        description="masked/bbox sections only from these training cases' labels (the label-matched arm); "
        "default: every labelled training case.",
    )
    seed: int = Field(0, description="Seed: model init, pairs and crops.")
    workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        if len(self.section_size) != self.dims:
            raise ValueError(
                f"section_size {self.section_size} must have {self.dims} sizes for dims={self.dims}"
            )
        return self


def resolve_config(preset: PresetName | str | None, store: str | Path, **overrides: Any) -> PretrainConfig:
    """The preset's defaults, then the given overrides (None means "keep the preset's").

    Args:
        preset: Preset name; None takes the one the store was prepared with.
        store: Store folder.
        **overrides: Fields of :class:`PretrainConfig`.

    Raises:
        ConfigError: Naming the invalid field.
    """
    name = preset or Store(store).default_preset()
    p = get_preset(name)
    given = {k: v for k, v in overrides.items() if v is not None}
    sections = given.get("sections", p.pretrain.sections)
    base = {
        **p.architecture.model_dump(),
        **p.pretrain.model_dump(),
        "preset": name,
        "store": str(store),
        "section_size": p.section_size_for(sections),
    }
    if given.get("dims") is not None and given["dims"] != p.architecture.dims and "section_size" not in given:
        raise ConfigError(
            f"--dims {given['dims']} differs from preset {name} (dims {p.architecture.dims}); "
            "give --section-size too, or pick a preset with those dims"
        )
    return validated(PretrainConfig, {**base, **given}, "pretrain")


class SidePairTask:
    """The side-pair task for the training loop."""

    kind = "pretrain"
    checkpoint_type = PretrainCheckpoint

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
        if not val:
            raise StoreError(
                f"{store.path}: no validation cases in the store's split (it needs at least 3 "
                "labelled patients); validation pairs come only from held-out cases"
            )
        size = tuple(config.section_size)
        self.train_sampler = SectionSampler(
            store, train, config.sections, config.dims, size, jitter=config.jitter
        )
        self.val_sampler = SectionSampler(store, val, config.sections, config.dims, size)
        self.val_pairs = sample_pairs(self.val_sampler, config.val_pairs, config.seed, VAL_EPOCH)
        # Masks read: those that cut the sections (none for half sections, which read no label).
        with_labels = config.sections != "half"
        self.labels_read = {
            "train": sorted(train) if with_labels else [],
            "selection": sorted(val) if with_labels else [],
        }
        torch.manual_seed(config.seed)
        encoder = Encoder(**config.encoder_config())
        self.model = Siamese(encoder, config.embedding_dim, head=config.loss)
        self.loss = ContrastiveLoss(config.margin) if config.loss == "contrastive" else PairBCELoss()

    def _loader(self, dataset: PairDataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.workers,
            pin_memory=torch.cuda.is_available(),
        )

    def train_pairs(self, epoch: int) -> list[Pair]:
        """The training pairs of ``epoch``, drawn from ``(seed, epoch)``.

        With ``side_labels: random`` the pairs are the same and only their targets change: a balanced,
        seeded random same/different for each pair, drawn apart from the sides (the random-target control).
        """
        pairs = sample_pairs(self.train_sampler, self.config.pairs_per_epoch, self.config.seed, epoch)
        if self.config.side_labels == "random":
            rng = np.random.default_rng([self.config.seed, epoch, 4049])
            targets = rng.permutation([1] * (len(pairs) // 2) + [0] * (len(pairs) - len(pairs) // 2))
            pairs = [dataclasses.replace(p, same=int(t)) for p, t in zip(pairs, targets, strict=True)]
        return pairs

    def train_batches(self, epoch: int) -> DataLoader:
        """The pairs of ``epoch``, drawn from ``(seed, epoch)``."""
        pairs = self.train_pairs(epoch)
        augment = Augmenter(self.config.dims, with_label=False) if self.config.augment else None
        return self._loader(PairDataset(self.train_sampler, pairs, augment, (self.config.seed, epoch)))

    def _outputs(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x1, x2, same = (t.to(device, non_blocking=True) for t in batch)
        e1, e2 = self.model(x1, x2)
        return e1, e2, same

    def train_step(self, batch: Any, device: torch.device) -> torch.Tensor:
        """Loss of one batch of pairs."""
        e1, e2, same = self._outputs(batch, device)
        if self.config.loss == "contrastive":
            return self.loss(e1, e2, same)
        return self.loss(self.model.same_logit(e1, e2), same)

    def validate(self, device: torch.device) -> dict[str, float]:
        """Pair accuracy and ROC-AUC on the held-out pairs."""
        scores, labels, losses = [], [], []
        # Under DDP each rank scores its share of the pairs; the scores of all are gathered below.
        for batch in self._loader(PairDataset(self.val_sampler, shard(self.val_pairs))):
            e1, e2, same = self._outputs(batch, device)
            if self.config.loss == "contrastive":
                losses.append(float(self.loss(e1, e2, same)) * len(same))
                scores.append(pair_distance(e1.float(), e2.float()).cpu().numpy())
            else:
                logit = self.model.same_logit(e1, e2)
                losses.append(float(self.loss(logit, same)) * len(same))
                scores.append(torch.sigmoid(logit.float()).cpu().numpy())
            labels.append(same.cpu().numpy())
        labels, scores, losses = gather_lists(labels), gather_lists(scores), gather_lists(losses)
        y, s = np.concatenate(labels), np.concatenate(scores)
        if self.config.loss == "contrastive":
            metrics = pair_metrics(y, distance=s, threshold=self.config.threshold)
        else:
            metrics = pair_metrics(y, prob_same=s)
        return {"loss": sum(losses) / len(y), **metrics}

    def checkpoint_fields(self) -> dict[str, Any]:
        """Config, encoder description and store settings, so the U-Net can rebuild and check the encoder."""
        return {
            "config": json.loads(self.config.model_dump_json()),
            "encoder_config": self.config.encoder_config(),
            "store_fingerprint": self.store.fingerprint,
            "preprocess": self.store.settings.model_dump(mode="json"),
            "labels_read": self.labels_read,
        }


def run_pretrain(
    config: PretrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    label: str = "",
    bar: bool = True,
    performance: Performance | None = None,
) -> list[dict[str, Any]]:
    """Pretrain and write the run folder.

    Args:
        config: Resolved config.
        out: Run folder.
        resume: Continue an interrupted run.
        progress: Progress bars and per-epoch lines.
        stop_after: Stop after this many batches (tests of interruption).
        label: Prefix of the progress lines.
        bar: Per-batch progress bar (with ``progress``).
        performance: Speed options (recorded in run.json; not part of the run's config).

    Returns:
        The per-epoch history.
    """
    out = Path(out)
    performance = performance or Performance()
    check_batch(config.batch_size, dist_info())  # under torchrun: refused before anything is written
    store = Store(config.store)
    task = SidePairTask(config, store)
    write_run_config(out, config, resume)
    write_run_info(
        out,
        "pretrain",
        store,
        config.seed,
        sections={"train": len(task.train_sampler.units), "val": len(task.val_sampler.units)},
        preprocess=store.settings.model_dump(mode="json"),
        labels_read=task.labels_read,
        encoder_tensors=len(task.model.encoder.state_dict()),
        performance=performance.model_dump(),
    )
    settings = LoopSettings(
        epochs=config.epochs,
        lr=config.lr,
        monitor="val_acc",
        seed=config.seed,
        device=config.device,
        performance=performance,
    )
    history = fit(
        task, out, settings, resume=resume, progress=progress, stop_after=stop_after, label=label, bar=bar
    )
    if history and stop_after is None and is_main_process():
        keys = ["train_loss", "val_loss", "val_acc", "val_auc"] + (
            ["val_acc_best"] if config.loss == "contrastive" else []
        )
        title = f"side-pair pretraining, {config.sections} {config.dims}D {config.loss}"
        plot_history(history, keys, out / "learning_curves.png", f"{title}, data: {store.describe()}")
    return history


def label_subset(store: Store, case_ids: tuple[str, ...] | list[str]) -> list[str]:
    """The cases a label-matched pretraining may read masks of, checked before anything is read.

    Raises:
        StoreError: A test case (its label is read only by evaluation), naming it.
        ConfigError: An unknown, unlabelled or non-training case, naming it.
    """
    store.check_label_access(list(case_ids))
    train = set(store.split("train"))
    for case_id in case_ids:
        if case_id not in store.cases:
            raise ConfigError(f"label_cases: {case_id!r} is not a case of {store.path}")
        if case_id not in train or not store.cases[case_id].labelled:
            raise ConfigError(f"label_cases: {case_id} is not a labelled training case of {store.path}")
    if not case_ids:
        raise ConfigError("label_cases: empty; give at least one labelled training case")
    return sorted(set(case_ids))

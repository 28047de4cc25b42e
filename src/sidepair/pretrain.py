"""Side-pair self-supervised pretraining: the siamese network learns same side / different side.

``run_pretrain`` resolves a config from a preset and overrides, builds the sections and pairs from a
store, and trains with the shared loop. The run folder holds ``config.yaml``, ``run.json``,
``checkpoint_last.pt`` / ``checkpoint_best.pt`` (whose ``encoder_config`` and the ``encoder.*``
weights are what the segmentation U-Net loads), ``metrics.jsonl``, ``tensorboard/`` and
``learning_curves.png``.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import ConfigDict, model_validator
from torch.utils.data import DataLoader

from sidepair import __version__
from sidepair.atomic import write_json
from sidepair.config import EncoderFields, get_preset, validated, write_run_config
from sidepair.data.augment import Augmenter
from sidepair.data.pairs import PairDataset, sample_pairs
from sidepair.data.sections import SectionSampler
from sidepair.data.store import Store
from sidepair.errors import ConfigError, StoreError
from sidepair.evaluation.proxy import pair_metrics
from sidepair.losses import ContrastiveLoss, PairBCELoss, pair_distance
from sidepair.models import Encoder, Siamese
from sidepair.training.distributed import check_batch, dist_info, gather_lists, is_main_process, shard
from sidepair.training.loop import LoopSettings, fit
from sidepair.training.performance import Performance

VAL_EPOCH = 1_000_000  # validation pairs use a fixed "epoch" of their own


class PretrainConfig(EncoderFields):
    """Resolved settings of one pretraining run (written to ``config.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    preset: str
    store: str
    sections: Literal["masked", "bbox", "half"]
    loss: Literal["contrastive", "bce"]
    section_size: tuple[int, ...]
    embedding_dim: int = 128
    margin: float = 1.0
    threshold: float = 0.75
    epochs: int
    batch_size: int
    lr: float
    pairs_per_epoch: int
    val_pairs: int = 256
    jitter: float = 0.1
    augment: bool = False
    seed: int = 0
    workers: int = 0
    device: str = "auto"

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        if len(self.section_size) != self.dims:
            raise ValueError(
                f"section_size {self.section_size} must have {self.dims} sizes for dims={self.dims}"
            )
        for name in ("epochs", "batch_size", "pairs_per_epoch", "val_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        return self


def resolve_config(preset: str, store: str | Path, **overrides: Any) -> PretrainConfig:
    """Preset defaults, then the given overrides (None means "keep the preset's").

    Raises:
        ConfigError: Naming the invalid field.
    """
    p = get_preset(preset)
    sections = overrides.get("sections") or p.sections
    base = {
        "preset": preset,
        "store": str(store),
        "sections": p.sections,
        "dims": p.dims,
        "loss": p.loss,
        "section_size": p.half_section_size if sections == "half" else p.section_size,
        "channels": p.channels,
        "strides": p.strides,
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "lr": p.lr,
        "pairs_per_epoch": p.pairs_per_epoch,
        "augment": p.augment,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    if (
        overrides.get("dims") is not None
        and overrides["dims"] != p.dims
        and overrides.get("section_size") is None
    ):
        raise ConfigError(
            f"--dims {overrides['dims']} differs from preset {preset} (dims {p.dims}); "
            "give --section-size too, or pick a preset with those dims"
        )
    return validated(PretrainConfig, base, "pretrain")


def describe_store(store: Store) -> str:
    """What data a store holds, for figure titles: phantom or real, and how many cases."""
    kinds = []
    for record in store.header.get("datasets", []):
        root = Path(record["data_root"])
        if (root / "phantom.json").exists():
            kinds.append("phantom" if root.name == "phantom" else f"phantom {root.name}")
        else:
            kinds.append(f"real {root.name}")
    return f"{' + '.join(kinds) or 'unknown data'} ({len(store)} cases)"


def write_run_info(out: Path, kind: str, store: Store, seed: int, **extra: Any) -> None:
    """Write ``run.json``: kind, versions, seed, the data (phantom or real) and run-specific fields."""
    if not is_main_process():
        return
    write_json(
        out / "run.json",
        {
            "kind": kind,
            "sidepair_version": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "seed": seed,
            "data": describe_store(store),
            "store_fingerprint": store.header["fingerprint"],
            **extra,
        },
    )


class SidePairTask:
    """The side-pair task for the training loop."""

    kind = "pretrain"

    def __init__(self, config: PretrainConfig, store: Store) -> None:
        self.config = config
        self.store = store
        train, val = store.split("train"), store.split("val")
        if config.sections != "half":
            train = [c for c in train if store.cases[c]["labelled"]]
            val = [c for c in val if store.cases[c]["labelled"]]
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

    def train_batches(self, epoch: int) -> DataLoader:
        """The pairs of ``epoch``, drawn from ``(seed, epoch)``."""
        pairs = sample_pairs(self.train_sampler, self.config.pairs_per_epoch, self.config.seed, epoch)
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

    def checkpoint_extra(self) -> dict[str, Any]:
        """Config and encoder description, so the U-Net can rebuild and load the encoder."""
        return {
            "config": json.loads(self.config.model_dump_json()),
            "encoder_config": self.config.encoder_config(),
            "store_fingerprint": self.store.header["fingerprint"],
        }


def encoder_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The encoder tensors of a pretraining checkpoint, with the ``encoder.`` prefix removed."""
    return {
        k[len("encoder.") :]: v for k, v in checkpoint["network_weights"].items() if k.startswith("encoder.")
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
        from sidepair.viz import plot_history

        keys = ["train_loss", "val_loss", "val_acc", "val_auc"] + (
            ["val_acc_best"] if config.loss == "contrastive" else []
        )
        title = f"side-pair pretraining, {config.sections} {config.dims}D {config.loss}"
        plot_history(history, keys, out / "learning_curves.png", f"{title}, data: {describe_store(store)}")
    return history

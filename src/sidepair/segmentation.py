"""Segmentation training: the U-Net from scratch or with the side-pair encoder, at a label budget.

``run_train`` resolves a config from a preset and overrides, picks the labelled training subset
(deterministic in the seed and fraction, the same for scratch and transfer runs), and trains with the
shared loop. Validation scores per-case 3D Dice on the held-out validation cases each epoch (2D
predictions are stacked back into the volume); the best checkpoint is chosen by it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from monai.losses import DiceCELoss
from pydantic import ConfigDict, model_validator
from torch.utils.data import DataLoader, Dataset

from sidepair.config import EncoderFields, get_preset, validated, write_run_config
from sidepair.data.augment import Augmenter
from sidepair.data.sections import read_crop
from sidepair.data.store import Store
from sidepair.errors import ConfigError, SidepairError, StoreError
from sidepair.evaluation.metrics import dice_score
from sidepair.inference import predict_array
from sidepair.models import UNet
from sidepair.pretrain import describe_store, encoder_weights, write_run_info
from sidepair.training.checkpoint import load_checkpoint
from sidepair.training.distributed import (
    check_batch,
    dist_info,
    gather_batch,
    gather_lists,
    is_main_process,
    shard,
)
from sidepair.training.loop import LoopSettings, fit
from sidepair.training.performance import Performance

LabelMode = Literal["kidney", "kidney+tumour", "sides"]
N_CLASSES = {"kidney": 2, "kidney+tumour": 3, "sides": 3}


class TrainConfig(EncoderFields):
    """Resolved settings of one segmentation run (written to ``config.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    preset: str
    store: str
    init: str = "scratch"
    freeze_encoder: bool = False
    unfreeze_after: int | None = None
    label_fraction: float = 1.0
    labels: LabelMode = "kidney"
    loss: Literal["dicece", "paper"] = "dicece"
    patch_size: tuple[int, ...]
    epochs: int = 20
    batch_size: int = 8
    lr: float = 3e-4
    samples_per_epoch: int = 256
    foreground_fraction: float = 0.6
    augment: bool = False
    seed: int = 0
    workers: int = 0
    device: str = "auto"

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if len(self.patch_size) != self.dims:
            raise ValueError(f"patch_size {self.patch_size} must have {self.dims} sizes for dims={self.dims}")
        if not 0 < self.label_fraction <= 1:
            raise ValueError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.unfreeze_after is not None and not self.freeze_encoder:
            raise ValueError("unfreeze_after needs freeze_encoder")
        if self.freeze_encoder and self.init == "scratch":
            raise ValueError("freeze_encoder needs a pretrained --init checkpoint")
        for name in ("epochs", "batch_size", "samples_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        return self


def resolve_train_config(preset: str, store: str | Path, **overrides: Any) -> TrainConfig:
    """Preset defaults; with a pretraining checkpoint as ``init``, its encoder architecture and dims.

    Raises:
        ConfigError: Naming the invalid field.
    """
    p = get_preset(preset)
    base: dict[str, Any] = {
        "preset": preset,
        "store": str(store),
        "dims": p.dims,
        "channels": p.channels,
        "strides": p.strides,
        "patch_size": p.seg_patch_size,
        "epochs": p.seg_epochs,
        "batch_size": p.seg_batch_size,
        "lr": p.seg_lr,
        "samples_per_epoch": p.seg_samples,
        "augment": p.augment,
    }
    init = overrides.get("init")
    if init and init != "scratch":
        ckpt = load_checkpoint(init)
        if ckpt["kind"] != "pretrain":
            raise ConfigError(f"{init}: a {ckpt['kind']} checkpoint, not a pretraining one")
        enc = ckpt["encoder_config"]
        base.update(
            dims=enc["spatial_dims"],
            channels=tuple(enc["channels"]),
            strides=tuple(s if isinstance(s, int) else tuple(s) for s in enc["strides"]),
            norm=enc["norm"],
        )
        if enc["spatial_dims"] != p.dims and overrides.get("patch_size") is None:
            raise ConfigError(
                f"{init}: {enc['spatial_dims']}D encoder, but preset {preset} is {p.dims}D; "
                "give --patch-size or use a preset with the encoder's dims"
            )
    base.update({k: v for k, v in overrides.items() if v is not None})
    return validated(TrainConfig, base, "train")


def select_fraction(case_ids: list[str], fraction: float, seed: int) -> list[str]:
    """A deterministic subset of ``ceil(fraction * n)`` cases (at least 1).

    The order is a fixed permutation of the sorted ids for the seed, so smaller fractions are nested
    in larger ones, and scratch and transfer runs at the same seed and fraction get the same cases.
    """
    ordered = sorted(case_ids)
    order = np.random.default_rng([seed, 104729]).permutation(len(ordered))
    k = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return sorted(ordered[i] for i in order[:k])


def target_of(label: np.ndarray, side: np.ndarray | None, mode: LabelMode) -> np.ndarray:
    """Training target: kidney (0/1), kidney+tumour (0/1/2) or sides (0, 1 right, 2 left)."""
    if mode == "kidney":
        return (label > 0).astype(np.int64)
    if mode == "kidney+tumour":
        return label.astype(np.int64)
    if side is None:
        raise StoreError("label mode 'sides' needs the store's side maps")
    return np.where(label > 0, side, 0).astype(np.int64)


class PatchDataset(Dataset):
    """Random training patches (2D slices or 3D crops), a share of them centred on kidney voxels.

    Args:
        store: The store.
        case_ids: Labelled training cases.
        config: Run config.
        epoch: Epoch; with the seed it fixes every draw.
    """

    def __init__(self, store: Store, case_ids: list[str], config: TrainConfig, epoch: int) -> None:
        self.store = store
        self.config = config
        self.epoch = epoch
        self.augment = Augmenter(config.dims, with_label=True) if config.augment else None
        rng = np.random.default_rng([config.seed, epoch, 31337])
        size = (1, *config.patch_size) if config.dims == 2 else tuple(config.patch_size)
        self.items: list[tuple[str, tuple[int, ...]]] = []
        for _ in range(config.samples_per_epoch):
            case_id = case_ids[int(rng.integers(len(case_ids)))]
            entry = store.cases[case_id]
            shape = entry["shape"]
            if rng.random() < config.foreground_fraction:
                side = rng.choice([s for s, v in entry["sides"].items() if v and v.get("bbox")])
                box = entry["sides"][side]["bbox"]
                centre = [rng.uniform(lo, hi) for lo, hi in box]
            else:
                centre = [rng.uniform(0, n) for n in shape]
            if config.dims == 2:
                start = (int(np.clip(centre[0], 0, shape[0] - 1)),)
                start += tuple(int(c - s / 2) for c, s in zip(centre[1:], size[1:], strict=True))
            else:
                start = tuple(int(c - s / 2) for c, s in zip(centre, size, strict=True))
            self.items.append((case_id, start))
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        case_id, start = self.items[i]
        image = read_crop(self.store.array(case_id), start, self.size, self.store.background_value(case_id))
        label = read_crop(self.store.array(case_id, "label"), start, self.size, 0)
        side = (
            read_crop(self.store.array(case_id, "side"), start, self.size, 0)
            if self.config.labels == "sides"
            else None
        )
        target = target_of(label, side, self.config.labels)
        image, target = (image[0:1], target[0:1]) if self.config.dims == 2 else (image[None], target[None])
        if self.augment is not None:
            image, target = self.augment(image, target, (self.config.seed, self.epoch, i))
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(target))


class SegmentationTask:
    """Segmentation for the training loop."""

    kind = "segmentation"

    def __init__(self, config: TrainConfig, store: Store) -> None:
        self.config = config
        self.store = store
        labelled = [c for c in store.split("train") if store.cases[c]["labelled"]]
        if not labelled:
            raise StoreError(f"{store.path}: no labelled training cases")
        self.val_ids = [c for c in store.split("val") if store.cases[c]["labelled"]]
        if not self.val_ids:
            raise StoreError(f"{store.path}: no labelled validation cases in the store's split")
        self.train_ids = select_fraction(labelled, config.label_fraction, config.seed)
        torch.manual_seed(config.seed)
        self.model = UNet(config.encoder_config(), N_CLASSES[config.labels])
        self.transferred = 0
        self.encoder_tensors = len(self.model.encoder.state_dict())
        if config.init != "scratch":
            self.transferred = self.model.load_encoder(
                encoder_weights(load_checkpoint(config.init)), config.init
            )
        if config.freeze_encoder:
            self.model.set_encoder_trainable(False)
        dice_weight = 0.8 if config.loss == "paper" else 1.0
        ce_weight = 0.2 if config.loss == "paper" else 1.0
        # Batch Dice (one Dice over the whole batch, as nnU-Net): patches without kidney do not make it noisy.
        # Without the background class (as nnU-Net): with it, predicting background everywhere already
        # scores half the Dice term, and some seeds stayed in that minimum.
        self.loss = DiceCELoss(
            to_onehot_y=True,
            softmax=True,
            batch=True,
            include_background=False,
            lambda_dice=dice_weight,
            lambda_ce=ce_weight,
        )

    def on_epoch_start(self, epoch: int) -> None:
        """Unfreeze the encoder once ``unfreeze_after`` epochs are done."""
        if self.config.freeze_encoder:
            frozen = self.config.unfreeze_after is None or epoch < self.config.unfreeze_after
            self.model.set_encoder_trainable(not frozen)

    def train_batches(self, epoch: int) -> DataLoader:
        """The patches of ``epoch``, drawn from ``(seed, epoch)``."""
        return DataLoader(
            PatchDataset(self.store, self.train_ids, self.config, epoch),
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.workers,
            pin_memory=torch.cuda.is_available(),
        )

    def train_step(self, batch: Any, device: torch.device) -> torch.Tensor:
        """DiceCE loss of one batch."""
        image, target = (t.to(device, non_blocking=True) for t in batch)
        # Batch Dice over the global batch, as one process computes it (a no-op outside DDP).
        logits, target = gather_batch(self.model(image), target)
        return self.loss(logits, target)

    def predict_case(self, case_id: str, device: torch.device) -> np.ndarray:
        """Labels of a whole store case (2D: every slice, stacked)."""
        return predict_array(
            self.model,
            self.store.array(case_id),
            self.config.dims,
            tuple(self.config.patch_size),
            device,
            batch_size=self.config.batch_size,
        )

    def validate(self, device: torch.device) -> dict[str, float]:
        """Mean per-case 3D kidney Dice on the validation cases (store grid)."""
        dices = []
        for case_id in shard(self.val_ids):  # under DDP each rank scores its share of the cases
            pred = self.predict_case(case_id, device)
            gt = np.asarray(self.store.array(case_id, "label"))
            dices.append(dice_score(pred > 0, gt > 0))
        return {"dice": float(np.mean(gather_lists(dices)))}

    def checkpoint_extra(self) -> dict[str, Any]:
        """What prediction needs besides the weights: config, encoder, labels, preprocessing."""
        return {
            "config": json.loads(self.config.model_dump_json()),
            "encoder_config": self.config.encoder_config(),
            "out_channels": N_CLASSES[self.config.labels],
            "labels": self.config.labels,
            "preprocess": self.store.header["preprocess"],
            "store_fingerprint": self.store.header["fingerprint"],
            "train_cases": self.train_ids,
            "transferred": f"{self.transferred}/{self.encoder_tensors} encoder tensors transferred",
        }


def run_train(
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    label: str = "",
    bar: bool = True,
    performance: Performance | None = None,
) -> list[dict]:
    """Train a U-Net and write the run folder (config.yaml, run.json, checkpoints, metrics, curves).

    Args:
        config: Resolved config.
        out: Run folder.
        resume: Continue an interrupted run (a finished one is left as it is).
        progress: Progress lines per epoch.
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
    task = SegmentationTask(config, store)
    write_run_config(out, config, resume)
    transfer = (
        f"{task.transferred}/{task.encoder_tensors} encoder tensors transferred from {config.init}"
        if config.init != "scratch"
        else "scratch (no transfer)"
    )
    write_run_info(
        out,
        "segmentation",
        store,
        config.seed,
        init=config.init,
        transfer=transfer,
        label_fraction=config.label_fraction,
        train_cases=task.train_ids,
        val_cases=task.val_ids,
        performance=performance.model_dump(),
    )
    if progress and is_main_process():
        print(
            f"{label}train: {transfer}; {len(task.train_ids)} labelled training cases "
            f"(fraction {config.label_fraction}), {len(task.val_ids)} validation cases"
        )
    settings = LoopSettings(
        epochs=config.epochs,
        lr=config.lr,
        monitor="val_dice",
        seed=config.seed,
        device=config.device,
        performance=performance,
    )
    history = fit(task, out, settings, resume=resume, progress=progress, label=label, bar=bar)
    if history and is_main_process():
        from sidepair.viz import plot_history

        plot_history(
            history,
            ["train_loss", "val_dice"],
            out / "learning_curves.png",
            f"segmentation, init {Path(config.init).parent.name if config.init != 'scratch' else 'scratch'}, "
            f"fraction {config.label_fraction}, data: {describe_store(store)}",
        )
    return history


def load_segmentation_model(run: str | Path, which: str = "best") -> tuple[UNet, dict[str, Any]]:
    """The trained U-Net of a run folder (or a checkpoint file) and its checkpoint.

    Raises:
        SidepairError: If the folder holds no segmentation run (e.g. a pretraining run).
    """
    run = Path(run)
    path = run if run.is_file() else run / f"checkpoint_{which}.pt"
    ckpt = load_checkpoint(path)
    if ckpt["kind"] != "segmentation":
        raise SidepairError(f"{path}: a {ckpt['kind']} run, not a segmentation model")
    model = UNet(ckpt["encoder_config"], int(ckpt["out_channels"]))
    model.load_state_dict(ckpt["network_weights"])
    return model, ckpt

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
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss
from torch.utils.data import DataLoader, Dataset

from sidepair.config import (
    Performance,
    PreprocessSettings,
    SegmentSettings,
)
from sidepair.data.augment import Augmenter
from sidepair.data.store import Store
from sidepair.devices import resolve_device
from sidepair.errors import ConfigError, StoreError
from sidepair.evaluation.metrics import dice_score
from sidepair.evaluation.statistics import plateaued
from sidepair.inference.sliding import predict_array
from sidepair.models.checkpoint import BEST, PretrainCheckpoint, SegmentationCheckpoint, read_checkpoint
from sidepair.models.encoder import total_stride
from sidepair.models.unet import segmentation_network, set_encoder_trainable, transfer_encoder
from sidepair.nnunet_plans import check_nnunet_store
from sidepair.training.curves import plot_history
from sidepair.training.distributed import (
    check_batch,
    dist_info,
    gather_batch,
    gather_lists,
    is_main_process,
    shard,
)
from sidepair.training.loop import LoopSettings, fit
from sidepair.training.optim import OptimSettings
from sidepair.training.patches import ValidationPatches, crop_size, draw_starts, read_patch
from sidepair.training.performance import autocast
from sidepair.training.runinfo import update_run_info, write_run_config, write_run_info
from sidepair.training.segment_config import N_CLASSES, TrainConfig, network_view


def pretrained_preprocess(checkpoint: PretrainCheckpoint, path: str) -> PreprocessSettings:
    """The preprocessing of the store an encoder was pretrained on.

    Checkpoints written before it was recorded fall back to that store's own header, if it is still there.

    Raises:
        StoreError: Neither is available (rerun the pretraining).
    """
    if checkpoint.preprocess is not None:
        return PreprocessSettings.model_validate(checkpoint.preprocess)
    store = Path(str(checkpoint.config.get("store", "")))
    if (store / "store.json").is_file():
        return Store(store).settings
    raise StoreError(
        f"{path}: the checkpoint does not record its store's preprocessing and that store is gone; "
        "rerun `sidepair pretrain`"
    )


def store_mismatch(pretrained: PreprocessSettings, store: PreprocessSettings) -> str | None:
    """The first preprocessing setting that differs between two stores, with both values, or None."""
    for name in PreprocessSettings.model_fields:
        a, b = getattr(pretrained, name), getattr(store, name)
        if a != b:
            return f"{name} {a} in pretraining, {b} in this store"
    return None


def select_fraction(case_ids: list[str], fraction: float, seed: int) -> list[str]:
    """A deterministic subset of ``ceil(fraction * n)`` cases (at least 1).

    The order is a fixed permutation of the sorted ids for the seed, so smaller fractions are nested
    in larger ones, and scratch and transfer runs at the same seed and fraction get the same cases.
    """
    ordered = sorted(case_ids)
    order = np.random.default_rng([seed, 104729]).permutation(len(ordered))
    k = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return sorted(ordered[i] for i in order[:k])


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
        recipe = config.augment_recipe if config.augment else None
        self.augment = (
            Augmenter(config.dims, with_label=True, recipe=recipe, mirror=config.mirror)
            if config.augment or config.mirror
            else None
        )
        rng = np.random.default_rng([config.seed, epoch, 31337])
        self.size = crop_size(config.patch_size, config.dims)
        self.items = draw_starts(
            store, case_ids, config.samples_per_epoch, self.size, config.dims, config.foreground_fraction, rng
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        case_id, start = self.items[i]
        image, target = read_patch(
            self.store, case_id, start, self.size, self.config.dims, self.config.labels
        )
        if self.augment is not None:  # in store order: the rotation is in the axial plane
            image, target = self.augment(image, target, (self.config.seed, self.epoch, i))
        view = self.store.cases[case_id].network
        if view is not None:  # nnU-Net's axis order, as nnU-Net feeds its network this case
            image, target = view.to_network(image), view.to_network(target)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(target))


class SegmentationTask:
    """Segmentation for the training loop."""

    kind = "segmentation"
    checkpoint_type = SegmentationCheckpoint

    def __init__(self, config: TrainConfig, store: Store) -> None:
        self.config = config
        self.store = store
        store.protect_test_labels()
        labelled = store.labelled("train")
        if not labelled:
            raise StoreError(f"{store.path}: no labelled training cases")
        self.val_ids = store.labelled("val")
        if not self.val_ids:
            raise StoreError(f"{store.path}: no labelled validation cases in the store's split")
        self.train_ids = select_fraction(labelled, config.label_fraction, config.seed)
        if config.architecture == "nnunet":
            check_nnunet_store(store, str(config.plans), str(config.configuration))
            if config.dims == 2 and network_view(store).order[0] != 0:
                raise StoreError(
                    f"{store.path}: nnU-Net's 2d configuration slices these scans along an axis that is "
                    "not axial; sidepair's 2D runs are axial (use a 3d configuration)"
                )
        self.val_patches = (
            ValidationPatches.draw(
                store, self.val_ids, config.patch_size, config.dims, config.val_patches, config.labels
            )
            if config.validation == "patches"
            else None
        )
        self.encoder_config = config.encoder_config()
        self.stride = tuple(total_stride(self.encoder_config))
        torch.manual_seed(config.seed)
        self.model = segmentation_network(self.encoder_config, N_CLASSES[config.labels])
        self.transferred = 0
        self.encoder_tensors = len(self.model.encoder.state_dict())
        self.mismatch: str | None = None
        self.pretrain_labels_read: dict[str, list[str]] | None = None
        if config.init != "scratch":
            pretrained = read_checkpoint(config.init, PretrainCheckpoint)
            self.pretrain_labels_read = pretrained.labels_read
            self.mismatch = store_mismatch(pretrained_preprocess(pretrained, config.init), store.settings)
            if self.mismatch and not config.accept_store_mismatch:
                raise ConfigError(
                    f"{config.init}: encoder pretrained on a store with other preprocessing "
                    f"({self.mismatch}); pass --accept-store-mismatch to transfer it knowingly"
                )
            self.transferred = transfer_encoder(
                self.model.encoder, pretrained.encoder_weights(), config.init, "the U-Net's"
            )
        if config.freeze_encoder:
            set_encoder_trainable(self.model, False)
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

    def should_stop(self, history: list[dict[str, Any]]) -> bool:
        """With ``stop_on_plateau``: stop at the first plateau of the (smoothed) validation Dice."""
        return self.config.stop_on_plateau and converged(history, self.config)

    def on_epoch_start(self, epoch: int) -> None:
        """Unfreeze the encoder once ``unfreeze_after`` epochs are done."""
        if self.config.freeze_encoder:
            frozen = self.config.unfreeze_after is None or epoch < self.config.unfreeze_after
            set_encoder_trainable(self.model, not frozen)

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
        """Labels of a whole store case (2D: every slice, stacked), on the store grid."""
        image = np.asarray(self.store.array(case_id))
        patch = tuple(self.config.patch_size)
        view = self.store.cases[case_id].network
        if view is not None:  # nnU-Net's network sees the case in its own axis order
            image, patch = view.to_network(image), view.network_size(patch)
        labels = predict_array(
            self.model, image, self.config.dims, patch, device, self.config.batch_size, stride=self.stride
        )
        return view.to_store(labels) if view is not None else labels

    def validate(self, device: torch.device) -> dict[str, float]:
        """Kidney Dice of the fixed validation patches, or the mean per-case 3D Dice of whole volumes."""
        if self.val_patches is not None:
            return {"dice": self.val_patches.score(self.model, device, self.config.batch_size)}
        return {"dice": self.validate_volumes(device)}

    def validate_volumes(self, device: torch.device) -> float:
        """Mean per-case 3D kidney Dice on the validation cases (store grid)."""
        dices = []
        for case_id in shard(self.val_ids):  # under DDP each rank scores its share of the cases
            pred = self.predict_case(case_id, device)
            gt = np.asarray(self.store.array(case_id, "label"))
            dices.append(dice_score(pred > 0, gt > 0))
        # A case with nothing to find and nothing found is not scored (metrics.py states the rule).
        scored = [d for d in gather_lists(dices) if math.isfinite(d)]
        return float(np.mean(scored)) if scored else math.nan

    def checkpoint_fields(self) -> dict[str, Any]:
        """What prediction needs besides the weights: config, encoder, labels, preprocessing."""
        return {
            "config": json.loads(self.config.model_dump_json()),
            "encoder_config": self.encoder_config,
            "out_channels": N_CLASSES[self.config.labels],
            "labels": self.config.labels,
            "preprocess": self.store.settings.model_dump(mode="json"),
            "store_fingerprint": self.store.fingerprint,
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
        labels_read={"train": task.train_ids, "selection": task.val_ids},
        pretrain_labels_read=task.pretrain_labels_read,
        store_mismatch_accepted=task.mismatch,
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
        smoothing=config.smoothing,
        optim=OptimSettings(
            optimizer=config.optimizer,
            lr=config.lr,
            weight_decay=config.weight_decay,
            momentum=config.momentum,
            schedule=config.schedule,
            warmup_steps=config.warmup_steps,
        ),
        steps_per_epoch=config.steps_per_epoch,
        seed=config.seed,
        device=config.device,
        performance=performance,
    )
    history = fit(task, out, settings, resume=resume, progress=progress, label=label, bar=bar)
    if history and is_main_process():
        final = selected_volumes(task, out, settings) if config.validation == "patches" else {}
        update_run_info(out, **convergence(history, config), **final)
        plot_history(
            history,
            ["train_loss", "val_dice"],
            out / "learning_curves.png",
            f"segmentation, init {Path(config.init).parent.name if config.init != 'scratch' else 'scratch'}, "
            f"fraction {config.label_fraction}, data: {store.describe()}",
        )
    return history


def selected_volumes(task: SegmentationTask, out: Path, settings: LoopSettings) -> dict[str, Any]:
    """Whole-volume validation Dice of the chosen checkpoint, scored once after training (run.json)."""
    device = resolve_device(settings.device)
    best = read_checkpoint(out / BEST, SegmentationCheckpoint)
    task.model.load_state_dict(best.network_weights)
    task.model.to(device).eval()
    with torch.no_grad(), autocast(settings.performance, device):
        dice = task.validate_volumes(device)
    return {"val_dice_volumes": dice, "val_dice_volumes_epoch": best.best_epoch}


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

"""The segmentation task: the U-Net from scratch or with a pretrained encoder, at a label budget.

It picks the labelled training subset (deterministic in the seed and fraction, the same for scratch and
transfer runs), transfers the encoder, and trains with DiceCE. Validation scores either the fixed
validation patches or per-case 3D Dice of whole validation volumes (2D predictions stacked back into the
volume) each epoch; with patches, whole volumes are scored once, for the chosen checkpoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from torch import nn
from torch.utils.data import DataLoader

from sidepair.config import Performance, PreprocessSettings
from sidepair.data.splits import select_fraction
from sidepair.data.store import Store, recorded_paths
from sidepair.devices import resolve_device
from sidepair.errors import ConfigError, StoreError
from sidepair.evaluation.metrics import dice_score
from sidepair.inference.sliding import predict_array
from sidepair.models.backends import segmentation_network, total_stride
from sidepair.models.checkpoint import BEST, PretrainCheckpoint, SegmentationCheckpoint, read_checkpoint
from sidepair.models.unet import set_encoder_trainable, transfer_encoder
from sidepair.training.convergence import converged, convergence
from sidepair.training.distributed import gather_batch, gather_lists, shard
from sidepair.training.patches import PatchDataset, ValidationPatches
from sidepair.training.performance import autocast
from sidepair.training.segment_config import N_CLASSES, TrainConfig
from sidepair.training.task import Task


def pretrained_preprocess(checkpoint: PretrainCheckpoint, path: str) -> PreprocessSettings:
    """The preprocessing of the store an encoder was pretrained on.

    Checkpoints written before it was recorded fall back to that store's own header, if it is still there.

    Raises:
        StoreError: Neither is available (rerun the pretraining).
    """
    if checkpoint.preprocess is not None:
        return PreprocessSettings.model_validate(checkpoint.preprocess)
    recorded = checkpoint.config.get("store")
    for store in recorded_paths(str(recorded), Path(path).parent) if recorded else []:
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


class NnUNetDeepSupervision(DeepSupervisionLoss):
    """MONAI's deep supervision loss with nnU-Net's weights: 1/2^i from the finest output, summing to 1.

    Normalised for however many outputs come, so the loss keeps the scale of one output's (MONAI's
    ``exp`` mode does not normalise, which would scale SGD's step with the network's depth).
    """

    def get_weights(self, levels: int = 1) -> list[float]:
        """The weights of ``levels`` outputs, finest first."""
        raw = [0.5**i for i in range(max(1, levels))]
        return [w / sum(raw) for w in raw]

    def forward(self, input: torch.Tensor | list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """The weighted loss; the labels as floats, which MONAI downsamples to each output (nearest-exact)."""
        return super().forward(input, target.float())


def segmentation_loss(loss: str = "dicece", deep_supervision: bool = False) -> nn.Module:
    """The segmentation loss of a run: DiceCE (``paper``: 0.8 Dice + 0.2 CE), deeply supervised if asked.

    Batch Dice (one Dice over the whole batch, as nnU-Net): patches without kidney do not make it noisy.
    Without the background class (as nnU-Net): with it, predicting background everywhere already scores
    half the Dice term, and some seeds stayed in that minimum.
    """
    dicece = DiceCELoss(
        to_onehot_y=True,
        softmax=True,
        batch=True,
        include_background=False,
        lambda_dice=0.8 if loss == "paper" else 1.0,
        lambda_ce=0.2 if loss == "paper" else 1.0,
    )
    return NnUNetDeepSupervision(dicece) if deep_supervision else dicece


class SegmentationTask(Task):
    """Segmentation for the training loop.

    Args:
        config: The resolved run config.
        store: The open store.

    Raises:
        StoreError: No labelled training or validation cases; an nnU-Net store that does not fit.
        ConfigError: An encoder pretrained on other preprocessing, not accepted.
    """

    kind = "segmentation"
    checkpoint_type = SegmentationCheckpoint
    monitor = "val_dice"
    curves = ["train_loss", "val_dice"]

    def __init__(self, config: TrainConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.smoothing = config.smoothing
        store.protect_test_labels()
        labelled = store.labelled("train")
        if not labelled:
            raise StoreError(f"{store.path}: no labelled training cases")
        self.val_ids = store.labelled("val")
        if not self.val_ids:
            raise StoreError(f"{store.path}: no labelled validation cases in the store's split")
        self.train_ids = select_fraction(labelled, config.label_fraction, config.seed)
        config.check_store(store)
        view = store.network_view
        if config.dims == 2 and view is not None and view.order[0] != 0:
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
        self.model = segmentation_network(
            self.encoder_config, N_CLASSES[config.labels], config.deep_supervision
        )
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
        self.loss = segmentation_loss(config.loss, config.deep_supervision)

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

    def train_step(self, net: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """DiceCE loss of one batch (with deep supervision, the weighted sum over the outputs)."""
        image, target = (t.to(device, non_blocking=True) for t in batch)
        out = net(image)
        deep = isinstance(out, list)
        # Batch Dice over the global batch, as one process computes it (a no-op outside DDP).
        *outputs, target = gather_batch(*(out if deep else [out]), target)
        return self.loss(outputs if deep else outputs[0], target)

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

    @property
    def transfer(self) -> str:
        """Where the encoder's weights came from, in words."""
        if self.config.init == "scratch":
            return "scratch (no transfer)"
        done = f"{self.transferred}/{self.encoder_tensors} encoder tensors"
        return f"{done} transferred from {self.config.init}"

    def run_info(self) -> dict[str, Any]:
        """The transfer, the label budget and whose labels the run read (run.json)."""
        return {
            "init": self.config.init,
            "transfer": self.transfer,
            "label_fraction": self.config.label_fraction,
            "train_cases": self.train_ids,
            "val_cases": self.val_ids,
            "labels_read": {"train": self.train_ids, "selection": self.val_ids},
            "pretrain_labels_read": self.pretrain_labels_read,
            "store_mismatch_accepted": self.mismatch,
        }

    def announce(self) -> str:
        """The transfer and the cases, when the run starts."""
        return (
            f"train: {self.transfer}; {len(self.train_ids)} labelled training cases "
            f"(fraction {self.config.label_fraction}), {len(self.val_ids)} validation cases"
        )

    def title(self) -> str:
        """``segmentation, init <pretraining run or scratch>, fraction <f>``."""
        init = Path(self.config.init).parent.name if self.config.init != "scratch" else "scratch"
        return f"segmentation, init {init}, fraction {self.config.label_fraction}"

    def finish(
        self, run_dir: Path, history: list[dict[str, Any]], device: str, performance: Performance
    ) -> dict[str, Any]:
        """The convergence verdict; with validation patches, the chosen checkpoint's whole-volume Dice."""
        out = convergence(history, self.config)
        if self.config.validation == "patches":
            out.update(self.selected_volumes(run_dir, device, performance))
        return out

    def selected_volumes(self, run_dir: Path, device: str, performance: Performance) -> dict[str, Any]:
        """Whole-volume validation Dice of the chosen checkpoint, scored once after training (run.json)."""
        where = resolve_device(device)
        best = read_checkpoint(run_dir / BEST, SegmentationCheckpoint)
        self.model.load_state_dict(best.network_weights)
        self.model.to(where).eval()
        with torch.no_grad(), autocast(performance, where):
            dice = self.validate_volumes(where)
        return {"val_dice_volumes": dice, "val_dice_volumes_epoch": best.best_epoch}

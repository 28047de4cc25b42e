"""The resolved settings of one segmentation run: the preset's defaults, the user's overrides, and checks.

Free of torch (a pretrained ``--init`` checkpoint is read only when given), so the command line builds its
options from :class:`TrainConfig` and refuses bad settings without loading the network code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from sidepair.config import (
    ArchitectureSettings,
    PresetName,
    SegmentSettings,
    steps_per_epoch,
    validated,
)
from sidepair.errors import ConfigError
from sidepair.lazy import load
from sidepair.training.run_defaults import nnunet_defaults, plans_patch_size, preset_defaults

N_CLASSES = {"kidney": 2, "kidney+tumour": 3, "sides": 3}


class TrainConfig(SegmentSettings, ArchitectureSettings):
    """Resolved settings of one segmentation run (written to ``config.yaml``).

    The hyperparameters are :class:`~sidepair.config.SegmentSettings` and
    :class:`~sidepair.config.ArchitectureSettings`; here are only the run's own fields.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str
    store: str
    init: str = Field("scratch", description="scratch, or a pretraining checkpoint (checkpoint_best.pt).")
    freeze_encoder: bool = Field(False, description="Keep the pretrained encoder fixed.")
    unfreeze_after: int | None = Field(None, description="With --freeze-encoder: unfreeze after E epochs.")
    label_fraction: float = Field(1.0, description="Fraction of the labelled training cases used.")
    accept_store_mismatch: bool = Field(
        False,
        description="Transfer an encoder pretrained on a store with other preprocessing (noted in run.json).",
    )
    seed: int = Field(0, description="Seed: model init, label subset and patches.")
    workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")

    @model_validator(mode="before")
    @classmethod
    def _steps_to_epochs(cls, data: Any) -> Any:
        # A step budget fixes the epochs (written to config.yaml), so the loop, resume and the experiment's
        # "finished" check all count in epochs.
        if isinstance(data, dict) and data.get("steps"):
            fields = SegmentSettings.model_fields
            samples = int(data.get("samples_per_epoch", fields["samples_per_epoch"].default))
            per_epoch = steps_per_epoch(samples, int(data.get("batch_size", fields["batch_size"].default)))
            data = {**data, "epochs": -(-int(data["steps"]) // per_epoch)}
        return data

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
        return self


def resolve_train_config(preset: PresetName | str | None, store: str | Path, **overrides: Any) -> TrainConfig:
    """The preset's defaults; with a pretraining checkpoint as ``init``, its encoder architecture and dims.

    Args:
        preset: Preset name; None takes the one the store was prepared with.
        store: Store folder.
        **overrides: Fields of :class:`TrainConfig` (None keeps the preset's).

    Raises:
        ConfigError: Naming the invalid field.
    """
    p, base = preset_defaults(preset, store, "segment")
    name = base["preset"]
    init = overrides.get("init")
    if init and init != "scratch":
        # Reading a checkpoint needs torch; every other setting is resolved without it (fast usage errors).
        pretrained = load("sidepair.models.checkpoint:read_checkpoint")(
            init, load("sidepair.models.checkpoint:PretrainCheckpoint")
        )
        enc = pretrained.encoder_config
        base.update(ArchitectureSettings.of_encoder(enc, pretrained.config.get("plans")))
        if enc["spatial_dims"] != p.architecture.dims and overrides.get("patch_size") is None:
            raise ConfigError(
                f"{init}: {enc['spatial_dims']}D encoder, but preset {name} is {p.architecture.dims}D; "
                "give --patch-size or use a preset with the encoder's dims"
            )
    if overrides.get("epochs") is not None and overrides.get("steps") is None:
        base["steps"] = None  # an epoch budget given replaces the preset's step budget
    given = {k: v for k, v in overrides.items() if v is not None}
    base.update({**nnunet_defaults(store, given), **given})
    if base.get("labels") == "sides" and overrides.get("mirror") is None:
        base["mirror"] = False  # the preset mirrors kidneys; a mirrored right kidney looks like a left one
    if overrides.get("patch_size") is None:
        base.update(plans_patch_size(store, base))
    return validated(TrainConfig, base, "train")

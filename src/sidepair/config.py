"""Typed, validated configuration: label maps, preprocessing settings and named presets.

Values are checked when a config is built, so a bad YAML file or flag fails early with a message that
says which field is wrong. Each hyperparameter is declared once, in :class:`ArchitectureSettings`,
:class:`PretrainSettings` or :class:`SegmentSettings`; presets give them values, and the run configs,
the experiment YAML and the command-line options are derived from those declarations
(:func:`optional_fields`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from sidepair.errors import ConfigError
from sidepair.nnunet_plans import check_nnunet_store, nnunet_encoder_config

Side = Literal["right", "left"]
LabelMode = Literal["kidney", "kidney+tumour", "sides"]
SectionMode = Literal["masked", "bbox", "half"]
PretextTask = Literal["side-pair", "restoration", "contrastive-views"]
Corruption = Literal["shuffle", "intensity", "inpaint", "outpaint"]
# Fields marked so are settings of configs and YAML files, not command-line options.
NO_CLI: dict[str, Any] = {"cli": False}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


RGB = tuple[int, int, int]


class ColourMap(_Strict):
    """Mask colours of a slice folder: each role takes one RGB colour or a list of them.

    Attributes:
        kidney: Kidney colours.
        tumour: Tumour colours (part of the kidney region).
        right: Right-kidney colours (the source states the side).
        left: Left-kidney colours.
        other: Colours of other structures, read as background.
    """

    kidney: list[RGB] = []
    tumour: list[RGB] = []
    right: list[RGB] = []
    left: list[RGB] = []
    other: list[RGB] = []

    @field_validator("kidney", "tumour", "right", "left", "other", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, list | tuple) and len(v) == 3 and all(isinstance(c, int) for c in v):
            return [v]  # a single colour
        return v

    @field_validator("kidney", "tumour", "right", "left", "other")
    @classmethod
    def _bytes(cls, v: list[RGB]) -> list[RGB]:
        for colour in v:
            if not all(0 <= c <= 255 for c in colour):
                raise ValueError(f"colour {list(colour)} is not RGB in 0-255")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> ColourMap:
        seen: dict[RGB, str] = {}
        for role in ("kidney", "tumour", "right", "left", "other"):
            for colour in getattr(self, role):
                if colour in seen:
                    raise ValueError(f"colour {list(colour)} is both {seen[colour]} and {role}")
                seen[colour] = role
        if (0, 0, 0) in seen:
            raise ValueError("black [0, 0, 0] is the background and cannot be given a role")
        if not (self.kidney or self.right or self.left):
            raise ValueError("the colour map names no kidney colour")
        return self


class LabelMap(_Strict):
    """Which label values (or mask colours) mean kidney, tumour and (where the source says) which side.

    Attributes:
        kidney: Values counted as kidney. Tumour values listed here are merged into the kidney, as
            the paper does for KiTS19 (1 kidney, 2 tumour).
        tumour: Values that are tumour (a subset of the kidney region for the kidney task).
        right: Values that mean right kidney (multilabel maps such as AMOS: 2).
        left: Values that mean left kidney (AMOS: 3).
        other: What to do with a non-zero value that is in none of the lists: ``"error"`` refuses the
            case, ``"background"`` treats it as background (for maps with many organs).
        structures: For per-structure layouts (TotalSegmentator): role -> file stem, e.g.
            ``{"right": "kidney_right", "left": "kidney_left"}``.
        colours: For colour masks of slice folders: which colour is which role (default: blue kidney,
            red tumour).
    """

    kidney: tuple[int, ...] = (1, 2)
    tumour: tuple[int, ...] = (2,)
    right: tuple[int, ...] = ()
    left: tuple[int, ...] = ()
    other: Literal["error", "background"] = "error"
    structures: dict[Literal["right", "left", "kidney", "tumour"], str] = Field(default_factory=dict)
    colours: ColourMap | None = None

    @model_validator(mode="after")
    def _check(self) -> LabelMap:
        if set(self.right) & set(self.left):
            raise ValueError(f"values {sorted(set(self.right) & set(self.left))} are both right and left")
        if 0 in set(self.kidney) | set(self.tumour) | set(self.right) | set(self.left):
            raise ValueError("0 is background and cannot be a kidney, tumour or side value")
        if not (self.kidney or self.right or self.left or self.structures or self.colours):
            raise ValueError("the label map names no kidney value")
        return self

    @property
    def kidney_values(self) -> frozenset[int]:
        """Every value that belongs to the kidney region (kidney, tumour and sided values)."""
        return frozenset(self.kidney) | frozenset(self.tumour) | frozenset(self.right) | frozenset(self.left)

    @property
    def has_sides(self) -> bool:
        """Whether the source declares left and right itself."""
        return bool(self.right or self.left or {"right", "left"} & set(self.structures))


LABEL_MAPS: dict[str, LabelMap] = {
    "kits19": LabelMap(kidney=(1, 2), tumour=(2,)),
    # KiTS21/23: 1 kidney, 2 tumour, 3 cyst; cysts are part of the kidney region.
    "kits23": LabelMap(kidney=(1, 2, 3), tumour=(2,)),
    # AMOS / TotalSegmentator multilabel: right kidney 2, left kidney 3, other organs ignored.
    "sides-multilabel": LabelMap(kidney=(), tumour=(), right=(2,), left=(3,), other="background"),
    "totalseg": LabelMap(
        kidney=(), tumour=(), structures={"right": "kidney_right", "left": "kidney_left"}, other="background"
    ),
}


class NnUNetPreprocessing(_Strict):
    """nnU-Net's own preprocessing of a plans file's configuration, instead of ours.

    Attributes:
        plans: The plans file (``nnUNetPlans.json``; its ``dataset.json`` and fingerprint lie beside it).
        configuration: The configuration whose preprocessing the store repeats (``2d``, ``3d_fullres`` ...).
        plans_sha: Hash of the plans' content (a pretraining checks it against its architecture).
    """

    plans: str
    configuration: str
    plans_sha: str


class PreprocessSettings(_Strict):
    """How ``prepare`` turns a CT into store arrays.

    Attributes:
        spacing_zyx: Target voxel size in mm (z, y, x), the paper's order; ``None`` keeps an axis.
        window: HU clip range before normalisation (the paper: [-79, 304]).
        normalize: ``"zscore"`` per volume after clipping (the paper), or ``"window"`` to [0, 1].
        dtype: Storage dtype of the image array.
        nnunet: nnU-Net's preprocessing (reader, crop, transpose, spacing, its normalisation) replaces
            spacing, window and normalisation; None for ours.
        antialias: Smooth the image before downsampling it (a Gaussian of sigma ``(factor - 1) / 2``
            input pixels per axis, the rule of MONAI's ``Resize(anti_aliasing=True)``), so that each
            output pixel stands for the area it covers rather than the few input pixels it falls between.
    """

    spacing_zyx: tuple[float | None, float | None, float | None] = (3.22, 1.62, 1.62)
    window: tuple[float, float] = (-79.0, 304.0)
    normalize: Literal["zscore", "window"] = "zscore"
    dtype: Literal["float16", "float32"] = "float16"
    nnunet: NnUNetPreprocessing | None = None
    antialias: bool = False

    @field_validator("spacing_zyx")
    @classmethod
    def _positive(cls, v: tuple[float | None, ...]) -> tuple[float | None, ...]:
        if any(s is not None and s <= 0 for s in v):
            raise ValueError(f"spacing must be positive, got {v}")
        return v

    @field_validator("window")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] >= v[1]:
            raise ValueError(f"window low must be below high, got {v}")
        return v

    def fingerprint(self, extra: dict[str, Any] | None = None) -> str:
        """A short hash of these settings (and ``extra``), naming the store they produce."""
        # exclude_none: a store prepared before ``nnunet`` existed keeps its fingerprint.
        preprocess = self.model_dump(mode="json", exclude_none=True)
        if not self.antialias:  # a store prepared before ``antialias`` existed keeps its fingerprint
            del preprocess["antialias"]
        payload = {"preprocess": preprocess, **(extra or {})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def check_architecture(architecture: str, plans: str | None, configuration: str | None) -> None:
    """Refuse nnU-Net without its plans and configuration, and those without nnU-Net.

    Raises:
        ValueError: Naming the missing or stray setting (pydantic validators turn it into the field's error).
    """
    if architecture == "nnunet" and not (plans and configuration):
        raise ValueError("architecture nnunet needs plans and configuration (--plans, --configuration)")
    if architecture == "monai" and (plans or configuration):
        raise ValueError("plans and configuration are for architecture nnunet (--architecture nnunet)")


class ArchitectureSettings(_Strict):
    """The encoder (and so the U-Net) architecture, shared by pretraining and segmentation.

    Attributes:
        dims: 2 (axial slices) or 3 (volumes).
        channels: Encoder channels per stage, shallow to deep.
        strides: Stride of each stage's first convolution (an int, or one value per axis).
        norm: MONAI norm name.
        architecture: ``monai`` (sidepair's encoder of MONAI blocks) or ``nnunet`` (nnU-Net's network,
            built by nnU-Net from ``plans`` and ``configuration``; channels, strides and norm then unused).
        plans: nnU-Net plans file.
        configuration: nnU-Net configuration in the plans.
    """

    dims: Literal[2, 3] = Field(3, description="2 (axial slices) or 3 (volumes).")
    channels: tuple[int, ...] = Field(
        (32, 64, 128, 256, 320), description="Encoder channels per stage (repeat the option)."
    )
    strides: tuple[int | tuple[int, ...], ...] = Field(
        (1, (1, 2, 2), 2, 2, 2), description="Encoder stride per stage.", json_schema_extra=NO_CLI
    )
    norm: str = Field("instance", description="MONAI norm name.", json_schema_extra=NO_CLI)
    architecture: Literal["monai", "nnunet"] = Field(
        "monai",
        description="monai (sidepair's encoder) or nnunet (nnU-Net's network from --plans and "
        "--configuration; needs the [nnunet] extra).",
    )
    plans: str | None = Field(None, description="nnU-Net plans file (with --architecture nnunet).")
    configuration: str | None = Field(
        None, description="nnU-Net configuration of the plans, e.g. 2d or 3d_fullres (--architecture nnunet)."
    )

    @field_validator("plans")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        return str(Path(v).resolve()) if v else v

    @model_validator(mode="after")
    def _check_architecture(self) -> ArchitectureSettings:
        check_architecture(self.architecture, self.plans, self.configuration)
        for s in self.strides if self.architecture == "monai" else ():  # nnU-Net's plans set its own
            if not isinstance(s, int) and len(s) != self.dims:
                raise ValueError(f"stride {s} must have {self.dims} values for dims={self.dims}")
        if len(self.channels) != len(self.strides):
            raise ValueError(f"channels {self.channels} and strides {self.strides} differ in length")
        return self

    def encoder_config(self) -> dict[str, Any]:
        """What rebuilds the encoder (saved in checkpoints).

        :class:`~sidepair.models.Encoder`'s arguments, or nnU-Net's architecture from the plans.

        Raises:
            ConfigError: nnU-Net plans whose configuration has other dims than ``dims``.
        """
        if self.architecture == "nnunet":
            config = nnunet_encoder_config(str(self.plans), str(self.configuration))
            if config["spatial_dims"] != self.dims:
                raise ConfigError(
                    f"{self.plans}: configuration {self.configuration} is {config['spatial_dims']}D but the "
                    f"run is {self.dims}D; give --dims {config['spatial_dims']} with a --section-size, or a "
                    f"{config['spatial_dims']}D preset"
                )
            return config
        return {
            "spatial_dims": self.dims,
            "in_channels": 1,
            "channels": list(self.channels),
            "strides": [s if isinstance(s, int) else list(s) for s in self.strides],
            "norm": self.norm,
        }

    def check_store(self, store: Any) -> None:
        """Refuse a store whose preprocessing this architecture's network cannot read.

        nnU-Net's network reads nnU-Net's preprocessing of its own plans and configuration; sidepair's
        reads any store.

        Raises:
            ConfigError: Naming the store and the prepare command that makes a matching one.
        """
        if self.architecture == "nnunet":
            check_nnunet_store(store, str(self.plans), str(self.configuration))

    @staticmethod
    def of_encoder(encoder_config: dict[str, Any], plans: str | None = None) -> dict[str, Any]:
        """The settings that rebuild the encoder an encoder config describes.

        The inverse of :meth:`encoder_config`: a segmentation run takes them from its pretrained checkpoint.

        Args:
            encoder_config: A checkpoint's encoder config.
            plans: The plans file the pretraining named (nnU-Net's architecture).
        """
        dims = int(encoder_config["spatial_dims"])
        if encoder_config.get("architecture", "monai") == "nnunet":
            return {
                "dims": dims,
                "architecture": "nnunet",
                "plans": plans,
                "configuration": encoder_config["configuration"],
            }
        return {
            "dims": dims,
            "channels": tuple(encoder_config["channels"]),
            "strides": tuple(s if isinstance(s, int) else tuple(s) for s in encoder_config["strides"]),
            "norm": encoder_config["norm"],
        }


class OptimiserSettings(_Strict):
    """How a run optimises: its optimiser and learning-rate schedule, declared once for every kind of run.

    Pretraining and segmentation inherit these fields and set their own defaults.
    """

    optimizer: Literal["adam", "adamw", "sgd"] = Field(
        "adam", description="adam, adamw, or sgd (Nesterov, with momentum)."
    )
    lr: float = Field(1e-4, gt=0, description="Initial (peak) learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    momentum: float = Field(0.99, ge=0, lt=1, description="SGD momentum (nnU-Net: 0.99).")
    schedule: Literal["plateau", "poly", "cosine", "constant"] = Field(
        "plateau",
        description="plateau (ReduceLROnPlateau on the validation metric that picks the checkpoint, the "
        "paper), or poly, cosine or constant over the step budget, stepped every optimiser step.",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warm-up (poly, cosine, constant).")

    @property
    def per_step(self) -> bool:
        """Whether the schedule steps after every optimiser step (else once an epoch)."""
        return self.schedule != "plateau"


class PretrainSettings(OptimiserSettings):
    """The hyperparameters of pretraining: each declared here once, with its default.

    Presets set their own values; run configs, experiment variants and ``sidepair pretrain``'s options
    are derived from these fields.
    """

    task: PretextTask = Field(
        "side-pair",
        description="side-pair (same side or not), restoration (Models Genesis-style) or contrastive-views "
        "(SimCLR-style NT-Xent on two views of a section).",
    )
    mirror: bool = Field(
        False,
        description="Mirror sections left-right at random (restoration, contrastive-views, and side-pair "
        "half sections, which keep their anatomical side); never for kidney-only sections.",
    )
    corruptions: tuple[Corruption, ...] = Field(
        ("shuffle", "intensity", "inpaint", "outpaint"),
        description="restoration: corruptions drawn from (local pixel shuffling, a non-linear intensity "
        "curve, in-painting, out-painting).",
    )
    restoration_loss: Literal["l2", "l1"] = Field("l2", description="restoration: L2 or L1 loss.")
    temperature: float = Field(0.5, gt=0, description="contrastive-views: NT-Xent temperature.")
    sections: SectionMode = Field(
        "masked", description="Section mode: masked (the paper), bbox, or half (no labels)."
    )
    loss: Literal["contrastive", "bce"] = Field("contrastive", description="contrastive (the paper) or bce.")
    section_size: tuple[int, ...] | None = Field(
        None, description="Section size, one value per axis (repeat the option); the preset's for the mode."
    )
    embedding_dim: int = Field(128, ge=1, description="Size of the projected embedding.")
    margin: float = Field(1.0, gt=0, description="Contrastive margin m.")
    threshold: float = Field(0.75, gt=0, description='Contrastive rule: "same side" when d < threshold.')
    epochs: int = Field(50, ge=1, description="Epochs.")
    batch_size: int = Field(4, ge=1, description="Pairs per batch.")
    pairs_per_epoch: int = Field(256, ge=1, description="Training pairs per epoch.")
    val_pairs: int = Field(256, ge=1, description="Held-out validation pairs.")
    jitter: float = Field(
        0.1, ge=0, description="Random shift of a section's centre, a fraction of its size."
    )
    augment: bool = Field(False, description="On-the-fly MONAI augmentation (rotation, scaling, intensity).")
    side_head: bool = Field(
        False,
        description="side-pair: also learn each section's absolute side (a linear head on the embedding, "
        "trained with the pairs); what check-sides reads. Needs true side labels.",
    )
    export_clip: float = Field(
        0.0,
        ge=0,
        le=1,
        description="side-pair: share of sections whose HU are clipped to a random 8-bit range (a low end "
        "of -160 to 40 HU, 200 to 400 HU wide), as slices exported to PNG are; needs a store normalised "
        "by window.",
    )
    side_labels: Literal["true", "random"] = Field(
        "true",
        description="true: same/different from the sides; random: a seeded, balanced random target per "
        "training pair (the random-target control).",
    )

    @field_validator("side_labels", mode="before")
    @classmethod
    def _yaml_true(cls, v: Any) -> Any:
        return "true" if v is True else v

    @field_validator("corruptions")
    @classmethod
    def _some_corruption(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"give one or more corruptions without repeats, got {list(v)}")
        return v

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch (every task reads ``pairs_per_epoch / batch_size`` batches)."""
        return steps_per_epoch(self.pairs_per_epoch, self.batch_size)

    @model_validator(mode="after")
    def _task_settings(self) -> PretrainSettings:
        if self.mirror and self.task == "side-pair" and self.sections != "half":
            raise ValueError(
                f"mirror: a mirrored {self.sections} section is a kidney of the other side's shape and "
                "would keep its side; only half (context) sections of side-pair may be mirrored"
            )
        if self.side_labels == "random" and self.task != "side-pair":
            raise ValueError(f"side_labels: random is the side-pair control; task {self.task} has no sides")
        if self.export_clip and self.task != "side-pair":
            raise ValueError(f"export_clip: a side-pair setting; task {self.task} does not read it")
        if self.side_head and (self.task != "side-pair" or self.side_labels == "random"):
            raise ValueError("side_head: the absolute side head learns true sides with side-pair pairs only")
        return self


class SegmentSettings(OptimiserSettings):
    """The hyperparameters of segmentation training: each declared here once, with its default.

    Presets set their own values; run configs, the experiment grid and ``sidepair train``'s options are
    derived from these fields.
    """

    labels: LabelMode = Field("kidney", description="Target: kidney, kidney+tumour, or sides (right/left).")
    loss: Literal["dicece", "paper"] = Field(
        "dicece", description="dicece (MONAI DiceCE) or paper (0.2 CE + 0.8 Dice)."
    )
    patch_size: tuple[int, ...] = Field(
        (160, 224, 160), description="Training patch size, one value per axis (repeat the option)."
    )
    epochs: int = Field(100, ge=1, description="Epochs (an epoch is samples_per_epoch patches).")
    steps: int | None = Field(
        None,
        ge=1,
        description="Budget in optimiser steps; when set it replaces epochs (epochs = steps / steps per "
        "epoch, rounded up).",
    )
    batch_size: int = Field(2, ge=1, description="Patches per batch.")
    lr: float = Field(3e-4, gt=0, description="Initial (peak) learning rate.")
    samples_per_epoch: int = Field(250, ge=1, description="Training patches per epoch.")
    foreground_fraction: float = Field(
        0.6, ge=0, le=1, description="Share of patches centred on a kidney voxel."
    )
    augment: bool = Field(False, description="On-the-fly MONAI augmentation (rotation, scaling, intensity).")
    augment_recipe: Literal["light", "strong"] = Field(
        "light",
        description="With augment: light (rotation 15 deg, scaling 10 %, intensity) or strong (nnU-Net's "
        "ranges: rotation 30 deg, scaling 0.7-1.4, noise, blur, brightness, contrast, low resolution, "
        "gamma).",
    )
    mirror: bool = Field(
        False,
        description="Mirror training patches left-right at random (kidney labels: a mirrored kidney is still "
        "a kidney); refused for labels sides.",
    )
    deep_supervision: bool = Field(
        False,
        description="nnU-Net's deep supervision: the decoder's lower stages get output heads, each trained "
        "against labels downsampled to it (weights 1/2^i, normalised; the lowest stage unsupervised). "
        "Prediction reads the full-resolution output alone.",
    )
    validation: Literal["volumes", "patches"] = Field(
        "volumes",
        description="Validation each epoch: per-case Dice of whole validation volumes, or pseudo-Dice of a "
        "fixed set of validation patches drawn once per store (identical for every run; whole volumes are "
        "then scored once, for the chosen checkpoint).",
    )
    val_patches: int = Field(256, ge=1, description="With validation patches: how many.")
    smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Exponential moving average of the validation Dice (nnU-Net: 0.9); it chooses the best "
        "checkpoint and is what the plateau rule reads. 0: the raw curve.",
    )
    plateau_window: int = Field(
        5,
        ge=1,
        description="A plateau: this many epochs without a gain of more than plateau_min_delta in the "
        "(smoothed) validation Dice. Decides the run's convergence flag, and its stop with stop_on_plateau.",
    )
    plateau_min_delta: float = Field(
        0.005, ge=0, description="The smallest validation Dice gain that counts."
    )
    min_epochs: int = Field(
        0, ge=0, description="No run is called converged, or stopped on a plateau, before this many epochs."
    )
    stop_on_plateau: bool = Field(
        False, description="Stop at the first plateau; epochs is then the largest budget."
    )

    @model_validator(mode="after")
    def _check_recipe(self) -> SegmentSettings:
        if self.mirror and self.labels == "sides":
            raise ValueError(
                "mirror: a mirrored right kidney looks like a left one; labels sides cannot be mirrored"
            )
        return self

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch."""
        return steps_per_epoch(self.samples_per_epoch, self.batch_size)


# Speed options of a training run: they change how a step is computed, not what the run is, so they live
# outside ``config.yaml`` (a run can be resumed with other ones) and are recorded in ``run.json``. Every
# option is safe on CPU: bf16 autocast runs there too (slowly), channels-last is a memory layout,
# ``torch.compile`` needs a C++ compiler on CPU, and the cuDNN flag is ignored without CUDA.
Precision = Literal["auto", "bf16", "fp32"]


class Performance(BaseModel):
    """How steps are computed (validated: the command line and experiment configs both build it).

    Attributes:
        precision: ``bf16`` autocast, ``fp32``, or ``auto`` (bf16 on CUDA, fp32 on CPU).
        channels_last: Channels-last memory layout (2D) or channels-last-3d (3D) for the network and
            its inputs (slower for both presets on an H100; see docs/performance.md).
        compile: ``torch.compile`` the training network (once; validation runs uncompiled, since its
            shapes vary).
        cudnn_benchmark: Let cuDNN time its convolution algorithms for the fixed patch shapes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: Precision = Field(
        "auto", description="bf16 autocast, fp32, or auto (bf16 on CUDA, fp32 on CPU)."
    )
    channels_last: bool = Field(
        False, description="Channels-last memory layout for the network and its inputs."
    )
    compile: bool = Field(False, description="torch.compile the training network.")
    cudnn_benchmark: bool = Field(True, description="cuDNN autotuning of convolutions (CUDA).")


def steps_per_epoch(samples_per_epoch: int, batch_size: int) -> int:
    """Optimiser steps in an epoch of ``samples_per_epoch`` patches (the last batch may be short)."""
    return -(-samples_per_epoch // batch_size)


class Preset(_Strict):
    """A named bundle of defaults, from data preparation to segmentation.

    Attributes:
        name: Preset name.
        preprocess: Store settings.
        architecture: Encoder architecture.
        pretrain: Pretraining hyperparameters (``section_size`` is left to the two sizes below).
        section_size: Size of a kidney-centred (masked/bbox) section (3D: z, y, x; 2D: y, x).
        half_section_size: Size of a half-slab section, anchored at the body midline.
        segment: Segmentation hyperparameters.
    """

    name: str
    preprocess: PreprocessSettings = PreprocessSettings()
    architecture: ArchitectureSettings = ArchitectureSettings()
    pretrain: PretrainSettings = PretrainSettings()
    section_size: tuple[int, ...] = (64, 112, 112)
    half_section_size: tuple[int, ...] = (64, 112, 112)
    segment: SegmentSettings = SegmentSettings()

    def section_size_for(self, sections: str) -> tuple[int, ...]:
        """The preset's section size for a section mode."""
        return self.half_section_size if sections == "half" else self.section_size


# The segmentation recipe of the 2D presets, the same for every arm (docs/method.md, "The segmentation
# recipe"): nnU-Net's optimiser and schedule, its augmentation ranges with left-right mirroring (kidney
# labels only), a third of the patches on a kidney, and validation on fixed patches read through a moving
# average.
STRONG_2D: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.99,
    "weight_decay": 3e-5,
    "schedule": "poly",
    "foreground_fraction": 0.33,
    "augment": True,
    "augment_recipe": "strong",
    "mirror": True,
    "validation": "patches",
    "val_patches": 256,
    "smoothing": 0.8,
    "min_epochs": 10,
}

PRESETS: dict[str, Preset] = {
    # The paper's settings: 3D, masked sections, contrastive loss, no augmentation.
    "kits19-paper": Preset(name="kits19-paper"),
    # CPU-sized 2D: coarser in-plane spacing so a half-slice is about 128 x 128.
    "fast-2d": Preset(
        name="fast-2d",
        preprocess=PreprocessSettings(spacing_zyx=(3.0, 2.0, 2.0)),
        architecture=ArchitectureSettings(dims=2, channels=(16, 32, 64, 128, 256), strides=(1, 2, 2, 2, 2)),
        pretrain=PretrainSettings(sections="half", batch_size=32, pairs_per_epoch=768, epochs=8, lr=1e-3),
        # A kidney section fits in 128 mm; a half-slice needs about 256 mm.
        section_size=(64, 64),
        half_section_size=(128, 128),
        segment=SegmentSettings(
            patch_size=(96, 96), batch_size=16, samples_per_epoch=512, **STRONG_2D, steps=1500
        ),
    ),
    # The demo (`make demo`) on 2 CPU cores: a coarse grid (a slice is ~128 x 128), a small encoder,
    # 64 x 64 patches (192 mm, a kidney with its surroundings).
    "demo": Preset(
        name="demo",
        preprocess=PreprocessSettings(spacing_zyx=(5.0, 3.0, 3.0)),
        architecture=ArchitectureSettings(dims=2, channels=(8, 16, 32, 64, 128), strides=(1, 2, 2, 2, 2)),
        pretrain=PretrainSettings(sections="half", batch_size=32, pairs_per_epoch=384, epochs=5, lr=1e-3),
        section_size=(48, 48),
        half_section_size=(64, 64),
        segment=SegmentSettings(
            patch_size=(64, 64),
            batch_size=16,
            samples_per_epoch=512,
            # Measured on the demo's phantom (docs/measurements.md): SGD with momentum 0.99 drove this small
            # network to predicting background everywhere in 240 steps, and with a third of the patches on a
            # kidney one seed in three never crossed 0.5 anywhere; Adam 3e-3 and 0.6 learn. The budget is
            # what decides: at 240 steps every recipe stayed at test Dice 0.5-0.7 with 5 and 21 labelled
            # cases in either order; without augmentation (mirroring only, 1.7x cheaper a step) 960 steps
            # reach 0.85 and 0.95. The phantom's cases come from one generator: augmentation is for patients.
            **{
                **STRONG_2D,
                "optimizer": "adam",
                "lr": 0.003,
                "foreground_fraction": 0.6,
                "augment": False,
                "val_patches": 64,
            },
            epochs=10,
        ),
    ),
    # The laterality (check-sides) model: 2D half-slices of 192 mm at 3 mm, mirrored, with a side head.
    # A fixed HU window scaled to [0, 1] rather than a per-volume z-score, whose statistics move with the
    # field of view (a 512 x 512 scan with much air against a tight abdominal crop).
    "laterality": Preset(
        name="laterality",
        preprocess=PreprocessSettings(
            spacing_zyx=(4.0, 3.0, 3.0), window=(-150.0, 250.0), normalize="window"
        ),
        architecture=ArchitectureSettings(dims=2, channels=(8, 16, 32, 64, 128), strides=(1, 2, 2, 2, 2)),
        pretrain=PretrainSettings(
            sections="half",
            batch_size=32,
            pairs_per_epoch=768,
            epochs=15,
            lr=1e-3,
            loss="bce",
            mirror=True,
            export_clip=0.3,
            side_head=True,
            augment=True,
        ),
        section_size=(48, 48),
        half_section_size=(64, 64),
    ),
}

PresetName = Literal["kits19-paper", "fast-2d", "demo", "laterality"]


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Raises:
        ConfigError: If no preset has that name; the message lists the known ones.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def get_label_map(spec: str | dict[str, Any] | LabelMap | None, default: str = "kits19") -> LabelMap:
    """Resolve a label map from a preset name, a YAML file, a mapping (from YAML) or an instance.

    Raises:
        ConfigError: On an unknown name, a missing file or an invalid mapping, saying which field is wrong.
    """
    if spec is None:
        spec = default
    if isinstance(spec, LabelMap):
        return spec
    if isinstance(spec, str) and spec.endswith((".yaml", ".yml")):
        return validated(LabelMap, load_yaml(spec), spec)
    if isinstance(spec, str):
        if spec not in LABEL_MAPS:
            raise ConfigError(f"unknown label map {spec!r}; known: {', '.join(sorted(LABEL_MAPS))}")
        return LABEL_MAPS[spec]
    return validated(LabelMap, spec, "label_map")


def validated(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    """Build ``model`` from ``data``; turn pydantic's report into a one-line :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            if err["loc"]
            else f"{where}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(problems) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a one-line error naming the file on failure."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def optional_fields(settings: type[BaseModel]) -> dict[str, Any]:
    """Every field of ``settings`` as an optional override (default None, "keep the preset's").

    For :func:`pydantic.create_model`: the experiment YAML's variants and grid take these.
    """
    return {
        name: (field.annotation | None, Field(None, description=field.description))
        for name, field in settings.model_fields.items()
    }


def overrides_model(name: str, settings: type[BaseModel], base: type[BaseModel], doc: str) -> type[BaseModel]:
    """A model holding ``base``'s own fields plus every field of ``settings`` as an optional override."""
    model = create_model(name, __base__=base, **optional_fields(settings))
    model.__doc__ = doc
    return model


def set_fields(model: BaseModel) -> dict[str, Any]:
    """The fields of an override model that are set (not None)."""
    return {k: v for k, v in model.model_dump().items() if v is not None}

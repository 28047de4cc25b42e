"""Typed, validated configuration: label maps, preprocessing settings and named presets.

Values are checked when a config is built, so a bad YAML file or flag fails early with a message that
says which field is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sidepair.errors import ConfigError

Side = Literal["right", "left"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelMap(_Strict):
    """Which label values mean kidney, tumour and (where the source says) which side.

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
    """

    kidney: tuple[int, ...] = (1, 2)
    tumour: tuple[int, ...] = (2,)
    right: tuple[int, ...] = ()
    left: tuple[int, ...] = ()
    other: Literal["error", "background"] = "error"
    structures: dict[Literal["right", "left", "kidney", "tumour"], str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> LabelMap:
        if set(self.right) & set(self.left):
            raise ValueError(f"values {sorted(set(self.right) & set(self.left))} are both right and left")
        if 0 in set(self.kidney) | set(self.tumour) | set(self.right) | set(self.left):
            raise ValueError("0 is background and cannot be a kidney, tumour or side value")
        if not (self.kidney or self.right or self.left or self.structures):
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


class PreprocessSettings(_Strict):
    """How ``prepare`` turns a CT into store arrays.

    Attributes:
        spacing_zyx: Target voxel size in mm (z, y, x), the paper's order; ``None`` keeps an axis.
        window: HU clip range before normalisation (the paper: [-79, 304]).
        normalize: ``"zscore"`` per volume after clipping (the paper), or ``"window"`` to [0, 1].
        dtype: Storage dtype of the image array.
    """

    spacing_zyx: tuple[float | None, float | None, float | None] = (3.22, 1.62, 1.62)
    window: tuple[float, float] = (-79.0, 304.0)
    normalize: Literal["zscore", "window"] = "zscore"
    dtype: Literal["float16", "float32"] = "float16"

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
        payload = {"preprocess": self.model_dump(mode="json"), **(extra or {})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


class Preset(_Strict):
    """A named bundle of defaults, from data preparation to the proxy task.

    Attributes:
        name: Preset name.
        preprocess: Store settings.
        dims: 2 (axial slices) or 3 (half-volume patches).
        sections: Section mode for the side-pair task.
        loss: Side-pair loss.
        section_size: Size of a kidney-centred (masked/bbox) section (3D: z, y, x; 2D: y, x).
        half_section_size: Size of a half-slab section, anchored at the body midline.
        augment: Whether on-the-fly augmentation is on.
        channels: Encoder channels per stage.
        strides: Encoder strides per stage (a tuple per axis for anisotropic steps).
        batch_size: Pairs (pretraining) per batch.
        pairs_per_epoch: Training pairs drawn per epoch.
        epochs: Pretraining epochs.
        lr: Pretraining learning rate (Adam).
        seg_patch_size: Segmentation training patch (the paper: 160 x 224 x 160 per half-volume).
        seg_epochs: Segmentation epochs.
        seg_batch_size: Segmentation batch size.
        seg_lr: Segmentation learning rate (Adam; the paper used 1e-4 to 5e-4).
        seg_samples: Training patches per segmentation epoch.
    """

    name: str
    preprocess: PreprocessSettings = PreprocessSettings()
    dims: Literal[2, 3] = 3
    sections: Literal["masked", "bbox", "half"] = "masked"
    loss: Literal["contrastive", "bce"] = "contrastive"
    section_size: tuple[int, ...] = (64, 112, 112)
    half_section_size: tuple[int, ...] = (64, 112, 112)
    augment: bool = False
    channels: tuple[int, ...] = (32, 64, 128, 256, 320)
    strides: tuple[int | tuple[int, ...], ...] = (1, (1, 2, 2), 2, 2, 2)
    batch_size: int = 4
    pairs_per_epoch: int = 256
    epochs: int = 50
    lr: float = 1e-4
    seg_patch_size: tuple[int, ...] = (160, 224, 160)
    seg_epochs: int = 100
    seg_batch_size: int = 2
    seg_lr: float = 3e-4
    seg_samples: int = 250


PRESETS: dict[str, Preset] = {
    # The paper's settings: 3D, masked sections, contrastive loss, no augmentation.
    "kits19-paper": Preset(name="kits19-paper"),
    # CPU-sized 2D: coarser in-plane spacing so a half-slice is about 128 x 128.
    "fast-2d": Preset(
        name="fast-2d",
        preprocess=PreprocessSettings(spacing_zyx=(3.0, 2.0, 2.0)),
        dims=2,
        sections="half",
        # A kidney section fits in 128 mm; a half-slice needs about 256 mm.
        section_size=(64, 64),
        half_section_size=(128, 128),
        channels=(16, 32, 64, 128, 256),
        strides=(1, 2, 2, 2, 2),
        batch_size=32,
        pairs_per_epoch=768,
        epochs=8,
        lr=1e-3,
        seg_patch_size=(96, 96),
        seg_epochs=25,
        seg_batch_size=16,
        seg_lr=3e-3,
        seg_samples=512,
    ),
    # The README's demo on 2 CPU cores: a coarse grid (a slice is ~128 x 128), a small encoder,
    # 64 x 64 patches (192 mm, a kidney with its surroundings).
    "demo": Preset(
        name="demo",
        preprocess=PreprocessSettings(spacing_zyx=(5.0, 3.0, 3.0)),
        dims=2,
        sections="half",
        section_size=(48, 48),
        half_section_size=(64, 64),
        channels=(8, 16, 32, 64, 128),
        strides=(1, 2, 2, 2, 2),
        batch_size=32,
        pairs_per_epoch=384,
        epochs=5,
        lr=1e-3,
        seg_patch_size=(64, 64),
        seg_epochs=10,
        seg_batch_size=16,
        seg_lr=3e-3,
        seg_samples=512,
    ),
}


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
    """Resolve a label map from a preset name, a mapping (from YAML) or an instance.

    Raises:
        ConfigError: On an unknown name or an invalid mapping, saying which field is wrong.
    """
    if spec is None:
        spec = default
    if isinstance(spec, LabelMap):
        return spec
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


class EncoderFields(BaseModel):
    """Encoder architecture fields shared by pretraining and segmentation configs."""

    model_config = ConfigDict(extra="forbid")

    dims: Literal[2, 3]
    channels: tuple[int, ...]
    strides: tuple[int | tuple[int, ...], ...]
    norm: str = "instance"

    @model_validator(mode="after")
    def _check_architecture(self) -> EncoderFields:
        for s in self.strides:
            if not isinstance(s, int) and len(s) != self.dims:
                raise ValueError(f"stride {s} must have {self.dims} values for dims={self.dims}")
        if len(self.channels) != len(self.strides):
            raise ValueError(f"channels {self.channels} and strides {self.strides} differ in length")
        return self

    def encoder_config(self) -> dict[str, Any]:
        """Arguments of the :class:`~sidepair.models.Encoder` (saved in checkpoints to rebuild it)."""
        return {
            "spatial_dims": self.dims,
            "in_channels": 1,
            "channels": list(self.channels),
            "strides": [s if isinstance(s, int) else list(s) for s in self.strides],
            "norm": self.norm,
        }


def write_run_config(out: Path, config: BaseModel, resume: bool) -> None:
    """Write ``out/config.yaml``; on ``resume`` first refuse settings other than the run's own.

    Raises:
        ConfigError: When resuming with different settings, or when ``out`` already holds a run and
            ``resume`` is not set.
    """
    from sidepair.atomic import write_text

    resolved = json.loads(config.model_dump_json())
    saved = out / "config.yaml"
    if not resume and any(out.glob("checkpoint_*.pt")):
        # Checked before anything is written: the run's own config.yaml and run.json must stay its own.
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    if resume and saved.exists() and yaml.safe_load(saved.read_text(encoding="utf-8")) != resolved:
        raise ConfigError(
            f"{saved}: --resume with settings other than the run's own; rerun with the same options"
        )
    from sidepair.training.distributed import is_main_process

    if is_main_process():  # under torchrun, rank 0 writes the run folder
        out.mkdir(parents=True, exist_ok=True)
        write_text(saved, yaml.safe_dump(resolved, sort_keys=False))

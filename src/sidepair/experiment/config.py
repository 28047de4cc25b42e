"""The experiment YAML: data, proxy variants, segmentation grid, evaluation, parallelism.

A config names a preset for its defaults and overrides what it needs. Bundled configs live in
``sidepair/configs`` (``configs/`` in the repository) and can be named without a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sidepair.choices import DEFAULT_RESAMPLE, Resample, check_device_name
from sidepair.config import (
    Performance,
    PretrainSettings,
    SegmentSettings,
    check_architecture,
    get_preset,
    load_yaml,
    overrides_model,
    validated,
)
from sidepair.errors import ConfigError

InitMode = Literal["scratch", "finetune", "frozen", "frozen-then-unfrozen"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhantomData(_Strict):
    """Generate the built-in phantom as the experiment's data."""

    cases: int = Field(20, ge=6)
    seed: int = 0
    shape: tuple[int, int, int] = (256, 256, 100)
    masks_from: str | None = None
    layout: Literal["kits", "slices"] = "kits"
    slices_per_case: int = Field(4, ge=1)


class DataConfig(_Strict):
    """Where the data is: dataset folders (combined into one store), or the phantom."""

    paths: list[str] = []
    format: str = "auto"
    label_map: str | dict[str, Any] | None = None
    phantom: PhantomData | None = None
    # Slice folders: the PNGs' left-right convention (without axis codes in slices.json), the pixel
    # value to HU mapping (slope, intercept) and the pixel spacing in mm (without one in slices.json).
    convention: Literal["radiological", "neurological"] = "radiological"
    intensity: tuple[float, float] | None = None
    pixel_spacing: float | None = Field(default=None, gt=0)
    # Keep labelled 3D scans without kidney as negatives (slices without kidney always are).
    accept_negatives: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if bool(self.paths) == (self.phantom is not None):
            raise ValueError("give either data.paths (dataset folders) or data.phantom, not both or neither")
        return self


class PrepareConfig(_Strict):
    """Store settings beyond the preset's: spacing, window and anti-aliasing overrides, the split."""

    spacing_zyx: tuple[float | None, float | None, float | None] | None = None
    window: tuple[float, float] | None = None
    antialias: bool | None = None
    split_seed: int = 0
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)


class _VariantBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    # matched: one pretraining per (fraction, seed) from exactly that segmentation run's labelled cases, so
    # the SSL arm reads no more labels than the scratch arm; all: the masks of every labelled training case.
    mask_cases: Literal["all", "matched"] = "all"


# One pretraining run: its name and seed, and any pretraining hyperparameter (unset keeps the preset's).
ProxyVariant = overrides_model(
    "ProxyVariant",
    PretrainSettings,
    _VariantBase,
    "One proxy-task pretraining run; every field of PretrainSettings may be set, unset keeps the preset's.",
)


class _GridBase(_Strict):
    inits: list[InitMode] = ["scratch", "finetune"]
    transfer_from: list[str] | None = None
    unfreeze_after: int = 5
    fractions: list[float] = [0.1, 0.25, 1.0]
    seeds: list[int] = [0, 1, 2]

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f <= 1 for f in v):
            raise ValueError(f"fractions must be in (0, 1], got {v}")
        return sorted(set(v))

    @field_validator("seeds", "inits")
    @classmethod
    def _nonempty(cls, v: list) -> list:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must be a non-empty list without repeats, got {v}")
        return v


# The segmentation runs: every init x label fraction x seed, and any segmentation hyperparameter.
SegmentationGrid = overrides_model(
    "SegmentationGrid",
    SegmentSettings,
    _GridBase,
    "The segmentation runs (every init x label fraction x seed); every field of SegmentSettings may be "
    "set, unset keeps the preset's.",
)


class EvaluationConfig(_Strict):
    """Which split the test metrics come from, which checkpoint is scored, how predictions go back."""

    split: Literal["val", "test"] = "test"
    checkpoint: Literal["best", "last"] = "best"
    resample: Resample = DEFAULT_RESAMPLE


class SlurmSettings(_Strict):
    """What each job asks of a SLURM cluster (``executor: slurm``): one job per run.

    Attributes:
        partition: The partition (default: the cluster's).
        time_min: Time limit per job, minutes; a job that reaches it is requeued and resumes.
        gpus_per_job: GPUs per job.
        cpus_per_job: CPU cores per job (also its torch threads).
        mem_gb: Memory per job, GB.
    """

    partition: str | None = None
    time_min: int = Field(240, ge=1)
    gpus_per_job: int = Field(1, ge=0)
    cpus_per_job: int = Field(4, ge=1)
    mem_gb: float = Field(32.0, gt=0)


class ReferenceArm(_Strict):
    """nnU-Net's network and plans trained from scratch by the experiment's recipe: a reference row.

    Its runs (``nnunet-scratch`` in the report) read a second store, preprocessed as nnU-Net's plans say,
    with the same split and the same labelled cases at each fraction and seed as every other arm; only
    the network and its preprocessing differ from scratch. Needs the ``[nnunet]`` extra.

    Attributes:
        plans: nnU-Net plans file (``nnUNetPlans.json`` from nnU-Net's planner run on this dataset; a path
            relative to the config is looked up beside it first).
        configuration: The plans' configuration, of the preset's dimensionality (``2d``, ``3d_fullres``).
    """

    plans: str
    configuration: str


class ExperimentConfig(_Strict):
    """A whole experiment (written resolved to ``DIR/experiment.yaml``).

    Attributes:
        name: Short name, used in titles.
        description: Free text for the report.
        preset: Defaults for everything not set here.
        data: Dataset folders or the phantom.
        prepare: Store settings.
        pretrain: The proxy variants, each pretrained once.
        segmentation: The grid of segmentation runs.
        evaluation: Test split and statistics.
        jobs: Runs trained at the same time (processes) on ``device``; 2 suits 2 CPU cores.
        threads_per_job: Torch threads per job (default: CPU cores / jobs).
        device: auto, cpu or cuda.
        devices: Several devices (``cuda:0``, ``cuda:1``, ...): runs are spread over them, each run on one,
            ``runs_per_device`` at a time on each; ``jobs`` and ``device`` are then unused.
        runs_per_device: With ``devices``: runs trained at the same time on each device.
        executor: ``local`` (this machine: in process, or worker processes per device slot), ``slurm`` (one
            submitit job per run on a SLURM cluster) or ``submitit-local`` (the same jobs as processes on
            this machine, through submitit's local executor: a dry run of ``slurm``).
        slurm: What each job asks of the cluster (``slurm``, ``submitit-local``).
        performance: Speed options of the training runs (bf16, channels-last, compile, cuDNN).
        primary: The side-pair variant named in advance as the one every other variant is also compared
            with (paired per test patient), never chosen after seeing the test set.
        architecture: ``monai`` (sidepair's U-Net) or ``nnunet``: nnU-Net's network from ``plans`` and
            ``configuration``, on nnU-Net's preprocessing, for every pretraining and segmentation run.
        plans: nnU-Net plans file (a path relative to the config is looked up beside it first).
        configuration: nnU-Net configuration of the plans (``2d`` for a 2D preset).
        reference: An optional reference row: nnU-Net's network and plans from scratch, by the same recipe
            (:class:`ReferenceArm`).
    """

    name: str
    description: str = ""
    preset: str
    data: DataConfig
    prepare: PrepareConfig = PrepareConfig()
    pretrain: list[ProxyVariant] = []  # type: ignore[valid-type]
    segmentation: SegmentationGrid = SegmentationGrid()  # type: ignore[valid-type]
    evaluation: EvaluationConfig = EvaluationConfig()
    jobs: int = Field(1, ge=1)
    threads_per_job: int | None = Field(None, ge=1)
    device: str = "auto"
    devices: list[str] | None = None
    runs_per_device: int = Field(1, ge=1)
    executor: Literal["local", "slurm", "submitit-local"] = "local"
    slurm: SlurmSettings = SlurmSettings()
    performance: Performance = Performance()
    primary: str | None = None
    architecture: Literal["monai", "nnunet"] = "monai"
    plans: str | None = None
    configuration: str | None = None
    reference: ReferenceArm | None = None

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        try:
            get_preset(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device_name(v)

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("give one or more devices, e.g. cuda:0,cuda:1")
        return [check_device_name(d) for d in v] if v is not None else None

    def device_slots(self) -> list[str]:
        """One entry per run trained at the same time: the device it trains on."""
        if self.devices is None:
            return [self.device] * self.jobs
        return [d for d in self.devices for _ in range(self.runs_per_device)]

    @model_validator(mode="after")
    def _architecture(self) -> ExperimentConfig:
        check_architecture(self.architecture, self.plans, self.configuration)
        if self.reference is not None and self.architecture == "nnunet":
            raise ValueError("reference is nnU-Net's network from scratch; every run here already uses it")
        return self

    def architecture_fields(self) -> dict[str, Any]:
        """The architecture settings every run of the experiment gets (none for the default)."""
        if self.architecture == "monai":
            return {}
        return {"architecture": "nnunet", "plans": self.plans, "configuration": self.configuration}

    def reference_fields(self) -> dict[str, Any]:
        """The architecture settings of the reference arm's runs: nnU-Net's network from its plans."""
        if self.reference is None:
            return {}
        return {
            "architecture": "nnunet",
            "plans": self.reference.plans,
            "configuration": self.reference.configuration,
        }

    @model_validator(mode="after")
    def _transfer(self) -> ExperimentConfig:
        names = [v.name for v in self.pretrain]
        if len(set(names)) != len(names):
            raise ValueError(f"pretrain variant names repeat: {names}")
        ssl = [i for i in self.segmentation.inits if i != "scratch"]
        if ssl and not names:
            raise ValueError(f"inits {ssl} need at least one pretrain variant")
        if "scratch" not in self.segmentation.inits:
            raise ValueError("segmentation.inits must hold scratch: every comparison is against it")
        unknown = sorted(set(self.segmentation.transfer_from or []) - set(names))
        if unknown:
            raise ValueError(f"transfer_from names {unknown}, but the pretrain variants are {names}")
        if self.primary is not None:
            if self.primary not in self.transfer_variants():
                raise ValueError(
                    f"primary {self.primary!r} is not a variant that segmentation transfers from "
                    f"({', '.join(self.transfer_variants()) or 'none'})"
                )
            variant = next(v for v in self.pretrain if v.name == self.primary)
            if (variant.task or "side-pair") != "side-pair" or variant.side_labels == "random":
                raise ValueError(
                    f"primary {self.primary!r} must be a side-pair variant with true side targets"
                )
        return self

    def transfer_variants(self) -> list[str]:
        """The proxy variants whose encoders start segmentation runs."""
        if self.segmentation.transfer_from is not None:
            return list(self.segmentation.transfer_from)
        return [v.name for v in self.pretrain]


def bundled_configs() -> dict[str, Path]:
    """The configs shipped with sidepair, by name (``demo``, ``kits19-2d``, ``kits19-paper-3d``)."""
    folder = resources.files("sidepair") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def load_experiment_config(spec: str | Path, data: list[str] | None = None) -> ExperimentConfig:
    """Read and validate an experiment YAML (a path, or the name of a bundled config).

    Args:
        spec: File path or bundled config name.
        data: Dataset folders replacing the config's ``data.paths`` (e.g. where KiTS19 lives here).

    Raises:
        ConfigError: A missing file or an invalid field, named.
    """
    path = Path(spec)
    if not path.exists() and str(spec) in bundled_configs():
        path = bundled_configs()[str(spec)]
    elif not path.exists():
        raise ConfigError(f"{spec}: file not found (bundled configs: {', '.join(sorted(bundled_configs()))})")
    raw = load_yaml(path)
    if data:
        raw.setdefault("data", {})
        raw["data"] = {**{k: v for k, v in raw["data"].items() if k != "phantom"}, "paths": list(data)}
    label_map = raw.get("data", {}).get("label_map")
    if isinstance(label_map, str) and label_map.endswith((".yaml", ".yml")) and not Path(label_map).exists():
        beside = path.parent / label_map  # a colours file kept next to the config
        if beside.exists():
            raw["data"]["label_map"] = str(beside)
    raw["plans"] = _plans_path(raw.get("plans"), path.parent)
    if isinstance(raw.get("reference"), dict):
        raw["reference"]["plans"] = _plans_path(raw["reference"].get("plans"), path.parent)
    return validated(ExperimentConfig, raw, path.name)


def _plans_path(plans: Any, folder: Path) -> Any:
    """A plans path made absolute: beside the config where it is there, else from the working folder."""
    if isinstance(plans, str) and not Path(plans).is_absolute() and (folder / plans).exists():
        return str((folder / plans).resolve())
    if isinstance(plans, str):
        return str(Path(plans).resolve())
    return plans

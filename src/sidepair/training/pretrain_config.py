"""The resolved settings of one pretraining run, and which labels a label-matched run may read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from sidepair.config import ArchitectureSettings, PresetName, PretrainSettings, validated
from sidepair.data.store import Store
from sidepair.errors import ConfigError
from sidepair.training.run_defaults import nnunet_defaults, preset_defaults


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
        if self.architecture == "nnunet" and self.task != "side-pair":
            raise ValueError(f"architecture nnunet pretrains the side-pair task only, not {self.task}")
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
    p, base = preset_defaults(preset, store, "pretrain")
    given = {k: v for k, v in overrides.items() if v is not None}
    derived = nnunet_defaults(store, given)
    sections = given.get("sections", p.pretrain.sections)
    base["section_size"] = p.section_size_for(sections)
    dims = given.get("dims", derived.get("dims"))
    if dims is not None and dims != p.architecture.dims and "section_size" not in given:
        if "dims" not in given and dims == 2:  # nnU-Net's 2d configuration on a 3D preset: in-plane sections
            base["section_size"] = tuple(base["section_size"][-2:])
        else:
            raise ConfigError(
                f"--dims {dims} differs from preset {base['preset']} (dims {p.architecture.dims}); "
                "give --section-size too, or pick a preset with those dims"
            )
    return validated(PretrainConfig, {**base, **derived, **given}, "pretrain")


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

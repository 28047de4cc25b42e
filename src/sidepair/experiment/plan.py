"""The experiment's plan: which pretraining runs and segmentation runs it makes, and what each is called.

A proxy variant with ``mask_cases: matched`` (and sections cut from labels) is pretrained once per
distinct labelled subset of the segmentation grid: the run at fraction f and seed s transfers from the
pretraining whose sections come from exactly its own labelled cases. Equal subsets (every seed at fraction
1, say) share one pretraining, named by the subset's hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sidepair.config import get_preset
from sidepair.data.splits import select_fraction
from sidepair.data.store import Store
from sidepair.experiment.config import ExperimentConfig

# The report's row of the reference arm (``reference`` in the config): nnU-Net's network from scratch.
REFERENCE = "nnunet-scratch"


@dataclass(frozen=True)
class PretrainSpec:
    """One pretraining run.

    Attributes:
        name: Folder under ``DIR/pretrain`` (``<variant>`` or ``<variant>/cases-<hash>``).
        variant: The proxy variant.
        label_cases: The cases whose masks cut its training sections (None: every labelled training case).
    """

    name: str
    variant: str
    label_cases: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RunSpec:
    """One segmentation run of the grid.

    Attributes:
        name: Folder name under ``DIR/runs``.
        init: ``scratch`` or ``ssl-<variant>[-frozen|-unfrozen]``: the row label in the report.
        mode: scratch, finetune, frozen or frozen-then-unfrozen.
        variant: The proxy variant whose encoder starts the run (None for scratch).
        fraction: Label fraction.
        seed: Seed.
        pretrain: The :class:`PretrainSpec` name it transfers from (None for scratch).
    """

    name: str
    init: str
    mode: str
    variant: str | None
    fraction: float
    seed: int
    pretrain: str | None = None


def init_label(mode: str, variant: str | None) -> str:
    """The report's name of an initialisation."""
    if mode == "scratch":
        return "scratch"
    suffix = {"finetune": "", "frozen": "-frozen", "frozen-then-unfrozen": "-unfrozen"}[mode]
    return f"ssl-{variant}{suffix}"


def _matched(config: ExperimentConfig, variant: str) -> bool:
    v = next(v for v in config.pretrain if v.name == variant)
    sections = v.sections or config_preset_sections(config)
    return v.mask_cases == "matched" and sections != "half"


def config_preset_sections(config: ExperimentConfig) -> str:
    """The section mode a variant without ``sections`` gets: the preset's."""
    return str(get_preset(config.preset).pretrain.sections)


def subset_name(variant: str, cases: tuple[str, ...]) -> str:
    """The folder of a label-matched pretraining: the variant and a hash of its cases."""
    digest = hashlib.sha256("\n".join(sorted(cases)).encode()).hexdigest()[:8]
    return f"{variant}/cases-{digest}"


def _pretrain_of(
    config: ExperimentConfig, store: Store, variant: str, fraction: float, seed: int
) -> PretrainSpec:
    if not _matched(config, variant):
        return PretrainSpec(variant, variant)
    cases = tuple(select_fraction(store.labelled("train"), fraction, seed))
    return PretrainSpec(subset_name(variant, cases), variant, cases)


def plan_runs(config: ExperimentConfig, store: Store | None = None) -> list[RunSpec]:
    """Every segmentation run, ordered by fraction, seed, then init (so a partial grid is balanced).

    With a ``reference`` arm, each fraction and seed ends with its :data:`REFERENCE` run.
    """
    grid = config.segmentation
    inits: list[tuple[str, str, str | None]] = []  # the row's label, its mode, its variant
    for mode in grid.inits:
        variants = [None] if mode == "scratch" else config.transfer_variants()
        inits += [(init_label(mode, v), mode, v) for v in variants]
    if config.reference is not None:
        inits.append((REFERENCE, "scratch", None))
    runs = []
    for fraction in grid.fractions:
        for seed in grid.seeds:
            for label, mode, variant in inits:
                pretrain = (
                    None if variant is None else _pretrain_of(config, store, variant, fraction, seed).name
                )
                runs.append(
                    RunSpec(f"{label}_f{fraction:g}_s{seed}", label, mode, variant, fraction, seed, pretrain)
                )
    return runs


def plan_pretraining(config: ExperimentConfig, store: Store | None = None) -> list[PretrainSpec]:
    """Every pretraining run: one per variant, or one per distinct labelled subset for matched ones."""
    specs: dict[str, PretrainSpec] = {}
    transfer = set(config.transfer_variants())
    for v in config.pretrain:
        if v.name not in transfer or not _matched(config, v.name):
            specs.setdefault(v.name, PretrainSpec(v.name, v.name))
            continue
        for fraction in config.segmentation.fractions:
            for seed in config.segmentation.seeds:
                spec = _pretrain_of(config, store, v.name, fraction, seed)
                specs.setdefault(spec.name, spec)
    return list(specs.values())

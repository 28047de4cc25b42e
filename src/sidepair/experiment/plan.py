"""The experiment's plan: which segmentation runs the grid makes, and what each is called."""

from __future__ import annotations

from dataclasses import dataclass

from sidepair.experiment.config import ExperimentConfig


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
    """

    name: str
    init: str
    mode: str
    variant: str | None
    fraction: float
    seed: int


def init_label(mode: str, variant: str | None) -> str:
    """The report's name of an initialisation."""
    if mode == "scratch":
        return "scratch"
    suffix = {"finetune": "", "frozen": "-frozen", "frozen-then-unfrozen": "-unfrozen"}[mode]
    return f"ssl-{variant}{suffix}"


def plan_runs(config: ExperimentConfig) -> list[RunSpec]:
    """Every segmentation run, ordered by fraction, seed, then init (so a partial grid is balanced)."""
    grid = config.segmentation
    inits: list[tuple[str, str | None]] = []
    for mode in grid.inits:
        variants = [None] if mode == "scratch" else config.transfer_variants()
        inits += [(mode, v) for v in variants]
    runs = []
    for fraction in grid.fractions:
        for seed in grid.seeds:
            for mode, variant in inits:
                label = init_label(mode, variant)
                runs.append(RunSpec(f"{label}_f{fraction:g}_s{seed}", label, mode, variant, fraction, seed))
    return runs

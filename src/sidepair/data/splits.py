"""Splits by case group (a patient), never by slice; deterministic for a seed."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def make_splits(
    groups: Iterable[tuple[str, str, bool]],
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
) -> dict[str, list[str]]:
    """Split cases into train / val / test by group.

    Args:
        groups: ``(case_id, group, labelled)`` per case. All cases of a group land in one split.
        seed: Shuffling seed; the same seed and cases give the same split.
        val_fraction: Fraction of labelled groups for validation.
        test_fraction: Fraction of labelled groups for testing.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` of case ids (sorted). Groups with no labelled
        case go to train only (pretraining uses them). With fewer than 3 labelled groups, val and test
        stay empty.
    """
    by_group: dict[str, list[str]] = {}
    labelled: dict[str, bool] = {}
    for case_id, group, has_label in groups:
        by_group.setdefault(group, []).append(case_id)
        labelled[group] = labelled.get(group, False) or has_label
    names = sorted(g for g in by_group if labelled[g])
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    n = len(shuffled)
    n_test = max(1, round(test_fraction * n)) if n >= 3 and test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * n)) if n >= 3 and val_fraction > 0 else 0
    test, val = shuffled[:n_test], shuffled[n_test : n_test + n_val]
    train = shuffled[n_test + n_val :] + sorted(g for g in by_group if not labelled[g])
    return {
        name: sorted(c for g in chosen for c in by_group[g])
        for name, chosen in (("train", train), ("val", val), ("test", test))
    }


def hold_out_groups(
    case_groups: dict[str, str], seed: int = 0, fraction: float = 0.15
) -> tuple[list[str], list[str]]:
    """Split cases into (kept, held out) by group: about ``fraction`` of the groups, at least one.

    For annotation-free pretraining on a store without labelled patients, whose split has no
    validation cases: its held-out sections come from these unlabelled patients instead.

    Args:
        case_groups: Case id -> group (patient).
        seed: Shuffling seed.
        fraction: Share of the groups held out.

    Returns:
        The kept and the held-out case ids (sorted); nothing held out with fewer than 2 groups.
    """
    names = sorted(set(case_groups.values()))
    if len(names) < 2:
        return sorted(case_groups), []
    order = np.random.default_rng([seed, 5113]).permutation(len(names))
    held = {names[i] for i in order[: max(1, round(fraction * len(names)))]}
    kept = sorted(c for c, g in case_groups.items() if g not in held)
    return kept, sorted(c for c, g in case_groups.items() if g in held)


def select_fraction(case_ids: list[str], fraction: float, seed: int) -> list[str]:
    """A deterministic subset of ``ceil(fraction * n)`` cases (at least 1).

    The order is a fixed permutation of the sorted ids for the seed, so smaller fractions are nested
    in larger ones, and scratch and transfer runs at the same seed and fraction get the same cases.
    """
    ordered = sorted(case_ids)
    order = np.random.default_rng([seed, 104729]).permutation(len(ordered))
    k = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return sorted(ordered[i] for i in order[:k])

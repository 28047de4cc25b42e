"""Label maps applied: any source's label values become kidney / tumour, plus declared sides.

Canonical labels used everywhere after reading: 0 background, 1 kidney, 2 tumour (tumour lies inside
the kidney region: "kidney" for the kidney task means label > 0). Side codes: 1 right, 2 left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sidepair.config import LabelMap
from sidepair.errors import DataError

BACKGROUND, KIDNEY, TUMOUR = 0, 1, 2
NO_SIDE, RIGHT, LEFT = 0, 1, 2
SIDE_CODES = {"right": RIGHT, "left": LEFT}
SIDE_NAMES = {RIGHT: "right", LEFT: "left"}


@dataclass
class CaseLabels:
    """A case's labels in canonical form.

    Attributes:
        label: uint8 array, 0 background, 1 kidney, 2 tumour.
        declared_side: uint8 array of side codes where the source states the side itself, else None.
    """

    label: np.ndarray
    declared_side: np.ndarray | None = None


def _lookup(size: int, assignments: tuple[tuple[Iterable[int], int], ...]) -> np.ndarray:
    """A value -> code table; later assignments win."""
    lut = np.zeros(size, dtype=np.uint8)
    for values, code in assignments:
        for v in values:
            if v < size:
                lut[v] = code
    return lut


def map_label_values(values: np.ndarray, label_map: LabelMap, source: str | Path) -> CaseLabels:
    """Translate a label array through ``label_map``.

    Args:
        values: Integer label array.
        label_map: Which values are kidney, tumour, right or left.
        source: File named in errors.

    Returns:
        Canonical labels; ``declared_side`` is set when the map has right/left values.

    Raises:
        DataError: If a non-zero value is in no list and the map says ``other="error"``.
    """
    present = np.unique(values)
    known = label_map.kidney_values | {0}
    unknown = sorted(int(v) for v in present if int(v) not in known)
    if unknown and label_map.other == "error":
        raise DataError(
            source,
            f"label values {unknown} are outside the label map (kidney {list(label_map.kidney)}, "
            f"tumour {list(label_map.tumour)}, right {list(label_map.right)}, left {list(label_map.left)})",
        )
    # A lookup table keeps this one pass over the (possibly huge) label array.
    size = int(max(present.max(initial=0), 0)) + 1
    label = _lookup(size, ((label_map.kidney_values, KIDNEY), (label_map.tumour, TUMOUR)))[values]
    declared = None
    if label_map.right or label_map.left:
        declared = _lookup(size, ((label_map.right, RIGHT), (label_map.left, LEFT)))[values]
    return CaseLabels(label, declared)


def merge_structure_masks(masks: dict[str, np.ndarray]) -> CaseLabels:
    """Combine per-structure masks (TotalSegmentator layout) into canonical labels.

    Args:
        masks: Role (``right``, ``left``, ``kidney``, ``tumour``) -> binary array, all one grid.

    Returns:
        Canonical labels; ``declared_side`` is set when right or left masks are given.
    """
    shape = next(iter(masks.values())).shape
    label = np.zeros(shape, dtype=np.uint8)
    declared = np.zeros(shape, dtype=np.uint8) if {"right", "left"} & set(masks) else None
    for role in ("kidney", "right", "left"):
        if role in masks:
            label[masks[role] > 0] = KIDNEY
    if declared is not None:
        for role in ("right", "left"):
            if role in masks:
                declared[masks[role] > 0] = SIDE_CODES[role]
    if "tumour" in masks:
        label[masks["tumour"] > 0] = TUMOUR
    return CaseLabels(label, declared)

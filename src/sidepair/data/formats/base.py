"""The interface every dataset reader shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sidepair.config import LABEL_MAPS, LabelMap
from sidepair.data.labels import CaseLabels, map_label_values, merge_structure_masks
from sidepair.data.volume import Volume, check_same_grid, load_nifti
from sidepair.errors import DataError


@dataclass(frozen=True)
class CaseSource:
    """Where one case's files are; nothing is read until :meth:`DatasetFormat.load`.

    Attributes:
        case_id: Unique id within the dataset.
        image: Image file (NIfTI, PNG) or folder (DICOM series).
        label: Label file, or None for unlabelled cases.
        structures: Role -> per-structure mask file (TotalSegmentator layout).
        group: The unit of splitting (a patient): slices of one patient share a group.
        extra: Format-specific metadata (PNG spacing and axis codes, DICOM series id).
    """

    case_id: str
    image: Path
    label: Path | None = None
    structures: dict[str, Path] = field(default_factory=dict)
    group: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def labelled(self) -> bool:
        """Whether this case has a label or per-structure masks."""
        return self.label is not None or bool(self.structures)

    @property
    def files(self) -> list[Path]:
        """Every file this case reads, for change detection."""
        out = [self.image] + ([self.label] if self.label else []) + list(self.structures.values())
        return [p for p in out if p is not None]


@dataclass
class LoadedCase:
    """One case read, checked and in RAS+ orientation.

    Attributes:
        source: Where it came from.
        image: CT in HU.
        labels: Canonical labels on the image's grid, or None when unlabelled.
    """

    source: CaseSource
    image: Volume
    labels: CaseLabels | None


class DatasetFormat(ABC):
    """A dataset layout on disk: finds its cases and reads them.

    Args:
        root: The dataset folder.
        label_map: Overrides the format's own idea of which values are kidney.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, root: str | Path, label_map: LabelMap | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "dataset folder not found")
        self._label_map = label_map

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """Whether ``root`` looks like this format."""

    @abstractmethod
    def cases(self) -> list[CaseSource]:
        """Every case of the dataset, sorted by id."""

    def default_label_map(self) -> LabelMap:
        """The label map this format implies when none is given."""
        return LABEL_MAPS["kits19"]

    @property
    def label_map(self) -> LabelMap:
        """The label map in force."""
        return self._label_map or self.default_label_map()

    def load_image(self, case: CaseSource) -> Volume:
        """Read the case's image (NIfTI by default)."""
        return load_nifti(case.image, role="image")

    def load(self, case: CaseSource) -> LoadedCase:
        """Read and check one case: image, label, same grid, label values.

        Raises:
            DataError: Naming the offending file.
        """
        image = self.load_image(case)
        labels = None
        if case.structures:
            masks: dict[str, np.ndarray] = {}
            for role, path in case.structures.items():
                vol = load_nifti(path, role="label")
                check_same_grid(image, vol)
                masks[role] = vol.array
            labels = merge_structure_masks(masks)
        elif case.label is not None:
            vol = load_nifti(case.label, role="label")
            check_same_grid(image, vol)
            labels = map_label_values(vol.array, self.label_map, case.label)
        return LoadedCase(case, image, labels)


def label_map_from_names(names: dict[str, int], source: Path) -> LabelMap:
    """Derive a label map from label names (nnU-Net / MSD ``dataset.json``).

    Names with "kidney" are kidney ("left"/"right" in them declare the side); "tumor"/"tumour"
    are tumour; "cyst" is kidney; anything else is treated as background.

    Raises:
        DataError: If no name looks like kidney.
    """
    kidney, tumour, right, left = [], [], [], []
    for raw, value in names.items():
        name = raw.lower().replace("-", "_").replace(" ", "_")
        if value == 0:
            continue
        if "kidney" in name and "left" in name:
            left.append(value)
        elif "kidney" in name and "right" in name:
            right.append(value)
        elif "tumor" in name or "tumour" in name or "mass" in name:
            tumour.append(value)
            kidney.append(value)
        elif "kidney" in name or "cyst" in name:
            kidney.append(value)
    if not (kidney or left or right):
        raise DataError(source, f"no label name looks like kidney ({sorted(names)}); pass --label-map")
    return LabelMap(
        kidney=tuple(kidney), tumour=tuple(tumour), right=tuple(right), left=tuple(left), other="background"
    )

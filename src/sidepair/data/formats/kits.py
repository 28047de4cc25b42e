"""KiTS19/21/23 case folders: ``case_XXXXX/imaging.nii.gz`` and ``segmentation.nii.gz``."""

from __future__ import annotations

from pathlib import Path

from sidepair.data.formats.base import CaseSource, DatasetFormat
from sidepair.errors import DataError


def _case_dirs(root: Path) -> list[Path]:
    # The KiTS repositories keep cases under data/ (KiTS19) or dataset/ (KiTS21/23).
    for base in (root, root / "data", root / "dataset"):
        dirs = sorted(p for p in base.glob("case_*") if p.is_dir())
        if dirs:
            return dirs
    return []


class KitsFormat(DatasetFormat):
    """KiTS challenge layout. Cases without a segmentation are read as unlabelled."""

    name = "kits"
    description = "KiTS19/21/23 case folders (case_XXXXX/imaging.nii.gz, segmentation.nii.gz)"

    @classmethod
    def detect(cls, root: Path) -> bool:  # noqa: D102
        return bool(_case_dirs(root))

    def cases(self) -> list[CaseSource]:  # noqa: D102
        out = []
        for case_dir in _case_dirs(self.root):
            image = case_dir / "imaging.nii.gz"
            if not image.exists():
                raise DataError(image, "missing image (every KiTS case folder needs imaging.nii.gz)")
            label = case_dir / "segmentation.nii.gz"
            out.append(
                CaseSource(case_dir.name, image, label if label.exists() else None, group=case_dir.name)
            )
        return out

"""Folders of DICOM series as unlabelled cases (one case per series folder)."""

from __future__ import annotations

from pathlib import Path

from sidepair.data.dicom import is_dicom_folder, list_series, load_dicom_series
from sidepair.data.formats.base import CaseSource, DatasetFormat
from sidepair.data.volume import Volume
from sidepair.errors import DataError


def _series_folders(root: Path) -> list[Path]:
    if is_dicom_folder(root):
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_dir() and is_dicom_folder(p))


class DicomFormat(DatasetFormat):
    """A DICOM series folder, or a tree of them; images only (for pretraining and prediction)."""

    name = "dicom"
    description = "DICOM series folders (SimpleITK/GDCM), unlabelled"

    @classmethod
    def detect(cls, root: Path) -> bool:  # noqa: D102
        return is_dicom_folder(root)

    def cases(self) -> list[CaseSource]:  # noqa: D102
        out = []
        for folder in _series_folders(self.root):
            for sid in sorted(list_series(folder)):
                case_id = folder.name if folder != self.root else self.root.name
                if len(list_series(folder)) > 1:
                    case_id = f"{case_id}_{sid[-8:]}"
                out.append(CaseSource(case_id, folder, group=case_id, extra={"series": sid}))
        if not out:
            raise DataError(self.root, "no DICOM series found")
        return out

    def load_image(self, case: CaseSource) -> Volume:  # noqa: D102
        return load_dicom_series(case.image, case.extra.get("series"))

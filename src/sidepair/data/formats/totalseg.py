"""TotalSegmentator layout: an image plus a folder with one mask file per structure."""

from __future__ import annotations

from pathlib import Path

from sidepair.config import LABEL_MAPS, LabelMap
from sidepair.data.formats.base import CaseSource, DatasetFormat
from sidepair.errors import DataError

SEG_DIR = "segmentations"


def _image_of(case_dir: Path) -> Path | None:
    images = sorted(p for p in case_dir.iterdir() if p.is_file() and p.name.endswith((".nii.gz", ".nii")))
    if not images:
        return None
    preferred = [p for p in images if p.name.startswith("ct.")]
    if len(preferred) == 1:
        return preferred[0]
    if len(images) > 1:
        raise DataError(
            case_dir, f"several images ({', '.join(p.name for p in images)}); expected one, e.g. ct.nii.gz"
        )
    return images[0]


class TotalSegFormat(DatasetFormat):
    """One case (``ct.nii.gz`` + ``segmentations/``) or a folder of such case folders."""

    name = "totalseg"
    description = (
        "TotalSegmentator layout (ct.nii.gz + segmentations/kidney_left.nii.gz, kidney_right.nii.gz)"
    )

    @classmethod
    def detect(cls, root: Path) -> bool:  # noqa: D102
        return (root / SEG_DIR).is_dir() or any((p / SEG_DIR).is_dir() for p in root.iterdir() if p.is_dir())

    def default_label_map(self) -> LabelMap:  # noqa: D102
        return LABEL_MAPS["totalseg"]

    def _case(self, case_dir: Path) -> CaseSource:
        image = _image_of(case_dir)
        if image is None:
            raise DataError(case_dir, "no image (.nii.gz) beside the segmentations folder")
        structures = {}
        for role, stem in self.label_map.structures.items():
            for ext in (".nii.gz", ".nii"):
                path = case_dir / SEG_DIR / f"{stem}{ext}"
                if path.exists():
                    structures[role] = path
                    break
        if not structures:
            wanted = ", ".join(f"{s}.nii.gz" for s in self.label_map.structures.values())
            raise DataError(case_dir / SEG_DIR, f"none of the label map's structures found ({wanted})")
        case_id = case_dir.name
        return CaseSource(case_id, image, structures=structures, group=case_id)

    def cases(self) -> list[CaseSource]:  # noqa: D102
        if not self.label_map.structures:
            raise DataError(self.root, "the TotalSegmentator layout needs a label map with 'structures'")
        if (self.root / SEG_DIR).is_dir():
            return [self._case(self.root)]
        return [self._case(p) for p in sorted(self.root.iterdir()) if (p / SEG_DIR).is_dir()]

"""Medical Segmentation Decathlon: ``dataset.json`` with a ``training`` list of image/label pairs."""

from __future__ import annotations

from pathlib import Path

from sidepair.config import LabelMap
from sidepair.data.formats.base import CaseSource, DatasetFormat, label_map_from_names
from sidepair.data.formats.nnunet import read_dataset_json
from sidepair.errors import DataError


def _strip_ext(name: str) -> str:
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


class MsdFormat(DatasetFormat):
    """MSD layout; paths in ``dataset.json`` are relative to the dataset folder."""

    name = "msd"
    description = "Medical Segmentation Decathlon dataset.json with a 'training' list"

    @classmethod
    def detect(cls, root: Path) -> bool:  # noqa: D102
        if not (root / "dataset.json").is_file():
            return False
        try:
            return isinstance(read_dataset_json(root).get("training"), list)
        except DataError:
            return False

    def default_label_map(self) -> LabelMap:  # noqa: D102
        labels = read_dataset_json(self.root).get("labels", {})
        try:
            names = {str(name): int(value) for value, name in labels.items()}
        except (TypeError, ValueError, AttributeError):
            raise DataError(
                self.root / "dataset.json", "'labels' must map integer strings to names"
            ) from None
        return label_map_from_names(names, self.root / "dataset.json")

    def cases(self) -> list[CaseSource]:  # noqa: D102
        meta_path = self.root / "dataset.json"
        out = []
        for i, entry in enumerate(read_dataset_json(self.root)["training"]):
            if not isinstance(entry, dict) or "image" not in entry:
                raise DataError(meta_path, f"training[{i}] has no 'image'")
            image = (self.root / entry["image"]).resolve()
            label = (self.root / entry["label"]).resolve() if entry.get("label") else None
            case_id = _strip_ext(image.name)
            out.append(CaseSource(case_id, image, label, group=case_id))
        return sorted(out, key=lambda c: c.case_id)

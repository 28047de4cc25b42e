"""nnU-Net v2 raw datasets: ``dataset.json``, ``imagesTr/{case}_0000.nii.gz``, ``labelsTr/{case}.nii.gz``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sidepair.config import LabelMap
from sidepair.data.formats.base import CaseSource, DatasetFormat, label_map_from_names
from sidepair.errors import DataError


def read_dataset_json(root: Path) -> dict[str, Any]:
    """Parse ``root/dataset.json`` with a one-line error on failure."""
    path = root / "dataset.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object")
    return data


class NnUNetFormat(DatasetFormat):
    """nnU-Net v2 raw layout; the first channel (``_0000``) is the CT."""

    name = "nnunet"
    description = "nnU-Net v2 raw (dataset.json with channel_names, imagesTr/*_0000, labelsTr/)"

    @classmethod
    def detect(cls, root: Path) -> bool:  # noqa: D102
        if not (root / "dataset.json").is_file():
            return False
        try:
            return "channel_names" in read_dataset_json(root)
        except DataError:
            return False

    def _meta(self) -> dict[str, Any]:
        return read_dataset_json(self.root)

    def default_label_map(self) -> LabelMap:  # noqa: D102
        labels = self._meta().get("labels")
        if not isinstance(labels, dict):
            raise DataError(self.root / "dataset.json", "no 'labels' mapping")
        return label_map_from_names(
            {k: int(v) for k, v in labels.items() if isinstance(v, int)}, self.root / "dataset.json"
        )

    def cases(self) -> list[CaseSource]:  # noqa: D102
        ending = self._meta().get("file_ending", ".nii.gz")
        images_dir = self.root / "imagesTr"
        if not images_dir.is_dir():
            raise DataError(images_dir, "folder not found (nnU-Net raw datasets keep images in imagesTr/)")
        out = []
        for image in sorted(images_dir.glob(f"*_0000{ending}")):
            case_id = image.name[: -len(f"_0000{ending}")]
            label = self.root / "labelsTr" / f"{case_id}{ending}"
            if not label.exists():
                raise DataError(label, f"missing label for image {image.name}")
            out.append(CaseSource(case_id, image, label, group=case_id))
        if not out:
            raise DataError(images_dir, f"no *_0000{ending} images")
        return out

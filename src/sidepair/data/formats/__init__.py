"""Dataset readers, one per layout, behind one interface; ``open_dataset`` picks one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidepair.config import LabelMap
from sidepair.data.formats.base import CaseSource, DatasetFormat, LoadedCase
from sidepair.data.formats.dicom import DicomFormat
from sidepair.data.formats.kits import KitsFormat
from sidepair.data.formats.msd import MsdFormat
from sidepair.data.formats.nnunet import NnUNetFormat, read_dataset_json
from sidepair.data.formats.slices import SlicesFormat
from sidepair.data.formats.totalseg import TotalSegFormat
from sidepair.data.store import Store
from sidepair.errors import DataError, StoreError

# Detection order matters: nnU-Net and MSD both have dataset.json and are told apart by its keys.
FORMATS: dict[str, type[DatasetFormat]] = {
    f.name: f for f in (NnUNetFormat, MsdFormat, KitsFormat, TotalSegFormat, SlicesFormat, DicomFormat)
}


def detect_format(root: str | Path) -> str:
    """Name of the one format ``root`` matches.

    Raises:
        DataError: If it matches none or several; the message lists what was looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    matches = [name for name, fmt in FORMATS.items() if fmt.detect(root)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        looked = "; ".join(f"{name}: {fmt.description}" for name, fmt in FORMATS.items())
        raise DataError(root, f"cannot tell the dataset format; pass --format (looked for {looked})")
    raise DataError(root, f"matches several formats ({', '.join(matches)}); pass --format")


def open_dataset(
    root: str | Path,
    fmt: str = "auto",
    label_map: LabelMap | None = None,
    slice_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> DatasetFormat:
    """Open a dataset folder with the named (or detected) format.

    Args:
        root: Dataset folder.
        fmt: A name from :data:`FORMATS` or ``"auto"``.
        label_map: Overrides the format's default label map.
        slice_options: Options for the folder if it is a slice folder (those not None), else unused: how
            ``prepare`` and an experiment pass ``convention``, ``intensity`` and ``spacing`` to every
            folder they read.
        **options: Format-specific options (e.g. ``convention`` for slices).

    Raises:
        DataError: Unknown format, or a folder that does not hold it.
    """
    root = Path(root)
    name = detect_format(root) if fmt == "auto" else fmt
    if name not in FORMATS:
        raise DataError(root, f"unknown format {name!r}; known: auto, {', '.join(FORMATS)}")
    cls = FORMATS[name]
    if fmt != "auto" and not cls.detect(root):
        if name in ("nnunet", "msd") and (root / "dataset.json").is_file():
            read_dataset_json(root)  # an unreadable dataset.json is named as such
        raise DataError(root, f"does not look like the {name} format ({cls.description})")
    if name == "slices" and slice_options:
        options = {**{k: v for k, v in slice_options.items() if v is not None}, **options}
    return cls(root, label_map, **options)


def source_of(store: Store, case_id: str) -> tuple[DatasetFormat, CaseSource]:
    """Reopen the dataset a store's case came from, and find the case in it (to read its original files).

    Raises:
        StoreError: If the dataset folder or the case is gone.
    """
    datasets = store.header.datasets
    for record in datasets:
        prefix = f"{Path(record.data_root).name}__" if len(datasets) > 1 else ""
        if not case_id.startswith(prefix):
            continue
        try:
            dataset = open_dataset(
                record.data_root, record.format, record.label_map, slice_options=record.format_options
            )
        except DataError as exc:
            raise StoreError(
                f"{store.path}: the source dataset of {case_id} cannot be opened ({exc})"
            ) from None
        for source in dataset.cases():
            if prefix + source.case_id == case_id:
                return dataset, source
    raise StoreError(f"{store.path}: case {case_id} is no longer in its source dataset")


__all__ = [
    "FORMATS",
    "CaseSource",
    "DatasetFormat",
    "LoadedCase",
    "detect_format",
    "open_dataset",
    "source_of",
]

"""The store's records as typed models: its header, one entry per case, and the split.

``prepare`` writes them as JSON (``store.json``, ``index.json``, ``splits.json``); :class:`~sidepair.data.
store.Store` reads them back through these models, so every reader sees named, checked fields instead of
dictionaries. Fields added since the first store format have defaults, so older stores stay readable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from sidepair.config import LabelMap, PreprocessSettings
from sidepair.errors import StoreError

STORE_VERSION = 1
SIDES = ("right", "left")


class _Record(BaseModel):
    # Unknown keys are kept (a store written by a newer minor version stays readable).
    model_config = ConfigDict(extra="allow")


class SourceFile(_Record):
    """One file a case was read from, as it was when the store was made.

    Attributes:
        path: Absolute path.
        size: Size in bytes (None for a folder, e.g. a DICOM series).
        mtime: Modification time.
        sha256: Content hash (stores made before it was recorded have None).
    """

    path: str
    size: int | None = None
    mtime: float | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, path: Path, content_hash: bool = False) -> SourceFile:
        """The record of ``path`` as it is now; ``content_hash`` also hashes its bytes (label files)."""
        if not path.is_file():
            return cls(path=str(path.resolve()))
        st = path.stat()
        return cls(
            path=str(path.resolve()),
            size=st.st_size,
            mtime=round(st.st_mtime, 3),
            sha256=file_sha256(path) if content_hash else None,
        )

    def same_stamp(self, other: SourceFile) -> bool:
        """Whether path, size and modification time agree (a cheap check that a file is unchanged)."""
        return (self.path, self.size, self.mtime) == (other.path, other.size, other.mtime)

    def changed(self, path: Path) -> str | None:
        """What differs between this record and ``path`` now (None when it is the same file)."""
        if self.size is None:
            return None
        if not path.is_file():
            return "is gone"
        size = path.stat().st_size
        if size != self.size:
            return f"size {size} bytes, {self.size} when the store was prepared"
        if self.sha256 is not None:
            return (
                None if file_sha256(path) == self.sha256 else "content changed since the store was prepared"
            )
        mtime = round(path.stat().st_mtime, 3)
        return None if mtime == self.mtime else "modified since the store was prepared"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OriginalGeometry(_Record):
    """The source file's own grid: what predictions are written back in."""

    shape: list[int]
    affine: list[list[float]]
    axcodes: str
    spacing: list[float]


class Midline(_Record):
    """The body midline: its world x (mm) and its x index on the store grid."""

    world_x: float
    x_index: float


class BodyCentre(_Record):
    """The body's centroid in world millimetres (x, y, z) and in store indices (z, y, x)."""

    world: list[float]
    index: list[float]


class Normalization(_Record):
    """What the normalisation subtracted and divided by (inference repeats it).

    ``low`` is the HU its clipping floor maps from, where it is not the store window's low end (nnU-Net's
    CT normalisation clips at the foreground's 0.5th percentile).
    """

    mean: float
    std: float
    low: float | None = None


class SideInfo(_Record):
    """One side's kidney on the store grid: bounding box (z, y, x; stop exclusive), volume, components."""

    bbox: list[list[int]] | None = None
    volume_ml: float = 0.0
    components: int = 0


class SideReportInfo(_Record):
    """How sides were assigned in a case."""

    midline_from: str = "body"
    tiny_components: int = 0
    split_at_midline: bool = False
    warnings: list[str] = []


class NetworkView(_Record):
    """How a section of this store goes back to the network's axis order (stores of nnU-Net preprocessing).

    Attributes:
        order: For each network axis, the store axis (z 0, y 1, x 2) it is.
        flips: For each network axis, whether it runs against that store axis.
    """

    order: list[int]
    flips: list[bool]

    def to_network(self, array: np.ndarray) -> np.ndarray:
        """A store-order array (its last three axes z, y, x) in the network's axis order."""
        lead = array.ndim - 3
        out = np.transpose(array, [*range(lead), *(lead + s for s in self.order)])
        flips = tuple(lead + m for m, f in enumerate(self.flips) if f)
        return np.ascontiguousarray(np.flip(out, axis=flips) if flips else out)

    def to_store(self, array: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_network`: a network-order array (last three axes) in store order."""
        lead = array.ndim - 3
        flips = tuple(lead + m for m, f in enumerate(self.flips) if f)
        unflipped = np.flip(array, axis=flips) if flips else array
        back = [self.order.index(s) for s in range(3)]
        return np.ascontiguousarray(np.transpose(unflipped, [*range(lead), *(lead + m for m in back)]))

    def network_size(self, size: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """A store-order window size (z, y, x), or an axial (y, x) one, in the network's axis order."""
        full = (1, *size) if len(size) == 2 else tuple(size)
        out = tuple(int(full[s]) for s in self.order)
        return out[1:] if len(size) == 2 else out

    def store_size(self, size: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """The inverse of :meth:`network_size`: a network-order window size in store order."""
        full = (1, *size) if len(size) == 2 else tuple(size)
        out = tuple(int(full[self.order.index(s)]) for s in range(3))
        return out[1:] if len(size) == 2 else out


class CaseEntry(_Record):
    """One case of the store (a line of ``index.json``).

    Attributes:
        case_id: Store case id.
        group: The split unit (a patient).
        labelled: Whether the case has a label.
        shape: Store array shape (z, y, x).
        spacing: Store voxel size (z, y, x) mm.
        affine: Store affine for (z, y, x) indices.
        original: The source file's grid.
        midline: Body midline.
        body_centre: Body centroid.
        normalization: Normalisation statistics.
        sources: The files read.
        sides: Per side (``right``, ``left``) its kidney; None for unlabelled cases.
        kidney_slices: First and stop index along z of the kidney region.
        side_report: How sides were assigned.
        has_tumour: Whether the label holds tumour.
        negative: A labelled case without kidney on the store grid (background for segmentation).
        vanished: A negative whose source label had kidney voxels, too few to survive on the grid.
        network: For a store of nnU-Net's preprocessing, how sections go back to nnU-Net's axis order.
    """

    case_id: str
    group: str
    labelled: bool
    shape: list[int]
    spacing: list[float]
    affine: list[list[float]]
    original: OriginalGeometry
    midline: Midline
    body_centre: BodyCentre
    normalization: Normalization
    sources: list[SourceFile] = []
    sides: dict[str, SideInfo | None] | None = None
    kidney_slices: list[int] | None = None
    side_report: SideReportInfo | None = None
    has_tumour: bool = False
    negative: bool = False
    vanished: bool = False
    network: NetworkView | None = None

    def side_box(self, side: str) -> list[list[int]] | None:
        """The kidney bounding box of ``side`` (z, y, x), or None where that side has no kidney."""
        info = (self.sides or {}).get(side)
        return info.bbox if info is not None else None

    @property
    def kidney_sides(self) -> list[str]:
        """The sides with a kidney box."""
        return [s for s in SIDES if self.side_box(s)]


class DatasetRecord(_Record):
    """What identifies one source dataset of a store."""

    format: str
    data_root: str
    label_map: LabelMap
    format_options: dict[str, Any] = {}


class SplitSettings(_Record):
    """How the split was drawn."""

    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2


class StoreHeader(_Record):
    """``store.json``: the settings that made the store and their fingerprint.

    Attributes:
        store_version: Format version.
        fingerprint: Hash naming the settings.
        preprocess: Preprocessing settings.
        datasets: Source datasets.
        split: Split settings.
        sidepair_version: Version that made the store.
        created: Creation time (ISO 8601).
        preset: The preset ``prepare`` was given (None for stores made before it was recorded).
    """

    store_version: int = STORE_VERSION
    fingerprint: str
    preprocess: PreprocessSettings
    datasets: list[DatasetRecord]
    split: SplitSettings = SplitSettings()
    sidepair_version: str = "unknown"
    created: str | None = None
    preset: str | None = None


class StoreIndex(_Record):
    """``index.json``: the fingerprint and one entry per case."""

    fingerprint: str
    cases: list[CaseEntry]


class Splits(_Record):
    """``splits.json``: case ids of each split (by group), for the split seed."""

    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    train: list[str]
    val: list[str]
    test: list[str]

    def of(self, name: str) -> list[str]:
        """Case ids of split ``name``."""
        if name not in ("train", "val", "test"):
            raise StoreError(f"unknown split {name!r}; choose train, val or test")
        return list(getattr(self, name))


def read_record(model: type[BaseModel], path: Path, payload: Any | None = None) -> Any:
    """Read a JSON file (or take ``payload``) as ``model``, with a one-line error naming the file.

    Raises:
        StoreError: Unreadable JSON, or a field missing or of the wrong type (rerun ``prepare``).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if payload is None else payload
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: unreadable ({type(exc).__name__}); rerun `sidepair prepare`") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise StoreError(
            f"{path}: {where}: {err['msg']} (written by an incompatible sidepair); "
            "rerun `sidepair prepare` into a new folder"
        ) from None

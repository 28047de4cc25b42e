"""The preprocessed store: what ``prepare`` writes once per dataset and training reads.

Layout::

    STORE/store.json        settings, their fingerprint, source dataset, sidepair version
    STORE/index.json        one entry per case (written last: its presence means complete)
    STORE/splits.json       train / val / test case ids, by group, for the split seed
    STORE/cases/<id>/       image.npy (float16/32), label.npy, side.npy (uint8), meta.json

Arrays are uncompressed ``.npy`` files for memory mapping, indexed ``(z, y, x)`` on a RAS+ grid
(z toward superior, y toward anterior, x toward the patient's right), so an axial slice is one
contiguous block. Each entry's ``affine`` maps those ``(z, y, x)`` indices to world millimetres.
Side boxes are ``[[z0, z1], [y0, y1], [x0, x1]]``, stop exclusive.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sidepair import __version__
from sidepair.atomic import atomic_dir, write_json
from sidepair.config import PreprocessSettings
from sidepair.data.formats import CaseSource, DatasetFormat, LoadedCase
from sidepair.data.labels import LEFT, RIGHT, SIDE_NAMES
from sidepair.data.preprocess import normalize, resample_case
from sidepair.data.sides import (
    SideReport,
    assign_sides,
    body_centre,
    kept_mask,
    side_boxes,
    voxel_volume_ml,
)
from sidepair.data.splits import make_splits
from sidepair.errors import DataError, StoreError

STORE_VERSION = 1


def _zyx(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


def _zyx_affine(affine_xyz: np.ndarray) -> np.ndarray:
    return affine_xyz[:, [2, 1, 0, 3]]


def _box_zyx(box: list[list[int]] | None) -> list[list[int]] | None:
    return None if box is None else [box[2], box[1], box[0]]


def _file_stamp(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        st = p.stat() if p.is_file() else None
        out.append(
            {
                "path": str(p.resolve()),
                "size": st.st_size if st else None,
                "mtime": round(st.st_mtime, 3) if st else None,
            }
        )
    return out


def dataset_record(dataset: DatasetFormat, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What identifies a dataset's contribution to a store: format, folder, label map, options."""
    return {
        "format": dataset.name,
        "data_root": str(dataset.root.resolve()),
        "label_map": dataset.label_map.model_dump(mode="json"),
        "format_options": {k: str(v) for k, v in sorted((options or {}).items())},
    }


@dataclass
class StoreSettings:
    """Everything that decides a store's content; its fingerprint names the store.

    Attributes:
        preprocess: Resampling and normalisation.
        datasets: One :func:`dataset_record` per source dataset.
        split_seed: Seed of the split.
        val_fraction: Validation fraction of labelled groups.
        test_fraction: Test fraction of labelled groups.
    """

    preprocess: PreprocessSettings
    datasets: list[dict[str, Any]]
    split_seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form, as written to ``store.json``."""
        return {
            "preprocess": self.preprocess.model_dump(mode="json"),
            "datasets": self.datasets,
            "split": {
                "seed": self.split_seed,
                "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction,
            },
        }

    def fingerprint(self) -> str:
        """Short hash of :meth:`as_dict` minus the preprocessing (which the hash covers itself)."""
        extra = {k: v for k, v in self.as_dict().items() if k != "preprocess"}
        return self.preprocess.fingerprint(extra)


def process_case(
    loaded: LoadedCase, settings: PreprocessSettings
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Turn one loaded case into store arrays and its index entry.

    Returns:
        Arrays (``image``, and ``label``/``side`` when labelled) in ``(z, y, x)`` order, and metadata.
    """
    image = loaded.image
    labels = loaded.labels
    res = resample_case(
        image.array,
        image.affine,
        settings,
        labels.label if labels else None,
        labels.declared_side if labels else None,
    )
    body = body_centre(res.image, res.affine)
    midline = float(body[0])
    report: SideReport | None = None
    side = res.side
    if res.label is not None:
        kidney = res.label > 0
        if not kidney.any():
            raise DataError(loaded.source.label or loaded.source.image, "no kidney voxels in the label")
        if side is None:
            side, report = assign_sides(kidney, res.affine, midline)
        else:
            side = np.where(kidney, side, 0).astype(np.uint8)
            report = SideReport(midline_x=midline, midline_from="declared")
            vox = voxel_volume_ml(res.affine)
            for code in (RIGHT, LEFT):
                kept = kept_mask(side, res.affine, code)
                if kept.any():
                    report.components[SIDE_NAMES[code]] = 1
                    report.volumes_ml[SIDE_NAMES[code]] = float(kept.sum()) * vox
    norm, stats = normalize(res.image, settings)
    affine = _zyx_affine(res.affine)
    # Store indices (z, y, x) of the body centre; its x is where the midline falls.
    body_index = (np.linalg.inv(affine) @ np.array([*body, 1.0]))[:3]
    meta: dict[str, Any] = {
        "case_id": loaded.source.case_id,
        "group": loaded.source.group or loaded.source.case_id,
        "labelled": res.label is not None,
        "shape": list(norm.shape[::-1]),
        "spacing": [float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0))],
        "affine": affine.tolist(),
        "original": {
            "shape": list(image.original_shape),
            "affine": np.asarray(image.original_affine).tolist(),
            "axcodes": image.original_axcodes,
            "spacing": [
                float(s) for s in np.sqrt((np.asarray(image.original_affine)[:3, :3] ** 2).sum(axis=0))
            ],
        },
        "midline": {"world_x": midline, "x_index": float(body_index[2])},
        "body_centre": {"world": [float(v) for v in body], "index": [float(v) for v in body_index]},
        "normalization": stats,
        "sources": _file_stamp(loaded.source.files),
    }
    arrays = {"image": _zyx(norm)}
    if res.label is not None and side is not None and report is not None:
        boxes = side_boxes(side, res.affine)
        meta["sides"] = {
            name: {
                "bbox": _box_zyx(box),
                "volume_ml": round(report.volumes_ml.get(name, 0.0), 3),
                "components": report.components.get(name, 0),
            }
            for name, box in boxes.items()
        }
        z_any = np.nonzero((res.label > 0).any(axis=(0, 1)))[0]
        meta["kidney_slices"] = [int(z_any.min()), int(z_any.max()) + 1]
        meta["side_report"] = {
            "midline_from": report.midline_from,
            "tiny_components": report.tiny,
            "split_at_midline": report.split_at_midline,
            "warnings": report.warnings,
        }
        meta["has_tumour"] = bool((res.label == 2).any())
        arrays["label"] = _zyx(res.label)
        arrays["side"] = _zyx(side)
    return arrays, meta


def _case_complete(case_dir: Path, source: CaseSource) -> bool:
    meta_path = case_dir / "meta.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("sources") != _file_stamp(source.files):
            return False
        shape = tuple(meta["shape"])
        names = ["image"] + (["label", "side"] if meta["labelled"] else [])
        return all(np.load(case_dir / f"{n}.npy", mmap_mode="r").shape == shape for n in names)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return False


def prepare(
    datasets: DatasetFormat | list[DatasetFormat],
    out: str | Path,
    settings: PreprocessSettings,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    progress: bool = False,
    format_options: dict[str, Any] | None = None,
) -> Path:
    """Write (or finish) a store for one dataset or several together.

    Cases already complete with unchanged sources are skipped; each new case is written to a
    temporary folder and renamed. ``index.json`` and ``splits.json`` come last. With several datasets,
    case ids and groups are prefixed with the dataset folder's name.

    Args:
        datasets: One opened dataset, or several (e.g. unlabelled scans beside a labelled set).
        out: Store folder.
        settings: Preprocessing settings.
        split_seed: Seed of the split.
        val_fraction: Validation fraction of labelled groups.
        test_fraction: Test fraction of labelled groups.
        progress: Show a progress bar.
        format_options: Format options, recorded in the fingerprint.

    Returns:
        The store folder.

    Raises:
        StoreError: If ``out`` holds a store made with other settings.
        DataError: For a bad case, naming its file; completed cases are kept for a rerun.
    """
    from tqdm import tqdm

    out = Path(out)
    datasets = datasets if isinstance(datasets, list) else [datasets]
    work: list[tuple[DatasetFormat, CaseSource, str, str]] = []
    for dataset in datasets:
        sources = dataset.cases()
        if not sources:
            raise DataError(dataset.root, "no cases found")
        prefix = f"{dataset.root.resolve().name}__" if len(datasets) > 1 else ""
        work += [(dataset, s, prefix + s.case_id, prefix + (s.group or s.case_id)) for s in sources]
    ids = [w[2] for w in work]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DataError(datasets[0].root, f"duplicate case ids {dup}")
    store_settings = StoreSettings(
        settings,
        [dataset_record(d, format_options) for d in datasets],
        split_seed,
        val_fraction,
        test_fraction,
    )
    fingerprint = store_settings.fingerprint()
    header = {
        "store_version": STORE_VERSION,
        "fingerprint": fingerprint,
        **store_settings.as_dict(),
        "sidepair_version": __version__,
    }
    created = not out.exists()
    if out.exists():
        _check_existing(out, header)
        remove_tmp(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "store.json").exists():
            write_json(out / "store.json", {**header, "created": datetime.now(timezone.utc).isoformat()})
        entries = []
        for dataset, source, case_id, group in tqdm(
            work, desc="prepare", unit="case", disable=None if progress else True
        ):
            case_dir = out / "cases" / case_id
            if not _case_complete(case_dir, source):
                arrays, meta = process_case(dataset.load(source), settings)
                meta.update(case_id=case_id, group=group)
                with atomic_dir(case_dir) as tmp:
                    for name, array in arrays.items():
                        np.save(tmp / f"{name}.npy", array)
                    write_json(tmp / "meta.json", meta)
            entries.append(json.loads((case_dir / "meta.json").read_text(encoding="utf-8")))
    except BaseException:
        if created and not any((out / "cases").glob("*/meta.json")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    splits = make_splits(
        ((e["case_id"], e["group"], e["labelled"]) for e in entries), split_seed, val_fraction, test_fraction
    )
    write_json(
        out / "splits.json",
        {"seed": split_seed, "val_fraction": val_fraction, "test_fraction": test_fraction, **splits},
    )
    write_json(out / "index.json", {"fingerprint": fingerprint, "cases": entries})
    return out


def _check_existing(out: Path, header: dict[str, Any]) -> None:
    if not out.is_dir():
        raise StoreError(f"{out}: exists and is not a folder")
    path = out / "store.json"
    if not path.exists():
        if any(out.iterdir()):
            raise StoreError(f"{out}: folder is not empty and holds no store; choose another --out")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: unreadable store header ({exc})") from None
    if old.get("fingerprint") != header["fingerprint"]:
        changed = [
            k
            for k in ("preprocess", "format", "label_map", "data_root", "split", "format_options")
            if old.get(k) != header.get(k)
        ]
        raise StoreError(
            f"{out}: store was prepared with other settings (changed: {', '.join(changed) or 'version'}); "
            "a changed setting needs a new store: choose another --out"
        )


class Store:
    """Read access to a complete store; arrays are memory-mapped.

    Args:
        path: Store folder.

    Raises:
        StoreError: If the folder is not a store or is incomplete.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "store.json").is_file():
            raise StoreError(f"{self.path}: not a sidepair store (no store.json); run `sidepair prepare`")
        if not (self.path / "index.json").is_file():
            raise StoreError(
                f"{self.path}: store is incomplete (no index.json); rerun `sidepair prepare` to finish it"
            )
        self.header = json.loads((self.path / "store.json").read_text(encoding="utf-8"))
        index = json.loads((self.path / "index.json").read_text(encoding="utf-8"))
        if index.get("fingerprint") != self.header.get("fingerprint"):
            raise StoreError(f"{self.path}: index.json does not match store.json; rerun `sidepair prepare`")
        self.cases: dict[str, dict[str, Any]] = {c["case_id"]: c for c in index["cases"]}
        self.splits: dict[str, Any] = json.loads((self.path / "splits.json").read_text(encoding="utf-8"))
        # Parsed once: crops read it for every section and patch.
        self._settings = PreprocessSettings.model_validate(self.header["preprocess"])

    @property
    def settings(self) -> PreprocessSettings:
        """The preprocessing settings the store was made with."""
        return self._settings

    def background_value(self, case_id: str) -> float:
        """The normalised value of the HU window's low end in a case: what crops are padded with."""
        stats = self.cases[case_id]["normalization"]
        return (self._settings.window[0] - stats["mean"]) / stats["std"]

    def split(self, name: str) -> list[str]:
        """Case ids of split ``name`` (``train``, ``val`` or ``test``)."""
        if name not in ("train", "val", "test"):
            raise StoreError(f"unknown split {name!r}; choose train, val or test")
        return list(self.splits[name])

    def array(self, case_id: str, name: str = "image", mmap: bool = True) -> np.ndarray:
        """A case's ``image``, ``label`` or ``side`` array, ``(z, y, x)``, memory-mapped by default."""
        if case_id not in self.cases:
            raise StoreError(f"{self.path}: no case {case_id!r}")
        path = self.path / "cases" / case_id / f"{name}.npy"
        if not path.is_file():
            raise StoreError(f"{path}: missing (is case {case_id} unlabelled?)")
        return np.load(path, mmap_mode="r" if mmap else None)

    def source_of(self, case_id: str) -> tuple[DatasetFormat, CaseSource]:
        """Reopen the dataset a case came from, and find the case in it (to read its original files).

        Raises:
            StoreError: If the dataset folder or the case is gone.
        """
        from sidepair.config import LabelMap
        from sidepair.data.formats import open_dataset

        datasets = self.header["datasets"]
        for record in datasets:
            prefix = f"{Path(record['data_root']).name}__" if len(datasets) > 1 else ""
            if not case_id.startswith(prefix):
                continue
            options = dict(record["format_options"]) if record["format"] == "slices" else {}
            try:
                dataset = open_dataset(
                    record["data_root"],
                    record["format"],
                    LabelMap.model_validate(record["label_map"]),
                    **options,
                )
            except DataError as exc:
                raise StoreError(
                    f"{self.path}: the source dataset of {case_id} cannot be opened ({exc})"
                ) from None
            for source in dataset.cases():
                if prefix + source.case_id == case_id:
                    return dataset, source
        raise StoreError(f"{self.path}: case {case_id} is no longer in its source dataset")

    def __len__(self) -> int:
        return len(self.cases)


def remove_tmp(out: Path) -> None:
    """Remove temporary folders a killed ``prepare`` may have left (they are never read)."""
    for tmp in (out / "cases").glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)

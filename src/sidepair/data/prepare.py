"""``prepare``: read a dataset once, orient, resample, window, normalise, and write the store.

Each case becomes ``STORE/cases/<id>/`` (written to a temporary folder and renamed); ``index.json`` and
``splits.json`` come last, so their presence means the store is complete. A rerun skips finished cases
whose sources are unchanged; a store prepared with other settings is refused.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sidepair.atomic import atomic_dir, write_json
from sidepair.config import PreprocessSettings
from sidepair.data.axes import (
    affine_xyz_to_zyx,
    box_xyz_to_zyx,
    shape_xyz_to_zyx,
    spacing_of,
    xyz_to_zyx,
)
from sidepair.data.formats import CaseSource, DatasetFormat, LoadedCase
from sidepair.data.grid import grid_of
from sidepair.data.index import (
    STORE_VERSION,
    CaseEntry,
    SourceFile,
    StoreHeader,
    read_record,
)
from sidepair.data.labels import LEFT, RIGHT, SIDE_NAMES
from sidepair.data.preprocess import Resampled
from sidepair.data.sides import SideReport, assign_sides, kept_mask, side_boxes, voxel_volume_ml
from sidepair.data.splits import make_splits
from sidepair.data.volume import Volume
from sidepair.errors import DataError, DataWarning, StoreError
from sidepair.version import __version__


def source_files(source: CaseSource) -> list[SourceFile]:
    """The records of a case's files; label files also get a content hash (``evaluate`` checks it)."""
    labels = {p for p in [source.label, *source.structures.values()] if p is not None}
    return [SourceFile.of(p, content_hash=p in labels) for p in source.files]


def dataset_record(dataset: DatasetFormat, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What identifies a dataset's contribution to a store: format, folder, label map, options."""
    return {
        "format": dataset.name,
        "data_root": str(dataset.root.resolve()),
        # None-valued fields left out: a store made before they existed keeps its fingerprint.
        "label_map": dataset.label_map.model_dump(mode="json", exclude_none=True),
        "format_options": {k: _plain(v) for k, v in sorted((options or {}).items()) if v is not None},
    }


def _plain(value: Any) -> Any:
    """A format option as JSON keeps it: text as text, a number as a number, pairs of numbers as a list."""
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    return float(value) if isinstance(value, int | float) else str(value)


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
            "preprocess": self.preprocess.model_dump(mode="json", exclude_none=True),
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


def _declared_report(side: np.ndarray, affine: np.ndarray, midline: float) -> SideReport:
    """The side report of a label that states its sides itself."""
    report = SideReport(midline_x=midline, midline_from="declared")
    vox = voxel_volume_ml(affine)
    for code in (RIGHT, LEFT):
        kept = kept_mask(side, affine, code)
        if kept.any():
            report.components[SIDE_NAMES[code]] = 1
            report.volumes_ml[SIDE_NAMES[code]] = float(kept.sum()) * vox
    return report


def process_case(
    loaded: LoadedCase, settings: PreprocessSettings, accept_negatives: bool = False
) -> tuple[dict[str, np.ndarray], CaseEntry]:
    """Turn one loaded case into store arrays and its index entry.

    Whether a labelled case has a kidney is decided here, once, on the store grid training reads: a case
    with no kidney component above the tiny floor there is a negative (no side boxes), used as background
    by segmentation and skipped by side sections. A single slice without kidney is a negative; a 3D scan
    without kidney is refused unless ``accept_negatives`` (for KiTS it means a broken file). A kidney in the
    source that vanishes on the grid makes a negative too, with a :class:`DataWarning` naming the file.

    Returns:
        Arrays (``image``, and ``label``/``side`` when labelled) in ``(z, y, x)`` order, and the entry.

    Raises:
        DataError: A 3D label without kidney, unless ``accept_negatives``.
    """
    image, labels = loaded.image, loaded.labels
    grid = grid_of(settings)
    res, body, network = grid.resample(loaded)
    midline = float(body[0])
    report: SideReport | None = None
    side = res.side
    label_file = loaded.source.label or next(iter(loaded.source.structures.values()), loaded.source.image)
    kidney, in_source = None, False
    if res.label is not None and labels is not None:
        kidney = res.label > 0
        in_source = bool((labels.label > 0).any())
        if not in_source and image.array.shape[2] > 1 and not accept_negatives:
            raise DataError(
                label_file,
                "no kidney voxels in the label (a scan without kidney can be kept as a negative with "
                "--accept-negatives)",
            )
        if side is None:
            side, report = assign_sides(kidney, res.affine, midline)
        else:
            side = np.where(kidney, side, 0).astype(np.uint8)
            report = _declared_report(side, res.affine, midline)
    norm, stats = grid.normalize(res.image)
    affine = affine_xyz_to_zyx(res.affine)
    meta = _geometry(loaded, norm.shape, affine, body, stats, labelled=res.label is not None)
    if network is not None:
        meta["network"] = network.model_dump()
    arrays = {"image": xyz_to_zyx(norm)}
    if res.label is not None and side is not None and report is not None and kidney is not None:
        meta.update(_label_facts(res, side, report, kidney, in_source, label_file))
        arrays["label"] = xyz_to_zyx(res.label)
        arrays["side"] = xyz_to_zyx(side)
    return arrays, CaseEntry.model_validate(meta)


def _geometry(
    loaded: LoadedCase,
    shape_xyz: tuple[int, ...],
    affine: np.ndarray,
    body: np.ndarray,
    stats: dict[str, float],
    labelled: bool,
) -> dict[str, Any]:
    """The index entry's fields every case has: grid, original geometry, midline, normalisation, sources."""
    image = loaded.image
    # Store indices (z, y, x) of the body centre; its x is where the midline falls.
    body_index = (np.linalg.inv(affine) @ np.array([*body, 1.0]))[:3]
    original_affine = np.asarray(image.original_affine)
    return {
        "case_id": loaded.source.case_id,
        "group": loaded.source.group or loaded.source.case_id,
        "labelled": labelled,
        "shape": list(shape_xyz_to_zyx(shape_xyz)),
        "spacing": list(spacing_of(affine)),
        "affine": affine.tolist(),
        "original": {
            "shape": list(image.original_shape),
            "affine": original_affine.tolist(),
            "axcodes": image.original_axcodes,
            "spacing": list(spacing_of(original_affine)),
        },
        "midline": {"world_x": float(body[0]), "x_index": float(body_index[2])},
        "body_centre": {"world": [float(v) for v in body], "index": [float(v) for v in body_index]},
        "normalization": stats,
        "sources": [s.model_dump() for s in source_files(loaded.source)],
    }


def _label_facts(
    res: Resampled,
    side: np.ndarray,
    report: SideReport,
    kidney: np.ndarray,
    in_source: bool,
    label_file: Path,
) -> dict[str, Any]:
    """The index entry's fields of a labelled case: side boxes, kidney slices, side report, negatives."""
    assert res.label is not None
    affine = affine_xyz_to_zyx(res.affine)
    boxes = side_boxes(side, res.affine)
    has_kidney = any(box is not None for box in boxes.values())
    vanished = not has_kidney and in_source
    if vanished:
        left = int(kidney.sum())
        remains = f"{left} voxels left, under the tiny floor" if left else "none left"
        grid = "x".join(f"{v:g}" for v in spacing_of(affine))
        message = f"{label_file}: the kidney vanishes on the store grid at {grid} mm ({remains})"
        warnings.warn(DataWarning(f"{message}; kept as a negative"), stacklevel=3)
    z_any = np.nonzero((res.label > 0).any(axis=(0, 1)))[0]
    return {
        "negative": not has_kidney,
        "vanished": vanished,
        "sides": {
            name: {
                "bbox": box_xyz_to_zyx(box),
                "volume_ml": round(report.volumes_ml.get(name, 0.0), 3),
                "components": report.components.get(name, 0),
            }
            for name, box in boxes.items()
        },
        "kidney_slices": [int(z_any.min()), int(z_any.max()) + 1] if len(z_any) else None,
        "side_report": {
            "midline_from": report.midline_from,
            "tiny_components": report.tiny,
            "split_at_midline": report.split_at_midline,
            "warnings": report.warnings,
        },
        "has_tumour": bool((res.label == 2).any()),
    }


def _case_complete(case_dir: Path, source: CaseSource) -> bool:
    meta_path = case_dir / "meta.json"
    if not meta_path.is_file():
        return False
    try:
        entry = read_record(CaseEntry, meta_path)
        now = [SourceFile.of(p) for p in source.files]
        if len(now) != len(entry.sources) or not all(
            a.same_stamp(b) for a, b in zip(entry.sources, now, strict=True)
        ):
            return False
        names = ["image"] + (["label", "side"] if entry.labelled else [])
        return all(np.load(case_dir / f"{n}.npy", mmap_mode="r").shape == tuple(entry.shape) for n in names)
    except (OSError, ValueError, StoreError):
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
    preset: str | None = None,
    accept_negatives: bool = False,
    scan_check: Callable[[Volume], None] | None = None,
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
        preset: The preset the settings came from, recorded so that training defaults to it.
        accept_negatives: Keep labelled 3D scans without kidney as negatives (slices always are).
        scan_check: Called with each new case's image before it is written (the CLI's laterality check,
            which warns or raises).

    Returns:
        The store folder.

    Raises:
        StoreError: If ``out`` holds a store made with other settings.
        DataError: For a bad case, naming its file; completed cases are kept for a rerun.
    """
    out = Path(out)
    datasets = datasets if isinstance(datasets, list) else [datasets]
    work = _work(datasets)
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
        "preset": preset,
    }
    created = not out.exists()
    if out.exists():
        _check_existing(out, header)
        remove_tmp(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "store.json").exists():
            write_json(out / "store.json", {**header, "created": datetime.now(timezone.utc).isoformat()})
        entries = [
            _case(out, dataset, source, case_id, group, settings, accept_negatives, scan_check)
            for dataset, source, case_id, group in tqdm(
                work, desc="prepare", unit="case", disable=None if progress else True
            )
        ]
    except BaseException:
        if created and not any((out / "cases").glob("*/meta.json")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    _check_network_order(entries, out)
    _write_index(out, entries, fingerprint, split_seed, val_fraction, test_fraction)
    return out


def _work(datasets: list[DatasetFormat]) -> list[tuple[DatasetFormat, CaseSource, str, str]]:
    """Every case to store: its dataset, source, case id and group (prefixed when several datasets).

    Raises:
        DataError: A dataset without cases, or two cases with one id.
    """
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
    return work


def _case(
    out: Path,
    dataset: DatasetFormat,
    source: CaseSource,
    case_id: str,
    group: str,
    settings: PreprocessSettings,
    accept_negatives: bool,
    scan_check: Callable[[Volume], None] | None,
) -> CaseEntry:
    """One case's index entry; a case not yet complete (or whose sources changed) is written first.

    Its arrays and ``meta.json`` go to a temporary folder that is then renamed.
    """
    case_dir = out / "cases" / case_id
    if _case_complete(case_dir, source):
        return read_record(CaseEntry, case_dir / "meta.json")
    loaded = dataset.load(source)
    if scan_check is not None:
        scan_check(loaded.image)
    arrays, entry = process_case(loaded, settings, accept_negatives)
    entry = entry.model_copy(update={"case_id": case_id, "group": group})
    with atomic_dir(case_dir) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        write_json(tmp / "meta.json", entry.model_dump(mode="json"))
    return read_record(CaseEntry, case_dir / "meta.json")


def _write_index(
    out: Path,
    entries: list[CaseEntry],
    fingerprint: str,
    split_seed: int,
    val_fraction: float,
    test_fraction: float,
) -> None:
    """``splits.json``, then ``index.json``: the index, written last, marks the store complete."""
    splits = make_splits(
        ((e.case_id, e.group, e.labelled) for e in entries), split_seed, val_fraction, test_fraction
    )
    write_json(
        out / "splits.json",
        {"seed": split_seed, "val_fraction": val_fraction, "test_fraction": test_fraction, **splits},
    )
    write_json(
        out / "index.json",
        {"fingerprint": fingerprint, "cases": [e.model_dump(mode="json") for e in entries]},
    )


def _check_network_order(entries: list[CaseEntry], out: Path) -> None:
    """Refuse an nnU-Net store whose cases put left-right on different network axes.

    nnU-Net reads arrays as they are, so a dataset written in mixed orientations gives its network
    differently laid out inputs; mirroring a section left-right needs one lateral axis for the store.

    Raises:
        DataError: Naming the first case that differs.
    """
    views = [(e, e.network) for e in entries if e.network is not None]
    if not views:
        return
    first_entry, first = views[0]
    for entry, view in views[1:]:
        if view.order != first.order:
            source = entry.sources[0].path if entry.sources else entry.case_id
            raise DataError(
                Path(source),
                f"nnU-Net reads it with its axes in another order than {first_entry.case_id} "
                f"({view.order} against {first.order}); write all scans in one orientation",
            )


def _check_existing(out: Path, header: dict[str, Any]) -> None:
    if not out.is_dir():
        raise StoreError(f"{out}: exists and is not a folder")
    path = out / "store.json"
    if not path.exists():
        if any(out.iterdir()):
            raise StoreError(f"{out}: folder is not empty and holds no store; choose another --out")
        return
    old = read_record(StoreHeader, path)
    if old.fingerprint != header["fingerprint"]:
        new = StoreHeader.model_validate(header)
        changed = [k for k in ("preprocess", "datasets", "split") if getattr(old, k) != getattr(new, k)]
        raise StoreError(
            f"{out}: store was prepared with other settings (changed: {', '.join(changed) or 'version'}); "
            "a changed setting needs a new store: choose another --out"
        )


def remove_tmp(out: Path) -> None:
    """Remove temporary folders a killed ``prepare`` may have left (they are never read)."""
    for tmp in (out / "cases").glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)

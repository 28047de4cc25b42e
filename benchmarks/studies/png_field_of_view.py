"""What check-sides should assume of a PNG slice whose pixel size nobody states, and what the choice costs.

A PNG carries no pixel spacing, and the side model reads millimetres. Two measurements, in one run:

1. **The population**: the in-plane pixel spacing and field of view (spacing times matrix size) of the 210
   KiTS19 scans in ``../shared/data/kits19_masks``, without the patients of ``kits19_slices`` (the slices
   read below), and of the other real scans here (ircadb 01 and 07, ts_example's DICOM series). Per
   assumption, the share of those scans whose spacing it gets within 15 %.
2. **The verdicts**: single real slices exported as 8-bit PNGs with nothing beside them (no
   ``slices.json``), as they are and mirrored, read by each ``--model`` (default: the shipped one) three
   ways: told their true spacing (``--pixel-spacing``), at 1 mm a pixel (check-sides' assumption before),
   and at a 400 mm field of view (today's). Slices: the 24 KiTS19 slices (0.68-0.84 mm; already HU
   clipped to [0, 255]), every sixth axial slice of ircadb 01 (0.57 mm) and 07 (0.78 mm) and every slice
   of ts_example's DICOM series (0.98 mm), each clipped to [0, 255] HU and written in the radiological
   convention.

``--window LEVEL WIDTH`` exports every slice through that display window to 0-255 instead (an export of
undocumented window, as many PNG folders are; the KiTS19 slices from their HU clipped to [0, 255]), read
as check-sides reads it by default: through the window it finds from fat and soft tissue.

Real-data results. Writes results/png_field_of_view.json (``--name``) and tables.

Usage: python benchmarks/studies/png_field_of_view.py [--model NAME=FILE ...] [--data ../shared/data]
       [--work runs/png_field_of_view] [--name png_field_of_view] [--window LEVEL WIDTH]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from window_estimate import outcome

from _common import model_specs, report
from sidepair.data.dicom import load_dicom_series
from sidepair.data.volume import Volume, load_nifti
from sidepair.qc.check import read_checked
from sidepair.qc.scans import ASSUMED_FIELD_OF_VIEW, PngReading, plan_scans
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "src" / "sidepair" / "resources" / "side_model.pt"
WITHIN = 0.15
READINGS = {
    "told": None,  # PngReading(spacing=) of each folder's true spacing
    "1 mm": PngReading(field_of_view=None),
    f"{ASSUMED_FIELD_OF_VIEW:g} mm field of view": PngReading(),
}


def kits19_spacings(masks: Path, leave_out: set[str]) -> list[tuple[float, int]]:
    """(in-plane spacing, matrix size) of each KiTS19 scan (axes 1 and 2 in-plane, axis 0 the slices)."""
    out = []
    for path in sorted(masks.glob("case_*/segmentation.nii.gz")):
        if path.parent.name in leave_out:
            continue
        image = nib.load(path)
        out.append((float(image.header.get_zooms()[1]), int(image.shape[1])))
    return out


def population(spacings: list[tuple[float, int]]) -> dict:
    """Percentiles of spacing and field of view; the share within 15 % of each assumption."""
    sp = np.array([s for s, _ in spacings])
    fov = np.array([s * n for s, n in spacings])
    sizes = np.array([n for _, n in spacings])
    pct = [5, 25, 50, 75, 95]
    return {
        "scans": len(sp),
        "matrix sizes": sorted({int(n) for n in sizes}),
        "spacing mm, percentiles 5 25 50 75 95": np.percentile(sp, pct).round(3).tolist(),
        "field of view mm, percentiles 5 25 50 75 95": np.percentile(fov, pct).round(0).tolist(),
        "within 15 %: 1 mm": round(float(np.mean(np.abs(sp / 1.0 - 1) <= WITHIN)), 3),
        f"within 15 %: {ASSUMED_FIELD_OF_VIEW:g} mm field of view": round(
            float(np.mean(np.abs(sp / (ASSUMED_FIELD_OF_VIEW / sizes) - 1) <= WITHIN)), 3
        ),
    }


def to_8bit(hu: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """HU as an 8-bit export: clipped to [0, 255], or through a display window (level, width) to 0-255."""
    if window is None:
        return np.clip(hu, 0, 255).astype(np.uint8)
    lo = window[0] - window[1] / 2
    return np.round((np.clip(hu, lo, lo + window[1]) - lo) / window[1] * 255).astype(np.uint8)


def write_pngs(volume: Volume, out: Path, step: int, window: tuple[float, float] | None) -> None:
    """Every ``step``-th axial slice of a RAS volume as an 8-bit PNG (:func:`to_8bit`).

    Radiological convention: rows from the patient's front to back, the patient's right on the image's left.
    """
    out.mkdir(parents=True, exist_ok=True)
    for k in range(0, volume.array.shape[2], step):
        axial = to_8bit(volume.array[:, :, k], window)  # (x toward right, y toward front)
        Image.fromarray(np.ascontiguousarray(axial[::-1, ::-1].T)).save(out / f"z{k:03d}.png")


def mirror_folder(folder: Path, out: Path) -> Path:
    """The folder's PNGs mirrored left-right (a PNG has no header to flip)."""
    out.mkdir(parents=True, exist_ok=True)
    for png in sorted(folder.glob("*.png")):
        Image.fromarray(np.ascontiguousarray(np.asarray(Image.open(png))[:, ::-1])).save(out / png.name)
    return out


def slice_sets(
    data: Path, work: Path, window: tuple[float, float] | None = None
) -> dict[str, tuple[dict[str, Path], float]]:
    """Per source: its bare PNG folder as it is and mirrored, and their true pixel spacing."""
    sets: dict[str, tuple[dict[str, Path], float]] = {}
    kits = data / "kits19_slices"
    meta = json.loads((kits / "slices.json").read_text(encoding="utf-8"))
    bare = work / "kits19" / "as_is"
    if not bare.exists():
        bare.mkdir(parents=True)
        for png in sorted((kits / "images").glob("*.png")):  # their pixels are HU clipped to [0, 255]
            hu = np.asarray(Image.open(png)).astype(np.float32)
            Image.fromarray(np.ascontiguousarray(to_8bit(hu, window))).save(bare / png.name)
    by_spacing: dict[float, list[str]] = {}
    for name, entry in meta.items():
        by_spacing.setdefault(float(entry["voxel_spacing_mm_axis0_1_2"][1]), []).append(name)
    # check-sides is told one spacing a call: one folder per spacing.
    for spacing, names in sorted(by_spacing.items()):
        folder = work / "kits19" / f"{spacing:.4f}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(bare / name, folder / name)
        sets[f"KiTS19 {spacing:.2f} mm"] = ({"as is": folder}, spacing)
    volumes = {
        "ircadb 01": (load_nifti(data / "ircadb" / "patient_01" / "ct.nii.gz"), 6),
        "ircadb 07": (load_nifti(data / "ircadb" / "patient_07" / "ct.nii.gz"), 6),
        "ts_example DICOM": (load_dicom_series(data / "ts_example" / "dicom"), 1),
    }
    for name, (volume, step) in volumes.items():
        folder = work / name.replace(" ", "_") / "as_is"
        if not folder.exists():
            write_pngs(volume, folder, step, window)
        sets[name] = ({"as is": folder}, float(volume.spacing[0]))
    for name, (folders, _) in sets.items():
        folders["mirrored"] = mirror_folder(folders["as is"], work / "mirrored" / name.replace(" ", "_"))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "png_field_of_view")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE (default: the shipped one).")
    parser.add_argument("--name", default="png_field_of_view")
    parser.add_argument(
        "--window", type=float, nargs=2, metavar=("LEVEL", "WIDTH"), help="Export through it."
    )
    args = parser.parse_args()
    models = model_specs(parser, args.model) or {"shipped": [SHIPPED]}
    meta = json.loads((args.data / "kits19_slices" / "slices.json").read_text(encoding="utf-8"))
    held = {entry["kits19_case"] for entry in meta.values()}
    kits = kits19_spacings(args.data / "kits19_masks", held)
    window = tuple(args.window) if args.window else None
    sets = slice_sets(args.data, args.work, window)
    others = {name: spacing for name, (_, spacing) in sets.items() if not name.startswith("KiTS19")}
    rows = []
    for model_name, paths in models.items():
        model = SideModel.load(paths)
        for reading_name, reading in READINGS.items():
            tally: dict[str, dict[str, int]] = {}
            for set_name, (folders, spacing) in sets.items():
                source = "KiTS19" if set_name.startswith("KiTS19") else set_name
                png = reading or PngReading(spacing=spacing)
                for state, folder in folders.items():
                    right = "ok" if state == "as is" else "flipped"
                    t = tally.setdefault(f"{source} {state}", {"right": 0, "wrong": 0, "unsure": 0})
                    for path, loader in plan_scans([folder], png):
                        t[outcome(read_checked(model, loader(path)), right)] += 1
            for key, t in tally.items():
                rows.append({"model": model_name, "reading": reading_name, "slices": key, **t})
    pop = {"KiTS19 (without the kits19_slices patients)": population(kits)}
    pop["other real scans here, spacing mm"] = others
    export = f"through window {window[0]:g}/{window[1]:g}" if window else "of HU clipped to [0, 255]"
    data = (
        "real: KiTS19 labels' headers; single slices of KiTS19, ircadb 01 and 07 and ts_example's DICOM as "
        f"8-bit PNGs {export}"
    )
    report(args.name, rows, {"population": pop, "data": data, "export": export})
    print(json.dumps(pop, indent=1))


if __name__ == "__main__":
    main()

"""The "values not HU" test read on every step-th pixel (as ``qc.inputs`` reads) against block means.

``qc.inputs.read_scan`` measures the share of the band under the skin that reads as fat on every step-th
pixel at about 2 mm, where ``qc.levels`` reads block means. This study measures the alternative: the
median fat share per scan and per single slice, both ways, on the real CT here (ircadb 01, 07 and
ts_example as volumes and every ninth axial slice, as HU, clipped to [-125, 275] and [0, 255], and
exported through 40/400 and 50/350 windows read as HU) and the 24 KiTS19 slices, and counts where the
two ways fall on different sides of ``MIN_RIM_FAT``: a scan in HU that block means would withhold as
"not HU", or the reverse. Real-data results. Writes ``results/rim_fat_reading.json``.

Usage: python benchmarks/studies/rim_fat_reading.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from laterality_ood import VALUES, axial_slices

from _common import report
from sidepair.data.sides import body_region, hull_mask
from sidepair.data.volume import Volume, load_nifti
from sidepair.qc import inputs
from sidepair.qc.levels import block_means
from sidepair.qc.scans import plan_scans

REPO = Path(__file__).resolve().parents[2]
SCANS = ("ircadb/patient_01", "ircadb/patient_07", "ts_example")
STATES = (
    "HU",
    "clipped [-125, 275]",
    "clipped [0, 255]",
    "window 40/400 read as HU",
    "window 50/350 read as HU",
)


def rim_fat(volume: Volume, blocks: bool) -> float:
    """``read_scan``'s median fat share of the band under the skin, on strided pixels or block means."""
    array = volume.array
    floor = float(array.min())
    clipped = floor > inputs.AIR_HU
    step = max(1, int(inputs.READ_MM // float(min(volume.spacing[:2]))))
    spacing = float(min(volume.spacing[:2])) * step
    fat_at = max(floor + 0.5, inputs.FAT_HU) if clipped else inputs.FAT_HU
    tissue_floor = max(floor + 1.0, -500.0)
    shares = []
    for z in inputs.body_slices(array, tissue_floor):
        image = block_means(array[:, :, int(z)], step) if blocks else array[::step, ::step, int(z)]
        body = inputs.trunk_region(body_region(image, spacing, tissue_floor), spacing)
        if body is None:
            continue
        hull = hull_mask(body)
        depth = inputs.depth_under_skin(hull, spacing)
        band = hull & (depth >= inputs.RIM_MM[0]) & (depth <= inputs.RIM_MM[1])
        if band.any():
            shares.append(float((image[band] <= fat_at).mean()))
    return float(np.median(shares)) if shares else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    readings = []  # (scan, state, kind, strided, blocks)
    for name in SCANS:
        ct = load_nifti(args.data / name / "ct.nii.gz")
        for state in STATES:
            volume = Volume(VALUES[state](ct.array), ct.affine, ct.source)
            for kind, scan in [("volume", volume), *(("slice", s) for s in axial_slices(volume, 9))]:
                readings.append((str(scan.source).split("data/")[-1], state, kind,
                                 rim_fat(scan, False), rim_fat(scan, True)))  # fmt: skip
    for path, loader in plan_scans([args.data / "kits19_slices"]):
        scan = loader(path)
        readings.append((path.name, "kits19 as is", "slice", rim_fat(scan, False), rim_fat(scan, True)))
    rows = []
    for state in (*STATES, "kits19 as is"):
        for kind in ("volume", "slice"):
            mine = [r for r in readings if r[1] == state and r[2] == kind]
            if not mine:
                continue
            strided, blocks = np.array([r[3] for r in mine]), np.array([r[4] for r in mine])
            line = inputs.MIN_RIM_FAT
            rows.append({
                "state": state, "kind": kind, "n": len(mine),
                "strided (today)": f"{strided.min():.2f}-{strided.max():.2f}",
                "block means": f"{blocks.min():.2f}-{blocks.max():.2f}",
                "sides of the line differ": int(((strided < line) != (blocks < line)).sum()),
                "differ at": "; ".join(f"{r[0]} {r[3]:.2f} -> {r[4]:.2f}" for r in mine
                                       if (r[3] < line) != (r[4] < line)),
            })  # fmt: skip
    report("rim_fat_reading", rows, {"data": "real: ircadb 01, 07, ts_example, kits19_slices",
                                     "min_rim_fat": inputs.MIN_RIM_FAT})  # fmt: skip


if __name__ == "__main__":
    main()

"""The body's centre in real CT clipped to [0, 255] (an 8-bit export's HU) against the same CT whole.

``check-sides`` cuts its half sections at the body's centre, and ``prepare`` assigns kidney sides from its
midline; in a clipped export fat reads as air, and the centre must still be the body's. For every axial
slice about 3 mm apart that holds body, the left-right (x) distance between ``body_centre`` of the slice
clipped and of the slice whole; beside it, the centroid of the tissue above the clipped minimum (what the
centre was before). Also the whole volume's x and y distance. Real data: ts_example, ircadb 01 and 07.
Writes results/clipped_body_centre.json and a table. (tests/realdata/test_clipped_body.py asserts bounds.)

Usage: python benchmarks/studies/clipped_body_centre.py [--data ../shared/data] [--every-mm 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from laterality_ood import axial_slices

from _common import report
from sidepair.data.sides import body_centre
from sidepair.data.volume import load_nifti

REPO = Path(__file__).resolve().parents[2]
SCANS = ["ts_example", "ircadb/patient_01", "ircadb/patient_07"]


def tissue_centroid_x(axial: np.ndarray, affine: np.ndarray) -> float:
    """World x of the centroid of the voxels above the slice's minimum (the centre used before)."""
    ij = np.argwhere(axial[:, :, 0] > axial.min()).astype(float).mean(axis=0)
    return float((affine[:3, :3] @ np.array([ij[0], ij[1], 0.0]) + affine[:3, 3])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--every-mm", type=float, default=3.0)
    args = parser.parse_args()
    rows = []
    for scan in SCANS:
        volume = load_nifti(args.data / scan / "ct.nii.gz")
        array, affine = volume.array, volume.affine
        whole = body_centre(array, affine)
        clipped = body_centre(np.clip(array, 0, 255), affine)
        step = max(1, int(round(args.every_mm / float(volume.spacing[2]))))
        now, before = [], []
        for axial in axial_slices(volume, step):
            if (axial.array > -500).mean() < 0.05:
                continue
            x_whole = body_centre(axial.array, axial.affine)[0]
            kept = np.clip(axial.array, 0, 255)
            now.append(abs(body_centre(kept, axial.affine)[0] - x_whole))
            before.append(abs(tissue_centroid_x(kept, axial.affine) - x_whole))
        rows.append(
            {
                "scan": scan,
                "slices": len(now),
                "median_mm": round(float(np.median(now)), 1),
                "p90_mm": round(float(np.percentile(now, 90)), 1),
                "max_mm": round(float(np.max(now)), 1),
                "before_median_mm": round(float(np.median(before)), 1),
                "before_max_mm": round(float(np.max(before)), 1),
                "volume_x_mm": round(abs(float(clipped[0] - whole[0])), 1),
                "volume_y_mm": round(abs(float(clipped[1] - whole[1])), 1),
            }
        )
    data = "real: ts_example, ircadb 01 and 07 (HU, and clipped to [0, 255])"
    report("clipped_body_centre", rows, {"data": data})


if __name__ == "__main__":
    main()

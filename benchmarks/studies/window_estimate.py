"""Can check-sides find an 8-bit export's display window from the slice itself? A measured proposal.

check-sides withholds a slice whose values are not HU (``values not HU``: an 8-bit export through a
display window, read as if its pixels were HU) and asks for ``--intensity SLOPE INTERCEPT``. A QC tool
often meets a folder of such PNGs with no record of the window. This study tries the physics answer
without changing check-sides: two tissues of known CT number, found by where they lie, fix the line from
pixel values to HU. Subcutaneous fat (-100 HU) is the commonest value of the band 2-15 mm under the skin,
soft tissue (+60 HU: muscle 40-60, enhanced organs up to about 120) the commonest value deeper than 20 mm
that lies above the fat; slope = 160 / (tissue - fat), intercept = -100 - slope * fat. Nothing here is
fitted to the data.

Real slices (every third of ircadb 01 and 07, every second of ts_example) are exported through four
abdominal windows (level/width 40/400, 50/350, 0/500, 60/360) to 0-255, and for each: the estimate
against the true line (slope error, intercept error), per slice and pooled per scan (the median of its
slices' anchors), and what the shipped side model says of each single slice read through its own
estimate (right / confidently wrong / ``unsure``), beside the same slices as HU. Real data. Writes
``results/window_estimate.json`` and a table.

Usage: python benchmarks/studies/window_estimate.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from laterality_ood import axial_slices, window_read_as_hu

from _common import report
from sidepair.data.sides import body_region, hull_mask
from sidepair.data.volume import Volume, load_nifti
from sidepair.qc.inputs import depth_under_skin, trunk_region
from sidepair.qc.levels import _blocks
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
WINDOWS = ((40, 400), (50, 350), (0, 500), (60, 360))
FAT_HU, TISSUE_HU = -100.0, 60.0
SCANS = {
    "ircadb 01": ("ircadb/patient_01", 3),
    "ircadb 07": ("ircadb/patient_07", 3),
    "ts_example": ("ts_example", 2),
}


def anchors(image: np.ndarray, spacing: float) -> tuple[float, float] | None:
    """Pixel values of subcutaneous fat and of deep soft tissue in one exported slice; None: not found."""
    step = max(1, int(2.0 // max(spacing, 1e-3)))
    image, spacing = _blocks(image, step), spacing * step
    body = trunk_region(body_region(image, spacing, float(image.min()) + 1.0), spacing)
    if body is None or body.sum() * spacing**2 < 100.0 * 100.0:
        return None
    hull = hull_mask(body)
    depth = depth_under_skin(hull, spacing)
    band = image[hull & (depth > 2) & (depth < 15)]
    band = band[(band > 0) & (band < 255)]  # values at the window's ends say nothing of where they lie
    if band.size < 50:
        return None
    counts, edges = np.histogram(band, bins=64, range=(0, 256))
    fat = float(edges[np.argmax(counts)] + 2)
    deep = image[hull & (depth > 20)]
    deep = deep[(deep > fat + 8) & (deep < 255)]
    if deep.size < 50:
        return None
    counts, edges = np.histogram(deep, bins=64, range=(0, 256))
    return fat, float(edges[np.argmax(counts)] + 2)


def line(fat: float, tissue: float) -> tuple[float, float] | None:
    """(slope, intercept) from pixel values to HU through the two anchors; None when implausible."""
    if tissue - fat < 8:
        return None
    slope = (TISSUE_HU - FAT_HU) / (tissue - fat)
    return slope, FAT_HU - slope * fat


def outcome(check) -> str:
    """A slice's outcome when the right verdict is ``ok``."""
    return "right" if check.verdict == "ok" else "wrong" if check.verdict == "flipped" else "unsure"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = SideModel.load()
    table, per_slice = [], []
    for name, (folder, step) in SCANS.items():
        volume = load_nifti(args.data / folder / "ct.nii.gz")
        slices = list(axial_slices(volume, step))
        as_hu = defaultdict(int)
        for s in slices:
            as_hu[outcome(model.check(s))] += 1
        for level, width in WINDOWS:
            export = window_read_as_hu(level, width)
            true_slope, true_intercept = width / 255, level - width / 2
            found, outcomes = [], defaultdict(int)
            for s in slices:
                pixels = export(np.asarray(s.array, np.float32))
                a = anchors(pixels[:, :, 0], float(min(s.spacing[:2])))
                fit = line(*a) if a else None
                row = {"scan": name, "window": f"{level}/{width}", "slice": str(s.source), "anchors": a}
                if fit is None:
                    outcomes["no estimate"] += 1
                    per_slice.append(row | {"slope": None, "intercept": None, "verdict": "no estimate"})
                    continue
                found.append((a, fit))
                check = model.check(Volume(pixels * fit[0] + fit[1], s.affine, s.source))
                outcomes[outcome(check)] += 1
                fitted = {"slope": round(fit[0], 3), "intercept": round(fit[1], 1)}
                per_slice.append(row | fitted | {"verdict": check.verdict, "reason": check.reason})
            slopes = np.array([f[1][0] for f in found])
            intercepts = np.array([f[1][1] for f in found])
            slope_err = np.abs(slopes / true_slope - 1)
            pooled = line(*np.median([f[0] for f in found], axis=0)) if found else None
            table.append({
                "data": f"real: {name}", "window": f"{level}/{width}", "slices": len(slices),
                "estimated": len(found),
                "slope within 20 %": int((slope_err <= 0.2).sum()),
                "intercept within 25 HU": int((np.abs(intercepts - true_intercept) <= 25).sum()),
                "slope / true (median)": round(float(np.median(slopes / true_slope)), 2) if found else None,
                "pooled slope / true": round(pooled[0] / true_slope, 2) if pooled else None,
                "pooled intercept - true": round(pooled[1] - true_intercept, 1) if pooled else None,
                "right / wrong / unsure (estimated)": f"{outcomes['right']} / {outcomes['wrong']} / "
                f"{outcomes['unsure'] + outcomes['no estimate']}",
                "right / wrong / unsure (as HU)": f"{as_hu['right']} / {as_hu['wrong']} / {as_hu['unsure']}",
            })  # fmt: skip
    extra = {"data": "real: ircadb 01, 07, ts_example (exported through display windows)",
             "anchors_hu": {"fat": FAT_HU, "soft tissue": TISSUE_HU}, "slices": per_slice}  # fmt: skip
    report("window_estimate", table, extra)


if __name__ == "__main__":
    main()

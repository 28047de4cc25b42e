"""check-sides --find-window: an export's display window found from the slice itself, measured.

check-sides withholds a slice whose values are not HU (``values not HU``: an export through a display
window, read as if its pixels were HU) unless told ``--intensity SLOPE INTERCEPT``. With ``--find-window``
it finds the window from two tissues of known CT number (``sidepair.qc.window``: subcutaneous fat -100
HU, deep soft tissue +60 HU), which nothing here fits to the data.

Real slices (every third of ircadb 01 and 07, every second of ts_example) are exported through four
abdominal windows (level/width 40/400, 50/350, 0/500, 60/360) to 0-255, and each is checked alone as
``check-sides --find-window`` checks it: the window found against the true one (slope ratio, intercept
error) and the verdict (right / confidently wrong / ``unsure``), beside the same slices as HU and beside
the pooled estimate of each whole exported scan (``find_window`` on the volume). Real data. Writes
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
from sidepair.data.volume import Volume, load_nifti
from sidepair.qc.check import read_checked
from sidepair.qc.side_model import SideModel
from sidepair.qc.window import find_window

REPO = Path(__file__).resolve().parents[2]
WINDOWS = ((40, 400), (50, 350), (0, 500), (60, 360))
SCANS = {
    "ircadb 01": ("ircadb/patient_01", 3),
    "ircadb 07": ("ircadb/patient_07", 3),
    "ts_example": ("ts_example", 2),
}


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
                exported = Volume(export(np.asarray(s.array, np.float32)), s.affine, s.source)
                fit = find_window(exported)
                check = read_checked(model, exported, find_windows=True)
                outcomes[outcome(check)] += 1
                row = {"scan": name, "window": f"{level}/{width}", "slice": str(s.source)}
                if fit is not None:
                    found.append(fit)
                    row |= {"slope": round(fit[0], 3), "intercept": round(fit[1], 1)}
                said = {"verdict": check.verdict, "reason": check.reason, "notes": check.notes}
                per_slice.append(row | said)
            slopes = np.array([f[0] for f in found])
            intercepts = np.array([f[1] for f in found])
            slope_err = np.abs(slopes / true_slope - 1)
            whole = Volume(export(np.asarray(volume.array, np.float32)), volume.affine, volume.source)
            pooled = find_window(whole)
            table.append({
                "data": f"real: {name}", "window": f"{level}/{width}", "slices": len(slices),
                "estimated": len(found),
                "slope within 20 %": int((slope_err <= 0.2).sum()),
                "intercept within 25 HU": int((np.abs(intercepts - true_intercept) <= 25).sum()),
                "slope / true (median)": round(float(np.median(slopes / true_slope)), 2) if found else None,
                "pooled slope / true": round(pooled[0] / true_slope, 2) if pooled else None,
                "pooled intercept - true": round(pooled[1] - true_intercept, 1) if pooled else None,
                "right / wrong / unsure (--find-window)": f"{outcomes['right']} / {outcomes['wrong']} / "
                f"{outcomes['unsure']}",
                "right / wrong / unsure (as HU)": f"{as_hu['right']} / {as_hu['wrong']} / {as_hu['unsure']}",
            })  # fmt: skip
    data = "real: ircadb 01, 07, ts_example (exported through display windows)"
    report("window_estimate", table, {"data": data, "slices": per_slice})


if __name__ == "__main__":
    main()

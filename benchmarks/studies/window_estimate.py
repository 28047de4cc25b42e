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

With ``--model NAME=FILE`` (repeat) the slices are read by those side models instead of the shipped one,
each row naming its model; ``--mirrored`` also reads every slice mirrored left-right (the right verdict
then ``flipped``), and ``--name`` names the result file.

Usage: python benchmarks/studies/window_estimate.py [--data ../shared/data] [--model NAME=FILE ...]
       [--mirrored] [--name window_estimate]
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from laterality_ood import axial_slices, mirrored, window_read_as_hu

from _common import model_specs, report
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


def outcome(check, right: str = "ok") -> str:
    """A slice's outcome when the right verdict is ``right``."""
    return "right" if check.verdict == right else "unsure" if check.verdict == "unsure" else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE (default: the shipped one).")
    parser.add_argument("--mirrored", action="store_true", help="Also read every slice mirrored.")
    parser.add_argument("--name", default="window_estimate")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    models = {name: SideModel.load(paths) for name, paths in model_specs(parser, args.model).items()}
    models = models or {"shipped": SideModel.load()}
    states = {"as is": "ok", "mirrored": "flipped"} if args.mirrored else {"as is": "ok"}
    table, per_slice = [], []
    for model_name, model in models.items():
        for state, right in states.items():
            for name, (folder, step) in SCANS.items():
                volume = load_nifti(args.data / folder / "ct.nii.gz")
                volume = mirrored(volume) if state == "mirrored" else volume
                rows, slices = _scan(model, volume, step, right)
                tag = {"model": model_name, "state": state} if args.model or args.mirrored else {}
                table += [tag | {"data": f"real: {name}"} | r for r in rows]
                per_slice += [tag | {"scan": name} | r for r in slices]
    data = "real: ircadb 01, 07, ts_example (exported through display windows)"
    report(args.name, table, {"data": data, "slices": per_slice})


def _scan(model: SideModel, volume: Volume, step: int, right: str) -> tuple[list[dict], list[dict]]:
    """One scan's slices as HU and through each window: the rows of the table, and each slice's row."""
    slices = list(axial_slices(volume, step))
    as_hu = defaultdict(int)
    for s in slices:
        as_hu[outcome(model.check(s), right)] += 1
    table, per_slice = [], []
    for level, width in WINDOWS:
        export = window_read_as_hu(level, width)
        true_slope, true_intercept = width / 255, level - width / 2
        found, outcomes = [], defaultdict(int)
        for s in slices:
            exported = Volume(export(np.asarray(s.array, np.float32)), s.affine, s.source)
            fit = find_window(exported)
            check = read_checked(model, exported, find_windows=True)
            outcomes[outcome(check, right)] += 1
            row = {"window": f"{level}/{width}", "slice": str(s.source)}
            if fit is not None:
                found.append(fit)
                row |= {"slope": round(fit[0], 3), "intercept": round(fit[1], 1)}
            per_slice.append(row | {"verdict": check.verdict, "reason": check.reason, "notes": check.notes})
        slopes = np.array([f[0] for f in found])
        intercepts = np.array([f[1] for f in found])
        slope_err = np.abs(slopes / true_slope - 1)
        whole = Volume(export(np.asarray(volume.array, np.float32)), volume.affine, volume.source)
        pooled = find_window(whole)
        table.append({
            "window": f"{level}/{width}", "slices": len(slices),
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
    return table, per_slice


if __name__ == "__main__":
    main()

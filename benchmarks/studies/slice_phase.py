"""How much a single slice's side verdict turns on where the model's grid falls, and what reading it at
several grid phases changes.

``check-sides`` brings a slice to its model's 3 mm grid, which starts at the slice's first pixel. Drop a
pixel and the grid samples the anatomy elsewhere: the same slice, cropped by one pixel or mirrored (its
first pixel is then its last), reads differently. Since this study a single slice is read at 3 x 3 grid
phases and their logits averaged (``SideModel.slice_phases``, ``qc.side_model.grid_phases``).

Slices: those of ``png_field_of_view.py``, 184 real single slices as bare 8-bit PNGs of HU clipped to
[0, 255] (the 24 KiTS19 slices, every sixth of ircadb 01 and 07, ts_example's 20 DICOM slices), as they are
and mirrored, read as check-sides reads them by default (a 400 mm field of view, every gate). Per model,
each slice is read at one phase (as check-sides did before) and at 3 x 3. Reported per model:

- right / confidently wrong / ``unsure`` per source and reading;
- ``phase sd``: the median over the slices (as they are) of the standard deviation of the evidence
  (log-odds) over the nine phases: what one reading's grid phase moves it by;
- ``mirror gap``: the median of |evidence as is + evidence mirrored|, zero for a reading blind to the
  mirror (a mirrored slice should read exactly as the complement);
- ``split pairs``: slices whose as-is and mirrored verdicts do not agree (one decided, the other not, or
  both decided the same way).

Real-data results. Writes results/slice_phase.json (``--name``) and a table.

Usage: python benchmarks/studies/slice_phase.py [--model NAME=FILE ...] [--data ../shared/data]
       [--work runs/png_field_of_view] [--name slice_phase]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from png_field_of_view import slice_sets
from window_estimate import outcome

from _common import model_specs, report
from sidepair.qc.check import read_checked
from sidepair.qc.scans import PngReading, plan_scans
from sidepair.qc.side_model import SHIFTS, SLICE_PHASES, SideModel

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "src" / "sidepair" / "resources" / "side_model.pt"
READERS = {"one phase": 1, f"{SLICE_PHASES} x {SLICE_PHASES} phases": SLICE_PHASES}


def phase_sd(model: SideModel, volume) -> float:
    """The standard deviation of a slice's evidence over the grid phases it is read at."""
    model.slice_phases = SLICE_PHASES
    _, logits, _ = model.section_logits(volume)
    per_phase = logits.reshape(2, -1, SHIFTS).mean(axis=2)  # (sides, phases)
    return float(np.std(per_phase[0] - per_phase[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "png_field_of_view")
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE (default: the shipped one).")
    parser.add_argument("--name", default="slice_phase")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the bare PNGs' assumed-spacing warning, once per folder
    models = model_specs(parser, args.model) or {"shipped": [SHIPPED]}
    sets = slice_sets(args.data, args.work)
    rows = []
    for model_name, paths in models.items():
        model = SideModel.load(paths)
        sds: list[float] = []
        for reader, phases in READERS.items():
            tally: dict[str, dict[str, int]] = {}
            gaps, split = [], 0
            for set_name, (folders, _) in sets.items():
                source = "KiTS19" if set_name.startswith("KiTS19") else set_name
                read: dict[str, dict[str, object]] = {}
                for state, folder in folders.items():
                    t = tally.setdefault(source, {"right": 0, "wrong": 0, "unsure": 0})
                    for path, loader in plan_scans([folder], PngReading()):
                        volume = loader(path)
                        model.slice_phases = phases
                        check = read_checked(model, volume)
                        t[outcome(check, "ok" if state == "as is" else "flipped")] += 1
                        read.setdefault(path.name, {})[state] = check
                        if phases == 1 and state == "as is":
                            sds.append(phase_sd(model, volume))
                for pair in read.values():
                    a, m = pair["as is"], pair["mirrored"]
                    gaps.append(abs(a.level_evidence[0] + m.level_evidence[0]))
                    split += {a.verdict, m.verdict} not in ({"ok", "flipped"}, {"unsure"})
            for source, t in tally.items():
                rows.append({"model": model_name, "reading": reader, "slices": source, **t})
            total = {k: sum(t[k] for t in tally.values()) for k in ("right", "wrong", "unsure")}
            rows.append({
                "model": model_name, "reading": reader, "slices": "all, as is and mirrored", **total,
                "phase sd": round(float(np.median(sds)), 3), "mirror gap": round(float(np.median(gaps)), 3),
                "split pairs": split,
            })  # fmt: skip
    data = (
        "real: single slices of KiTS19, ircadb 01 and 07 and ts_example's DICOM as bare 8-bit PNGs of HU "
        "clipped to [0, 255], as they are and mirrored, at check-sides' defaults"
    )
    report(args.name, rows, {"data": data, "slice_phases": SLICE_PHASES})


if __name__ == "__main__":
    main()

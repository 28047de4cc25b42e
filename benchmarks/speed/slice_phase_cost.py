"""What reading a single slice at 3 x 3 grid phases costs check-sides, against one phase.

check-sides reads a single slice at ``SLICE_PHASES`` x ``SLICE_PHASES`` grid phases (``qc.side_model``):
the model runs on every phase's crops, while the gates (values, level) read the slice once. Both readings
of the 24 real KiTS19 slices (their folder with ``slices.json``, the shipped model, torch's default threads)
are timed side by side, alternately, in one run; the minimum of ``--repeats`` is kept. 3D scans are read
at one phase and are not timed here.

Real data (kits19_slices). Writes ``results/slice_phase_cost.json`` and a table.

Usage: python benchmarks/speed/slice_phase_cost.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import report, timed
from sidepair.qc.check import check_paths
from sidepair.qc.side_model import SLICE_PHASES, SideModel

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = args.data / "kits19_slices"
    model = SideModel.load()
    times: dict[int, list[float]] = {1: [], SLICE_PHASES: []}
    for _ in range(args.repeats):
        for phases in times:
            model.slice_phases = phases
            checks, seconds = timed(check_paths, [folder], model, progress=False)
            assert sum(c.kind == "scan" for c in checks) == 24
            times[phases].append(seconds)
    one, many = min(times[1]), min(times[SLICE_PHASES])
    rows = [
        {"reading": "one phase", "s per slice": one / 24, "s for 24 slices": one},
        {
            "reading": f"{SLICE_PHASES} x {SLICE_PHASES} phases",
            "s per slice": many / 24,
            "s for 24 slices": many,
        },
        {"reading": "ratio", "s per slice": many / one},
    ]
    report("slice_phase_cost", rows, {"data": "real: kits19_slices (24 PNG slices)", "repeats": args.repeats})


if __name__ == "__main__":
    main()

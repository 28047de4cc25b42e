"""`sidepair demo` from nothing: wall time, peak memory and the report's main table (phantom results).

Runs the README's first command in a fresh folder (phantom, store, pretraining, 3 label fractions x
2 seeds x scratch/SSL, evaluation, report) and writes results/demo.json. It took about 30 minutes
on 2 CPU cores at 960 steps a run (docs/measurements.md).

With ``--existing DIR`` it writes the JSON from a demo folder that already ran (its report's table; no
wall time, which only a run from nothing measures).

Usage: python benchmarks/speed/demo.py [--work DIR] [--jobs N] [--existing DEMO_DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from _common import measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Folder for the demo (default: a temp dir).")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--existing", type=Path, default=None, help="A demo folder that already ran.")
    args = parser.parse_args()
    if args.existing:
        out = args.existing
        timing: dict[str, float | None] = {"wall_s": None, "peak_rss_mib": None}
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-demo-"))
        out = work / "demo"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "sidepair", "demo", "--out", str(out)]
        if args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        timing = dict(measure(cmd))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = [
        {
            "init": t["init"],
            "fraction": t["fraction"],
            "train_cases": t["seg_train_labels"],
            "labels_union": t["train_labels_union"],
            "seeds": t["seeds"],
            "converged": t["converged"],
            "test_dice": t["kidney_dice"],
            "dice_sd": t["kidney_dice_sd"],
            "hd95_mm": t["kidney_hd95"],
            "nsd": t["kidney_nsd"],
        }
        for t in summary["main_table"]
    ]
    report(
        "demo",
        rows,
        {
            "data": summary["data"],
            "wall_s": timing["wall_s"],
            "peak_rss_mib": timing["peak_rss_mib"],
            "stages_s": summary["stages_s"],
            "report": str(out / "report.md"),
        },
    )
    if timing["wall_s"] is not None:
        print(
            f"demo wall time {timing['wall_s']:.0f} s, peak RSS of one process "
            f"{timing['peak_rss_mib']:.0f} MiB; {summary['data']}"
        )


if __name__ == "__main__":
    main()

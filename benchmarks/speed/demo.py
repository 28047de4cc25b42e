"""`sidepair demo` from nothing: wall time, peak memory and the report's main table (phantom results).

Runs the README's first command in a fresh folder (phantom, store, pretraining, 3 label fractions x
2 seeds x scratch/SSL, evaluation, report) and writes results/demo.json. It took about 30 minutes
on 2 CPU cores at 960 steps a run (docs/measurements.md).

Usage: python benchmarks/speed/demo.py [--work DIR] [--jobs N]
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
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-demo-"))
    out = work / "demo"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "sidepair", "demo", "--out", str(out)]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    timing = measure(cmd)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = [
        {
            "init": t["init"],
            "fraction": t["fraction"],
            "train_cases": t["train_cases"],
            "seeds": t["seeds"],
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
    print(
        f"demo wall time {timing['wall_s']:.0f} s, peak RSS of one process {timing['peak_rss_mib']:.0f} MiB; "
        f"{summary['data']}"
    )


if __name__ == "__main__":
    main()

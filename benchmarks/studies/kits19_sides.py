"""Left/right assignment over a folder of label maps: the 210 real KiTS19 segmentations by default.

Prints how many cases have two kidneys, one, a component split at the midline, and errors, and how
often the right kidney's centre lies below the left's (an anatomical check of the side assignment).
Real labels (no imaging). Writes results/kits19_sides.json (the summary; ``--out`` also writes every
case's row) and a table.

Usage: python benchmarks/studies/kits19_sides.py [../shared/data/kits19_masks] [--out sides.json]
       [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

from _common import report
from sidepair.data.sides import survey_label_file

MASKS = Path(__file__).resolve().parents[3] / "shared" / "data" / "kits19_masks"


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    two = [r for r in ok if r["sides"] == ["right", "left"]]
    lower = sum(r["centres_mm"]["right"][2] < r["centres_mm"]["left"][2] for r in two)
    return {
        "cases": len(rows),
        "errors": len(rows) - len(ok),
        "two_kidneys": len(two),
        "one_kidney": {Path(r["path"]).parent.name: r["sides"][0] for r in ok if len(r["sides"]) == 1},
        "no_kidney": sum(not r["sides"] for r in ok),
        "split_at_midline": [Path(r["path"]).parent.name for r in ok if r["split_at_midline"]],
        "several_components_one_side": [
            Path(r["path"]).parent.name for r in ok if any("components on the" in w for w in r["warnings"])
        ],
        "right_lower_than_left": f"{lower}/{len(two)}",
        "axcodes": Counter(r["axcodes"] for r in ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=MASKS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    files = sorted(str(p) for p in args.folder.glob("case_*/segmentation.nii.gz"))
    if not files:  # a summary of 0 cases would overwrite the committed result file with nothing
        sys.exit(f"{args.folder}: no case_*/segmentation.nii.gz found (KiTS19's masks, e.g. ../shared/data)")
    with Pool(args.workers) as pool:
        rows = pool.map(survey_label_file, files)
    summary = {k: dict(v) if isinstance(v, Counter) else v for k, v in summarise(rows).items()}
    report("kits19_sides", [{"figure": k, "value": v} for k, v in summary.items()],
           {"data": f"real label maps: {len(rows)} files of {args.folder.name}/"})  # fmt: skip
    if args.out:
        args.out.write_text(
            json.dumps(
                {"summary": summary, "cases": rows},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

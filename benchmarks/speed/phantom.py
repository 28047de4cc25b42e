"""Time to generate the phantom: 20 cases of 256 x 256 x 100 (the default), written as NIfTI.

Usage: python benchmarks/speed/phantom.py [--cases 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import report, timed
from sidepair.data.phantom import generate_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds = timed(generate_phantom, Path(tmp) / "p", cases=args.cases, seed=0)
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*.nii.gz")) / 1e6
    report(
        "phantom",
        [
            {
                "cases": args.cases,
                "shape": "256x256x100",
                "wall_s": seconds,
                "s_per_case": seconds / args.cases,
                "nifti_mb": size_mb,
            }
        ],
        {"data": "phantom (generated here, seed 0)"},
    )


if __name__ == "__main__":
    main()

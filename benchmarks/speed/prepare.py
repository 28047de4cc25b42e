"""Time and peak memory of `prepare` on one KiTS19-sized volume.

The volume is a phantom built on a real KiTS19 label map (default case_00000: 611 x 512 x 512 voxels,
IPL) with `--masks-from`, so the geometry and size are KiTS19's. `prepare` runs in a child process with
the `kits19-paper` preset; its wall time and peak resident memory are reported.

Usage: python benchmarks/speed/prepare.py [--case case_00000] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib

from _common import measure, report

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="case_00000")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    src = args.shared / "kits19_masks" / args.case / "segmentation.nii.gz"
    if not src.exists():
        sys.exit(f"{src}: not found (this benchmark needs ../shared/data/kits19_masks)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "masks" / args.case).mkdir(parents=True)
        (tmp / "masks" / args.case / "segmentation.nii.gz").symlink_to(src.resolve())
        sidepair = [sys.executable, "-m", "sidepair"]
        gen = measure(
            [
                *sidepair,
                "phantom",
                "--out",
                str(tmp / "data"),
                "--cases",
                "1",
                "--masks-from",
                str(tmp / "masks"),
                "--no-montage",
            ]
        )
        shape = nib.load(tmp / "data" / "case_00000" / "imaging.nii.gz").shape
        prep = measure(
            [
                *sidepair,
                "prepare",
                "--data",
                str(tmp / "data"),
                "--out",
                str(tmp / "store"),
                "--preset",
                "kits19-paper",
            ]
        )
        rows = [
            {
                "step": "phantom --masks-from",
                "shape": "x".join(map(str, shape)),
                "wall_s": gen["wall_s"],
                "peak_rss_mib": gen["peak_rss_mib"],
            },
            {
                "step": "prepare kits19-paper",
                "shape": "x".join(map(str, shape)),
                "wall_s": prep["wall_s"],
                "peak_rss_mib": prep["peak_rss_mib"],
            },
        ]
    report("prepare", rows, {"data": f"phantom on real KiTS19 label map {args.case} (not patient CT)"})


if __name__ == "__main__":
    main()

"""Time and peak memory of `sidepair predict` on a 512 x 512 x 200 CT (phantom): PyTorch, ONNX Runtime.

A model is trained briefly on a small phantom (the timing depends on the architecture, not on how
well it is trained), exported to ONNX, and each `sidepair predict` runs in a child process on a
512 x 512 x 200 phantom case (CPU). Wall time includes starting Python and loading the model. The
targets are <= 30 s and <= 4 GB on 2 CPU cores.

Usage: python benchmarks/speed/predict.py [--preset fast-2d] [--work DIR] [--model RUN]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import brief_model, measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast-2d")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--model", type=Path, default=None, help="A trained run (default: train one briefly)."
    )
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 200])
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-predict-"))
    sidepair = [sys.executable, "-m", "sidepair"]
    model = args.model or brief_model(work, args.preset)
    big = work / "big"
    if not (big / "case_00000" / "imaging.nii.gz").exists():
        measure(
            [
                *sidepair,
                "phantom",
                "--out",
                str(big),
                "--cases",
                "1",
                "--no-montage",
                "--shape",
                *map(str, args.shape),
            ]
        )
    ct = big / "case_00000" / "imaging.nii.gz"
    onnx = work / "model.onnx"
    exported = measure([*sidepair, "export", "--model", str(model), "--format", "onnx", "--out", str(onnx)])
    rows = []
    for name, path in (("pytorch", model), ("onnxruntime", onnx)):
        out = work / f"mask_{name}.nii.gz"
        result = measure(
            [
                *sidepair,
                "predict",
                "-i",
                str(ct),
                "-o",
                str(out),
                "--model",
                str(path),
                "--device",
                "cpu",
                "--overwrite",
            ]
        )
        facts = json.loads(out.with_name(f"mask_{name}.json").read_text(encoding="utf-8"))
        rows.append(
            {
                "backend": name,
                "scan": "x".join(map(str, args.shape)),
                "wall_s": result["wall_s"],
                "peak_rss_gib": result["peak_rss_mib"] / 1024,
                "right_ml": facts["volume_ml"]["right"],
                "left_ml": facts["volume_ml"]["left"],
            }
        )
    import nibabel as nib
    import numpy as np

    a, b = (np.asarray(nib.load(work / f"mask_{n}.nii.gz").dataobj) for n in ("pytorch", "onnxruntime"))
    agree = float((a == b).mean())
    report(
        "predict",
        rows,
        {
            "preset": args.preset,
            "model": str(model),
            "export_s": exported["wall_s"],
            "voxel_agreement": agree,
            "data": "phantom",
        },
    )
    print(f"PyTorch and ONNX Runtime masks agree on {agree:.6%} of voxels (phantom, preset {args.preset})")


if __name__ == "__main__":
    main()

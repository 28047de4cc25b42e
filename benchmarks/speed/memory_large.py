"""Peak memory of `sidepair prepare` and `sidepair predict` on a 512 x 512 x 1000 CT (phantom).

The scan: a 512 x 512 x 250 phantom case, reoriented to RAS, with each axial slice repeated 4 times
(a thin-slice scan of the same body, z spacing divided by 4), written as imaging.nii.gz (int16) with
its label. Each command runs in a child process; peak RSS is the child's maximum resident set
(``getrusage``), which includes Python, PyTorch and the model. The targets are under 6 GB each (issue #7).

Usage: python benchmarks/speed/memory_large.py [--work DIR] [--model RUN] [--slices 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from _common import brief_model, measure, report


def thin_slice_case(work: Path, slices: int) -> Path:
    """A KiTS-layout folder with one 512 x 512 x ``slices`` case; returns the folder."""
    from sidepair.data.phantom import generate_phantom

    out = work / "big"
    case = out / "case_00000"
    if (case / "imaging.nii.gz").exists():
        return out
    base = work / "base"
    repeat = 4
    generate_phantom(base, cases=1, seed=3, shape=(512, 512, slices // repeat))
    case.mkdir(parents=True, exist_ok=True)
    for name, dtype in (("imaging", np.int16), ("segmentation", np.uint8)):
        # RAS first, so that the repeated axis is the slice axis (the phantom varies its orientation).
        img = nib.as_closest_canonical(nib.load(base / "case_00000" / f"{name}.nii.gz"))
        array = np.repeat(np.asarray(img.dataobj).astype(dtype), repeat, axis=2)
        affine = img.affine.copy()
        affine[:3, 2] /= repeat
        new = nib.Nifti1Image(array, affine)
        new.set_qform(affine, code=1)
        new.set_sform(affine, code=1)
        nib.save(new, case / f"{name}.nii.gz")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--model", type=Path, default=None, help="A trained run (default: train one briefly)."
    )
    parser.add_argument("--slices", type=int, default=1000)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-memory-"))
    sidepair = [sys.executable, "-m", "sidepair"]
    big = thin_slice_case(work, args.slices)
    shape = nib.load(big / "case_00000" / "imaging.nii.gz").shape
    model = args.model or brief_model(work)
    rows = []
    for preset in ("kits19-paper", "fast-2d"):
        out = work / f"store_{preset}"
        result = measure([*sidepair, "prepare", "--data", str(big), "--out", str(out), "--preset", preset])
        rows.append({"command": f"prepare --preset {preset}", **result})
    mask = work / "mask.nii.gz"
    cmd = [*sidepair, "predict", "-i", str(big / "case_00000" / "imaging.nii.gz"), "-o", str(mask)]
    result = measure([*cmd, "--model", str(model), "--overwrite"])
    rows.append({"command": "predict (fast-2d model, CPU)", **result})
    assert nib.load(mask).shape == shape
    for row in rows:
        row["peak_rss_gib"] = round(row.pop("peak_rss_mib") / 1024, 2)
        row["wall_s"] = round(row["wall_s"], 1)
        row["under_6_gb"] = row["peak_rss_gib"] * 2**30 < 6e9
        row.pop("rc")
    report(
        "memory_large",
        rows,
        {"data": f"phantom CT {shape} (int16 NIfTI), thin-slice copy of a 512x512x250 case"},
    )


if __name__ == "__main__":
    main()

"""A side model trained on one's own unlabelled archive, a few of whose headers are flipped, then used.

The path docs/check-sides.md documents for users (no label, no annotation):
``sidepair prepare --data ARCHIVE --preset laterality --side-check off``, ``sidepair pretrain --preset
laterality``, ``sidepair check-sides --model RUN``. Here the archive is the phantom (``--phantom-cases``
cases, ``--anatomy varied``) plus every real CT here but one, each real CT repeated ``--real-repeats``
times as a case so that it weighs like that many phantoms. A share ``--flip-share`` of the archive's
distinct scans (5 % by default, at least one) is stored with its header's left-right negated: the side
labels the pretraining takes from those headers are then wrong. Leave one patient out: the held-out real
CT is checked as a volume in three states (as it is, header flipped, array mirrored) and slice by slice
(every ``--step``-th axial slice, read alone).

Models trained with ircadb (CC BY-NC-ND) stay in ``--work``; they must never ship. Real-data results (the
phantom in training). Writes ``results/laterality_own_archive.json`` and a table.

Usage: python benchmarks/studies/laterality_own_archive.py [--data ../shared/data] [--work DIR]
       [--patients ircadb/patient_01 ...] [--epochs 15] [--flip-share 0.05] [--name NAME]

``--flip-share 0 --name laterality_own_archive_clean`` trains the same folds on the archive with every
header right (same phantom, same training seed): the control that says what the flipped scans cost.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from laterality_lopo import run, states
from laterality_ood import axial_slices

from _common import report
from sidepair.data.volume import load_nifti
from sidepair.qc.check import check_paths
from sidepair.qc.side_model import SideModel

REPO = Path(__file__).resolve().parents[2]
PATIENTS = ("ircadb/patient_01", "ircadb/patient_07", "ts_example")


def flipped_copy(ct: Path, out: Path) -> None:
    """``ct`` with its header's left-right negated (the array as it is): its sides read backwards."""
    img = nib.load(str(ct))
    affine = img.affine.copy()
    axis = int(np.argmax(np.abs(affine[0, :3])))
    affine[:, axis] *= -1
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), affine, img.header), str(out))


def archive(
    out: Path, phantom: Path, real: list[Path], repeats: int, flip_share: float, seed: int
) -> list[str]:
    """The archive in KiTS layout (``case_*/imaging.nii.gz``, no label); the names of the scans flipped."""
    scans = sorted(phantom.glob("case_*/imaging.nii.gz")) + real
    rng = np.random.default_rng(seed)
    n_flips = max(1, math.ceil(flip_share * len(scans))) if flip_share > 0 else 0
    flips = {scans[i] for i in rng.choice(len(scans), n_flips, replace=False)}
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for scan in scans:
        for _ in range(repeats if scan in real else 1):
            case = out / f"case_{n:05d}"
            case.mkdir(exist_ok=True)
            image = case / "imaging.nii.gz"
            if not image.exists():
                flipped_copy(scan, image) if scan in flips else image.symlink_to(scan.resolve())
            n += 1
    return sorted(str(s.relative_to(s.parents[1])) for s in flips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "own_archive")
    parser.add_argument("--patients", nargs="+", default=list(PATIENTS))
    parser.add_argument("--phantom-cases", type=int, default=40)
    parser.add_argument("--real-repeats", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--flip-share", type=float, default=0.05)
    parser.add_argument("--step", type=int, default=6, help="Every STEP-th axial slice, read alone.")
    parser.add_argument("--seed", type=int, default=0, help="Which scans are flipped.")
    parser.add_argument("--name", default="laterality_own_archive", help="The results file's name.")
    args = parser.parse_args()
    sidepair = [sys.executable, "-m", "sidepair"]
    phantom = args.work / "phantom"
    if not (phantom / "phantom.json").exists():
        run([*sidepair, "phantom", "--out", str(phantom), "--cases", str(args.phantom_cases), "--seed", "11",
             "--no-montage", "--anatomy", "varied"])  # fmt: skip
    rows = []
    for held_out in args.patients:
        fold = args.work / held_out.replace("/", "_") / f"flip{args.flip_share:g}"
        others = [args.data / p / "ct.nii.gz" for p in PATIENTS if p != held_out]
        flips = archive(fold / "archive", phantom, others, args.real_repeats, args.flip_share, args.seed)
        start = time.perf_counter()
        if not (fold / "store" / "store.json").exists():
            run([*sidepair, "prepare", "--data", str(fold / "archive"), "--format", "kits", "--out",
                 str(fold / "store"), "--preset", "laterality", "--side-check", "off"])  # fmt: skip
        run([*sidepair, "pretrain", "--store", str(fold / "store"), "--out", str(fold / "model"), "--preset",
             "laterality", "--epochs", str(args.epochs), "--device", "cpu", "--resume"])  # fmt: skip
        wall = time.perf_counter() - start
        model = SideModel.load(fold / "model")
        warnings.simplefilter("ignore")
        paths = states(args.data / held_out / "ct.nii.gz", fold / "states")
        volume = dict(zip(paths, check_paths(list(paths.values()), model, progress=False), strict=True))
        slices = [
            model.check(s) for s in axial_slices(load_nifti(args.data / held_out / "ct.nii.gz"), args.step)
        ]
        row = {"held out": held_out, "flipped in archive": ", ".join(flips) or "none", "epochs": args.epochs,
               "train wall s": round(wall)}  # fmt: skip
        for state, check in volume.items():
            row[f"volume {state}"] = f"{check.probability:.3f} {check.verdict}"
        for rule, verdicts in (
            (
                "0.75",
                [
                    "ok" if c.probability >= 0.75 else "flipped" if c.probability <= 0.25 else "unsure"
                    for c in slices
                ],
            ),
            ("now", [c.verdict for c in slices]),
        ):
            row[f"slices {rule}: right / wrong / unsure"] = (
                f"{verdicts.count('ok')} / {verdicts.count('flipped')} / {verdicts.count('unsure')}"
            )
        rows.append(row)
    data = "real CT held out one at a time (ircadb 01, 07, ts_example); archive: phantom + the other real CTs"
    report(args.name, rows, {"data": data, "args": {k: str(v) for k, v in vars(args).items()}})


if __name__ == "__main__":
    main()

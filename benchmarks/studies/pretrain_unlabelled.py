"""Annotation-free pretraining on a store of real CT with no label at all: plain and mirrored half sections.

Lays the three real CTs of ../shared/data (ts_example, ircadb patients 01 and 07) out as KiTS cases with no
segmentation file, prepares them with `fast-2d` (the index says unlabelled; the store has no validation split,
so one patient is held out for validation pairs), then pretrains side-pair on `half` sections, and on `half`
sections mirrored at random during training (`--mirror`). Per epoch: held-out pair accuracy, AUC and the
mirror score. Writes results/pretrain_unlabelled.json and a table. Real data, 3 patients: 2 train, 1 held
out.

Usage: python benchmarks/studies/pretrain_unlabelled.py [--data ../shared/data] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import measure, report

RUNS = {"half": ["--epochs", "6"], "half-mirrored": ["--epochs", "12", "--mirror"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[3] / "shared" / "data")
    parser.add_argument("--work", type=Path, default=None, help="Keep runs here (default: a temporary dir).")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sources = [
        args.data / "ts_example" / "ct.nii.gz",
        args.data / "ircadb" / "patient_01" / "ct.nii.gz",
        args.data / "ircadb" / "patient_07" / "ct.nii.gz",
    ]
    for i, source in enumerate(sources):
        case = work / "kits" / f"case_{i:05d}"
        case.mkdir(parents=True, exist_ok=True)
        if not (case / "imaging.nii.gz").exists():
            (case / "imaging.nii.gz").symlink_to(source.resolve())
    sidepair = [sys.executable, "-m", "sidepair"]
    store = work / "store"
    prepared = measure([*sidepair, "prepare", "--data", str(work / "kits"), "--format", "kits",
                        "--out", str(store), "--preset", "fast-2d"])  # fmt: skip
    rows = []
    for name, options in RUNS.items():
        run = work / name
        result = measure([*sidepair, "pretrain", "--store", str(store), "--out", str(run),
                          "--preset", "fast-2d", "--sections", "half", "--pairs-per-epoch", "256",
                          "--val-pairs", "128", "--device", "cpu", *options])  # fmt: skip
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        for h in (json.loads(x) for x in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()):
            rows.append(
                {
                    "run": name,
                    "epoch": h["epoch"],
                    "acc": h["val_acc"],
                    "auc": h["val_auc"],
                    "mirror_acc": h["val_mirror_acc"],
                    "mirror_auc": h["val_mirror_auc"],
                    "held_out": ",".join(info["val_cases"]),
                    "wall_s": result["wall_s"],
                }
            )
    report(
        "pretrain_unlabelled",
        rows,
        {
            "data": "real CT without labels: ts_example (case_00000), ircadb 01 and 07; fast-2d store",
            "prepare_s": prepared["wall_s"],
        },
    )


if __name__ == "__main__":
    main()

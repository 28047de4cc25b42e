"""Side-pair pretraining in `half` mode on the real slices of ts_example plus kits19_slices.

Prepares one `fast-2d` store from ../shared/data/ts_example (a real CT, 3 mm) and
../shared/data/kits19_slices (24 real KiTS19 PNG slices of 5 patients), splits by patient, pretrains
on annotation-free half-slices and reports the held-out pair accuracy per epoch. Real data, but tiny:
the held-out set is one patient.

Usage: python benchmarks/studies/pretrain_real.py [--epochs 6] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import measure, report

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if not (args.shared / "kits19_slices").is_dir():
        sys.exit(f"{args.shared}: real data not found")
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    measure(
        [
            *sidepair,
            "prepare",
            "--data",
            str(args.shared / "ts_example"),
            "--data",
            str(args.shared / "kits19_slices"),
            "--out",
            str(work / "store"),
            "--preset",
            "fast-2d",
        ]
    )
    splits = json.loads((work / "store" / "splits.json").read_text(encoding="utf-8"))
    result = measure(
        [
            *sidepair,
            "pretrain",
            "--store",
            str(work / "store"),
            "--out",
            str(work / "run"),
            "--preset",
            "fast-2d",
            "--sections",
            "half",
            "--epochs",
            str(args.epochs),
            "--pairs-per-epoch",
            "256",
            "--val-pairs",
            "128",
            "--device",
            "cpu",
        ]
    )
    history = [
        json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    rows = [
        {
            "epoch": r["epoch"],
            "train_loss": r["train_loss"],
            "val_acc": r["val_acc"],
            "val_auc": r["val_auc"],
            "val_acc_best": r["val_acc_best"],
        }
        for r in history
    ]
    report(
        "pretrain_real",
        rows,
        {
            "data": "real: ts_example (1 CT) + kits19_slices (24 slices, 5 patients); half sections, fast-2d",
            "splits": {k: splits[k] for k in ("train", "val", "test")},
            "wall_s": result["wall_s"],
        },
    )
    print(f"held-out cases: {splits['val']}; wall {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()

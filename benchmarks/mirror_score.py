"""The mirror score of side-pair models on the phantom: organs or handedness?

Generates a 24-case phantom (seed 0, 192 x 192 x 48), prepares it with the `demo` preset, and pretrains
side-pair with `masked` sections, `half` sections, and `half` sections mirrored at random during training
(`--mirror`, each keeping its anatomical side). For each: held-out pair accuracy and AUC on plain pairs, and
on the same pairs with every second section mirrored (the mirror score). A model that reads organs scores
alike on both; one that reads handedness near 0 on mirrored pairs. Writes results/mirror_score.json and a
table. Phantom results, not real-data results.

Usage: python benchmarks/mirror_score.py [--work DIR] [--epochs 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import measure, report

VARIANTS = {
    "masked": ["--sections", "masked"],
    "half": ["--sections", "half"],
    "half-mirrored": ["--sections", "half", "--mirror"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Keep runs here (default: a temporary dir).")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="Pretraining seed.")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    if not (work / "phantom" / "phantom.json").exists():
        measure([*sidepair, "phantom", "--out", str(work / "phantom"), "--cases", "24", "--seed", "0",
                 "--shape", "192", "192", "48", "--no-montage"])  # fmt: skip
    if not (work / "store" / "index.json").exists():
        measure([*sidepair, "prepare", "--data", str(work / "phantom"), "--out", str(work / "store"),
                 "--preset", "demo"])  # fmt: skip
    rows = []
    for name, options in VARIANTS.items():
        run = work / f"{name}_e{args.epochs}_s{args.seed}"
        result = measure([*sidepair, "pretrain", "--store", str(work / "store"), "--out", str(run),
                          "--preset", "demo", "--epochs", str(args.epochs), "--seed", str(args.seed),
                          "--device", "cpu", *options])  # fmt: skip
        history = [json.loads(x) for x in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
        last = history[-1]
        rows.append(
            {
                "variant": name,
                "seed": args.seed,
                "epochs": last["epoch"],
                "acc": last["val_acc"],
                "auc": last["val_auc"],
                "mirror_acc": last["val_mirror_acc"],
                "mirror_auc": last["val_mirror_auc"],
                "wall_s": result["wall_s"],
            }
        )
    report(
        f"mirror_score_e{args.epochs}_s{args.seed}",
        rows,
        {"data": "phantom, 24 cases (seed 0), 192 x 192 x 48, demo store; held-out validation patients"},
    )


if __name__ == "__main__":
    main()

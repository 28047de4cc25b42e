"""Segmentation on the 20-case phantom (fast-2d): scratch against the side-pair encoder, per label fraction.

Expects (or makes) the phantom, the fast-2d store and a `masked` pretraining run from
benchmarks/studies/pretrain_phantom.py in --work. For each fraction, trains from scratch and from the
pretrained encoder (same seed, same labelled subset), evaluates on the test split in each scan's own
geometry, and writes results/segment_phantom.json with a table. Phantom results, one seed.

Usage: python benchmarks/studies/segment_phantom.py --work DIR [--fractions 0.25 1.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    sidepair = [sys.executable, "-m", "sidepair"]
    work, store = args.work, args.work / "store"
    pretrained = work / "pretrain_masked" / "checkpoint_best.pt"
    if not pretrained.exists():
        measure(
            [
                sys.executable,
                str(Path(__file__).with_name("pretrain_phantom.py")),
                "--work",
                str(work),
                "--modes",
                "masked",
            ]
        )
    rows = []
    for fraction in args.fractions:
        for init in ("scratch", str(pretrained)):
            name = f"{'scratch' if init == 'scratch' else 'ssl'}_f{fraction}_s{args.seed}"
            run = work / "seg" / name
            extra = ["--epochs", str(args.epochs)] if args.epochs else []
            if not (run / "checkpoint_last.pt").exists():
                train = measure(
                    [
                        *sidepair,
                        "train",
                        "--store",
                        str(store),
                        "--out",
                        str(run),
                        "--preset",
                        "fast-2d",
                        "--init",
                        init,
                        "--label-fraction",
                        str(fraction),
                        "--seed",
                        str(args.seed),
                        "--device",
                        "cpu",
                        *extra,
                    ]
                )
            else:
                train = {"wall_s": float("nan")}
            measure([*sidepair, "evaluate", "--run", str(run), "--split", "test", "--device", "cpu"])
            history = [
                json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
            ]
            m = json.loads((run / "eval_test" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
            rows.append(
                {
                    "init": "scratch" if init == "scratch" else "ssl-masked",
                    "fraction": fraction,
                    "train_cases": len(
                        json.loads((run / "run.json").read_text(encoding="utf-8"))["train_cases"]
                    ),
                    "epochs": history[-1]["epoch"],
                    "best_val_dice": max(r["val_dice"] for r in history),
                    "test_dice": m["kidney_dice"]["mean"],
                    "test_dice_sd": m["kidney_dice"]["sd"],
                    "test_hd95_mm": m["kidney_hd95"]["mean"],
                    "test_nsd": m["kidney_nsd"]["mean"],
                    "train_wall_s": train["wall_s"],
                }
            )
    report("segment_phantom", rows, {"data": "phantom, 20 cases (seed 0), fast-2d store; test split 4 cases"})


if __name__ == "__main__":
    main()

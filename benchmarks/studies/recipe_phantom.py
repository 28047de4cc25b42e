"""Each choice of the segmentation recipe, measured on the demo's phantom from scratch.

The demo's phantom (34 cases of 192x192x48, seed 0) prepared with the `demo` preset; scratch runs at two
label budgets, one seed, under recipes that differ in one choice each from the preset's (the strong
recipe) or are the recipe before it (`before`: Adam with ReduceLROnPlateau, no augmentation, whole-volume
validation read raw). Each run is scored on the test split in each scan's own geometry at its chosen
checkpoint. Phantom results: they show which choices matter here, not on patients.
Writes results/<name>.json (default recipe_phantom) and a table.

Usage: python benchmarks/studies/recipe_phantom.py [--work DIR] [--fractions 0.1 1.0] [--seeds 0 1]
       [--recipes before strong ...] [--name recipe_phantom]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import measure, report

BUDGET = ["--samples-per-epoch", "384"]  # the demo's: 240 steps are 10 epochs of 384 patches
RECIPES = {
    "before": [*BUDGET, "--epochs", "10", "--optimizer", "adam", "--lr", "0.003", "--schedule", "plateau",
               "--no-augment", "--no-mirror", "--validation", "volumes", "--smoothing", "0", "--min-epochs",
               "0", "--foreground-fraction", "0.6"],
    "strong": [*BUDGET, "--steps", "240"],
    "strong, no augmentation or mirroring": [*BUDGET, "--steps", "240", "--no-augment", "--no-mirror"],
    "strong, no mirroring": [*BUDGET, "--steps", "240", "--no-mirror"],
    "strong, light augmentation": [*BUDGET, "--steps", "240", "--augment-recipe", "light"],
    "AdamW 1e-3, warm-up 24, cosine": [*BUDGET, "--steps", "240", "--optimizer", "adamw", "--lr",
                                       "0.001", "--weight-decay", "0.01", "--schedule", "cosine",
                                       "--warmup-steps", "24"],
    "strong, 4x the steps": [*BUDGET, "--steps", "960"],
    # The demo's recipe today (demo.yaml: the preset, 960 steps), and that with nnU-Net's deep supervision.
    "demo": [*BUDGET, "--steps", "960"],
    "demo, deep supervision": [*BUDGET, "--steps", "960", "--deep-supervision"],
    # The demo's choices against fast-2d's: nnU-Net's SGD, and a third of the patches on a kidney.
    "demo, SGD 0.01": [*BUDGET, "--steps", "960", "--optimizer", "sgd", "--lr", "0.01"],
    "demo, a third on a kidney": [*BUDGET, "--steps", "960", "--foreground-fraction", "0.33"],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Keep runs here (default: a temporary dir).")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--name", default="recipe_phantom", help="The results file's name.")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    phantom, store = work / "phantom", work / "store"
    if not (store / "store.json").exists():
        measure([*sidepair, "phantom", "--out", str(phantom), "--cases", "34", "--seed", "0",
                 "--shape", "192", "192", "48"])  # fmt: skip
        measure([*sidepair, "prepare", "--data", str(phantom), "--out", str(store), "--preset", "demo"])
    rows = []
    grid = [(n, f, seed) for seed in args.seeds for n in args.recipes for f in args.fractions]
    for name, fraction, seed in grid:
        run = work / f"{name.replace(' ', '_').replace(',', '')}_f{fraction:g}_s{seed}"
        if not (run / "eval_test" / "metrics.json").exists():
            trained = measure([*sidepair, "train", "--store", str(store), "--out", str(run), "--preset",
                               "demo", "--device", "cpu", "--seed", str(seed), "--label-fraction",
                               str(fraction), *RECIPES[name]])  # fmt: skip
            measure([*sidepair, "evaluate", "--run", str(run), "--device", "cpu"])
        else:
            trained = {"wall_s": float("nan")}
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        metrics = json.loads((run / "eval_test" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
        rows.append(
            {
                "recipe": name,
                "fraction": fraction,
                "seed": seed,
                "train_cases": len(info["train_cases"]),
                "epochs": info["epochs_run"],
                "converged": info["converged"],
                "test_dice": round(metrics["kidney_dice"]["mean"], 3),
                "test_dice_sd": round(metrics["kidney_dice"]["sd"], 3),
                "hd95_mm": round(metrics["kidney_hd95"]["mean"], 1),
                "test_cases": metrics["kidney_dice"]["n"],
                "train_wall_s": round(trained["wall_s"], 1),
            }
        )
    report(args.name, rows, {"data": "phantom, 34 cases of 192x192x48 (the demo's), demo preset"})


if __name__ == "__main__":
    main()

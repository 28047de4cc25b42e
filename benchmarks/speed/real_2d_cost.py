"""What the ``real-2d`` grid costs on this CPU, from a real run's epochs and a real evaluation.

``experiment --plan`` times the network on random tensors, without data loading and augmentation. This
measures the two costs a real run has on real CT (``../shared/data``, ircadb 01 for training,
ircadb 07 and ``ts_example`` scored), at the preset's own settings (patch validation included):

- seconds per training epoch (``samples_per_epoch / batch_size`` optimiser steps, then the fixed
  validation patches), from ``metrics.jsonl`` of ``sidepair train --steps`` (the first epoch left out:
  it pays for start-up);
- seconds per slice of whole-volume scoring at the preset's grid, from ``sidepair evaluate``'s own wall
  time in its ``metrics.json`` (model load, sliding window, resampling back, the metrics and figures; not
  the interpreter's start-up).

Then scales them to the grid of ``--config`` (its runs and optimiser steps, from the plan) on a
KiTS19-sized dataset (``--val-cases`` validation volumes scored once per run for the chosen checkpoint,
``--test-cases`` test volumes per run; KiTS19 by the config's split: 136 / 32 / 42 cases), each of the
mean number of slices at the preset's grid of the label maps in ``--masks`` (KiTS19's 210, read from
their headers; ``--slices`` where the folder is absent); the pretrainings take the plan's own CPU
figure. Writes results/real_2d_cost.json and a table. An estimate from measured constants, not a run of
the grid.

Usage: python benchmarks/speed/real_2d_cost.py [--data ../shared/data] [--config real-2d] [--work DIR]
       [--steps 128] [--val-cases 32] [--test-cases 42] [--masks ../shared/data/kits19_masks] [--slices N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from _common import measure, report
from sidepair.data.store import Store
from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.estimate import estimate

IRCADB_01, IRCADB_07, TS = "ircadb__patient_01", "ircadb__patient_07", "ts_example__ts_example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--config", default="real-2d")
    parser.add_argument("--work", type=Path, default=None, help="Keep the run here (default: temporary).")
    parser.add_argument("--steps", type=int, default=128, help="Steps trained (the first epoch is left out).")
    parser.add_argument("--val-cases", type=int, default=32)
    parser.add_argument("--test-cases", type=int, default=42)
    parser.add_argument("--masks", type=Path, default=None, help="Label maps whose size is scaled to.")
    parser.add_argument("--slices", type=float, default=None, help="Slices a volume, without --masks.")
    args = parser.parse_args()
    if not (args.data / "ircadb").is_dir():
        sys.exit(f"{args.data / 'ircadb'}: not found (this benchmark needs ../shared/data)")
    config = load_experiment_config(args.config)
    preset = config.preset
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    store_dir, run = work / "store", work / "run"
    sources = ["--data", str(args.data / "ircadb"), "--data", str(args.data / "ts_example")]
    measure([*sidepair, "prepare", *sources, "--out", str(store_dir), "--preset", preset])
    splits_path = store_dir / "splits.json"
    splits = json.loads(splits_path.read_text(encoding="utf-8"))
    splits.update(train=[IRCADB_01], val=[IRCADB_01], test=[IRCADB_07, TS])
    splits_path.write_text(json.dumps(splits, indent=2), encoding="utf-8")
    store = Store(store_dir)
    masks = args.masks or args.data / "kits19_masks"
    if args.slices is None and not masks.is_dir():
        sys.exit(f"{masks}: not found; give --masks DIR or --slices N")
    sizes = dataset_size(masks, store.settings.spacing_zyx) if args.slices is None else None
    slices = args.slices if sizes is None else sizes["mean_slices"]

    plan = estimate(config)
    seg = [r for r in plan["rows"] if not r["what"].startswith("pretrain")]
    steps_per_run = seg[0]["steps_per_run"]
    recipe = _train(run, sidepair, store_dir, preset, args.steps)
    steps_per_epoch = recipe["samples_per_epoch"] // recipe["batch_size"]
    times = _epoch_times(run)
    if len(times) < 2:
        sys.exit(f"--steps {args.steps}: {len(times)} epoch trained; 2 needed (the first is left out)")
    epoch_s = statistics.median(times[1:])
    evaluated = measure([*sidepair, "evaluate", "--run", str(run), "--checkpoint", "last", "--device", "cpu"])
    shapes = [store.array(case).shape for case in splits["test"]]
    scored = sum(shape[0] for shape in shapes)
    # evaluate's own wall time, without the interpreter's start-up, which a grid's runs pay once each
    inside = json.loads((run / "eval_test" / "metrics.json").read_text(encoding="utf-8"))["wall_s"]
    slice_s = inside / scored

    runs = plan["segmentation_runs"]
    training_h = runs * (steps_per_run / steps_per_epoch) * epoch_s / 3600
    scoring_h = runs * (args.val_cases + args.test_cases) * slices * slice_s / 3600
    pretraining_h = sum(r["cpu_hours"] for r in plan["rows"] if r["what"].startswith("pretrain"))
    row = {
        "config": args.config,
        "preset": preset,
        "segmentation_runs": runs,
        "steps_per_run": steps_per_run,
        "steps_per_epoch": steps_per_epoch,
        "epoch_s": round(epoch_s, 2),
        "step_s_with_validation": round(epoch_s / steps_per_epoch, 3),
        "slice_s": round(slice_s, 4),
        "training_h": round(training_h, 2),
        "scoring_h": round(scoring_h, 2),
        "pretraining_h_plan": round(pretraining_h, 2),
        "total_h": round(training_h + scoring_h + pretraining_h, 1),
        "plan_cpu_h": round(plan["cpu_hours"], 2),
    }
    report(
        "real_2d_cost",
        [row],
        {
            "data": "real CT: trained on ircadb 01 (manual masks), scored on ircadb 07 and ts_example",
            "scaled_to": {
                "val_cases": args.val_cases,
                "test_cases": args.test_cases,
                "slices": round(slices, 1),
            },
            "dataset": sizes or "slices given by --slices",
            "scored_slice_shapes": [list(shape[1:]) for shape in shapes],
            "epoch_times_s": times,
            "scored_slices": scored,
            "evaluate_wall_s": round(evaluated["wall_s"], 1),
            "evaluate_inside_s": round(inside, 1),
            "recipe": {
                k: recipe[k] for k in ("batch_size", "samples_per_epoch", "val_patches", "augment_recipe")
            },
        },
    )


def dataset_size(masks: Path, spacing_zyx: tuple[float, float, float]) -> dict:
    """The mean slices and in-plane size at ``spacing_zyx`` of the label maps under ``masks``, from their
    headers (nothing decompressed)."""
    slices, side = [], []
    files = sorted(masks.glob("*/*.nii*"))
    if not files:
        sys.exit(f"{masks}: no label maps (*/*.nii.gz)")
    for path in files:
        image = nib.load(path)
        zooms, shape = image.header.get_zooms(), image.shape
        axis = next(i for i, c in enumerate(nib.aff2axcodes(image.affine)) if c in "SI")
        slices.append(shape[axis] * zooms[axis] / spacing_zyx[0])
        side.append(np.mean([shape[i] * zooms[i] / spacing_zyx[1] for i in range(3) if i != axis]))
    return {
        "masks": str(masks),
        "cases": len(files),
        "mean_slices": float(np.mean(slices)),
        "mean_side_px": round(float(np.mean(side)), 1),
    }


def _train(run: Path, sidepair: list[str], store: Path, preset: str, steps: int) -> dict:
    """Train ``steps`` optimiser steps of the preset's recipe (CPU, seed 0); the run's resolved settings."""
    where = ["--store", str(store), "--out", str(run), "--preset", preset, "--device", "cpu"]
    measure([*sidepair, "train", *where, "--seed", "0", f"--steps={steps}"])
    return yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))


def _epoch_times(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [round(json.loads(x)["time_s"], 2) for x in lines]


if __name__ == "__main__":
    main()

"""Train the side model that ships with sidepair (``check-sides``' default), annotation-free.

Training data, chosen for its licence (the package is Apache-2.0): the procedural phantom (made here, with
``--anatomy varied`` organs: sizes, positions and contrast phase drawn per case) and
TotalSegmentator's example CT (``ts_example``, Apache-2.0). No label is read: ``half`` sections take their
side from the header. The one real patient is repeated ``--real-repeats`` times as cases so that it weighs
like that many phantoms (its sections are still drawn at random positions and augmented). Preset
``laterality``: 2D half-slices at 3 mm, mirrored at random keeping their anatomical side, with a side head.

The checkpoint is the final epoch's (as nnU-Net's ``checkpoint_final``), written without optimiser state
(about 1.3 MB). Not the best one on the phantom's validation cases: their side accuracy reaches 0.99-1.00
by epoch 15 and then ties, so "best" was an arbitrary epoch (15-28 over three seeds), and those models'
verdicts on real KiTS19 slices ranged over 13-22 of 24 right; the final epochs' over 19-20
(``benchmarks/studies/side_model_spread.py``). ``--checkpoint best`` keeps the old choice.
Training longer (``--epochs 60``, ten seeds) leaves fewer real slices ``unsure`` (34 % against 41 %) but
makes 7 confident errors at check-sides' defaults against 1, so the recipe stays at 30 (docs/check-sides.md).

Deterministic on one CPU, not across CPUs (training floats differ): the same seed on an AMD EPYC gave a
model with 13 / 16 of the slices right and 6 of 48 confidently wrong, where the committed one (trained on
another CPU) has 20 / 20 and none. The shipped file is what was measured; a retrained one must be measured
again (``benchmarks/studies/side_model_spread.py``) before it replaces it.

Usage:
    python scripts/train_side_model.py [--data ../shared/data] [--work DIR] [--out FILE]
        [--without ts_example] [--with ircadb/patient_01 ...] [--train-seed N]
        [--checkpoint last|best] [--export-clip SHARE] [--antialias]

``--without ts_example`` trains on the phantom alone: the real-data tests' fixture
(``tests/fixtures/side_model_phantom_only.pt``), which has seen no real scan. ``--without`` / ``--with``
train variants on other real CTs (``benchmarks/studies/laterality_lopo.py`` trains its
leave-one-patient-out models itself); a model trained with ircadb (CC BY-NC-ND) must never ship.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

from sidepair.choices import AnatomyChoice

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "src" / "sidepair" / "resources" / "side_model.pt"
REAL = {"ts_example": "ts_example/ct.nii.gz"}


def run(cmd: list[str]) -> None:
    """Run a sidepair command, failing loudly."""
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: runs sharing a ``--work`` (other seeds) make its data in turn.

    Without it a second run saw the first's ``store.json`` and pretrained on a store not yet complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def layout(kits: Path, phantom: Path, real: list[Path], repeats: int) -> Path:
    """KiTS case folders in ``kits``: the phantom's cases, then each real CT ``repeats`` times (images)."""
    kits.mkdir(parents=True, exist_ok=True)
    n = 0
    for case in sorted(phantom.glob("case_*")):
        link = kits / f"case_{n:05d}"
        if not link.exists():
            link.symlink_to(case.resolve())
        n += 1
    for ct in real:
        for _ in range(repeats):
            case = kits / f"case_{n:05d}"
            case.mkdir(exist_ok=True)
            if not (case / "imaging.nii.gz").exists():
                (case / "imaging.nii.gz").symlink_to(ct.resolve())
            n += 1
    return kits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "side_model")
    parser.add_argument("--out", type=Path, default=SHIPPED)
    parser.add_argument("--cases", type=int, default=64, help="Phantom cases.")
    parser.add_argument("--seed", type=int, default=11, help="The phantom's seed.")
    parser.add_argument(
        "--train-seed",
        type=int,
        default=0,
        help="Pretraining seed (model init, pairs, crops); other values measure the recipe's spread.",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--real-repeats", type=int, default=12)
    parser.add_argument(
        "--export-clip",
        type=float,
        default=None,
        help="Share of sections clipped as an 8-bit export clips HU (default: the preset's, 0.3).",
    )
    parser.add_argument(
        "--anatomy",
        choices=get_args(AnatomyChoice),
        default="varied",
        help="The phantom's organs (trunk: varied, with the chest's and the pelvis's levels).",
    )
    parser.add_argument(
        "--checkpoint", choices=("last", "best"), default="last", help="The epoch that ships."
    )
    parser.add_argument(
        "--antialias",
        action="store_true",
        help="Prepare the store with anti-aliased downsampling (measured, not shipped: "
        "benchmarks/results/slice_phase_antialias.json).",
    )
    parser.add_argument(
        "--without", action="append", default=[], help="Leave out a real CT (e.g. ts_example)."
    )
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        help="Add a real CT folder under --data; never shipped.",
    )
    args = parser.parse_args()
    sidepair = [sys.executable, "-m", "sidepair"]
    t0 = time.perf_counter()
    phantom = args.work / f"phantom_{args.anatomy}"
    real = [args.data / p for k, p in REAL.items() if k not in args.without]
    real += [args.data / e / "ct.nii.gz" for e in args.extra]
    variant = f"{args.anatomy}_antialias" if args.antialias else args.anatomy
    store, model = args.work / f"store_{variant}", args.work / f"model_{variant}"
    if args.train_seed:
        model = model.with_name(f"{model.name}_seed{args.train_seed}")
    with locked(args.work / f".data_{args.anatomy}.lock"):
        if not (phantom / "phantom.json").exists():
            run([*sidepair, "phantom", "--out", str(phantom), "--cases", str(args.cases),
                 "--seed", str(args.seed), "--no-montage", "--anatomy", args.anatomy])  # fmt: skip
        kits = layout(args.work / f"kits_{args.anatomy}", phantom, real, args.real_repeats)
        if not (store / "index.json").exists():  # written last: an interrupted prepare is finished
            run([*sidepair, "prepare", "--data", str(kits), "--format", "kits", "--out", str(store),
                 "--preset", "laterality", "--side-check", "off",
                 *(["--antialias"] if args.antialias else [])])  # fmt: skip
    run([*sidepair, "pretrain", "--store", str(store), "--out", str(model), "--preset", "laterality",
         "--epochs", str(args.epochs), "--device", "cpu", "--resume",
         "--seed", str(args.train_seed),
         *(["--export-clip", str(args.export_clip)] if args.export_clip is not None else [])])  # fmt: skip

    from sidepair.models.checkpoint import BEST, LAST, PretrainCheckpoint, read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(model / (LAST if args.checkpoint == "last" else BEST), PretrainCheckpoint)
    epoch = len(ckpt.history) if args.checkpoint == "last" else ckpt.best_epoch
    slim = dataclasses.replace(ckpt, optimizer_state={}, scheduler_state={})
    slim.config["training_data"] = {
        "phantom": {"cases": args.cases, "seed": args.seed, "anatomy": args.anatomy},
        "real": [str(p.relative_to(args.data)) for p in real],
        "real_repeats": args.real_repeats,
        "train_seed": args.train_seed,
        "export_clip": slim.config.get("export_clip"),
        "checkpoint": args.checkpoint,
        "epoch": epoch,
        **({"antialias": True} if args.antialias else {}),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(slim, args.out)
    wall = time.perf_counter() - t0
    summary = {
        "out": str(args.out),
        "bytes": args.out.stat().st_size,
        "wall_s": round(wall, 1),
        "epoch": epoch,
        "val_side_acc": ckpt.history[(epoch or 1) - 1].get("val_side_acc"),
        "val_side_mirror_acc": ckpt.history[(epoch or 1) - 1].get("val_side_mirror_acc"),
        "training_data": slim.config["training_data"],
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

"""How closely 2 DDP processes follow one process, and how far one process drifts from itself.

On the tests' small phantom store (8 cases of 96 x 96 x 48, seed 7, 4 mm), masked pretraining with the
tests' tiny settings, on CPU: (1) one step in one process and in 2 torchrun processes (gloo): the relative
difference of the gradients (Adam's first moment) and the largest weight difference; (2) 3 epochs at
lr 1e-3 in one process with 1 OpenMP thread, one process with 2 threads, and 2 DDP processes: training
loss and validation AUC per epoch. The README quotes these numbers.

Usage: python benchmarks/studies/ddp_drift.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from _common import report

ARGS = ["--preset", "fast-2d", "--sections", "masked", "--section-size", "24", "--section-size", "24"]
ARGS += ["--val-pairs", "16", "--batch-size", "8", "--device", "cpu", "--seed", "4"]


def run(store: Path, out: Path, threads: int, processes: int, *extra: str) -> Path:
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if processes == 2 else []
    )
    cmd = [sys.executable, *launcher, "-m", "sidepair", "pretrain", "--store", str(store), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*cmd, *ARGS, *extra], env=env, check=True, capture_output=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from sidepair.config import PreprocessSettings
    from sidepair.data.formats import open_dataset
    from sidepair.data.phantom import generate_phantom
    from sidepair.data.prepare import prepare
    from sidepair.models.checkpoint import load_checkpoint

    work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-ddp-"))
    store = work / "store"
    if not store.exists():
        generate_phantom(work / "phantom", cases=8, seed=7, shape=(96, 96, 48))
        prepare(open_dataset(work / "phantom"), store, PreprocessSettings(spacing_zyx=(4.0, 4.0, 4.0)))
    one_step = ["--epochs", "1", "--pairs-per-epoch", "8"]
    a = load_checkpoint(run(store, work / "step_one", 1, 1, *one_step) / "checkpoint_last.pt")
    b = load_checkpoint(run(store, work / "step_ddp", 1, 2, *one_step) / "checkpoint_last.pt")
    ma, mb = a["optimizer_state"]["state"], b["optimizer_state"]["state"]
    ga = torch.cat([ma[k]["exp_avg"].flatten() for k in sorted(ma)])
    gb = torch.cat([mb[k]["exp_avg"].flatten() for k in sorted(mb)])
    wa, wb = a["network_weights"], b["network_weights"]
    worst = max(wa, key=lambda k: float((wa[k].float() - wb[k].float()).abs().max()))
    step = {
        "gradient_relative_difference": float((ga - gb).norm() / ga.norm()),
        "largest_weight_difference": float((wa[worst].float() - wb[worst].float()).abs().max()),
        "in_tensor": worst,
        "lr": a["optimizer_state"]["param_groups"][0]["lr"],
    }
    print(json.dumps(step))
    rows = []
    epochs = ["--epochs", "3", "--pairs-per-epoch", "64"]
    for name, threads, processes in (
        ("1 process, 1 thread", 1, 1),
        ("1 process, 2 threads", 2, 1),
        ("2 DDP", 1, 2),
    ):
        out = run(store, work / name.replace(" ", "_").replace(",", ""), threads, processes, *epochs)
        for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rows.append(
                {
                    "run": name,
                    "epoch": r["epoch"],
                    "train_loss": round(r["train_loss"], 4),
                    "val_auc": round(r["val_auc"], 3),
                }
            )
    report(
        "ddp_drift", rows, {"one_step": step, "data": "phantom (8 cases of 96x96x48, seed 7), store at 4 mm"}
    )


if __name__ == "__main__":
    main()

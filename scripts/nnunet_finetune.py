"""Side-pair pretraining of nnU-Net's encoder, then ``nnUNetv2_train -pretrained_weights`` on CPU.

Every step is the command a user types (README: With nnU-Net), on a tiny phantom whose labels carry sides:

1. ``sidepair phantom --layout nnunet`` (``nnUNet_raw/Dataset501_SidepairPhantom``);
2. ``nnUNetv2_extract_fingerprint``, ``nnUNetv2_plan_experiment``, ``nnUNetv2_preprocess -c C``;
3. ``sidepair prepare --plans --configuration C`` and ``sidepair pretrain --architecture nnunet``;
4. ``sidepair export --format nnunet``;
5. ``nnUNetv2_train 501 C 0 -tr nnUNetTrainer_1epoch_NoMirroring -pretrained_weights FILE -device cpu``
   (one epoch of 250 iterations without mirroring, which would swap the side labels; the trainer lies in
   ``scripts/nnunet_trainers``), through ``scripts/nnunet_trainers/train.py``: nnU-Net's own entry point
   with the same arguments, without the trainer lookup that fails on CPU torch beside PyPI's torchvision.

Writes ``WORK/summary.json``: each step's wall time, nnU-Net's "Loading pretrained weights" line and its
loss lines. Phantom data, not patient data.

Usage: python scripts/nnunet_finetune.py [--work runs/nnunet_finetune] [--cases 6] [--shape 64 64 32]
       [--configuration 2d]

nnU-Net sizes its batch to the dataset (at most 5 % of its voxels), so the tiny default keeps 250 CPU
iterations to minutes; 8 cases of 128 x 128 x 48 made batches of 19 slices of 128 x 128, and the one epoch
ran for over an hour on 2 shared cores without finishing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def step(name: str, cmd: list[str], env: dict[str, str], log: Path, times: dict[str, float]) -> str:
    """Run one command, keeping its output in ``log``; its output."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, encoding="utf-8", errors="replace"
    )
    times[name] = round(time.perf_counter() - start, 1)
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        sys.exit(f"{name} failed (exit {done.returncode}); see {log}\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def workspace(work: Path, dataset: str) -> tuple[dict[str, str], Path, Path, Path]:
    """nnU-Net's three folders under ``work`` (as environment variables), the raw dataset, its plans file
    and a log folder (made)."""
    env = {k: str(work / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return (
        env,
        work / "nnUNet_raw" / dataset,
        work / "nnUNet_preprocessed" / dataset / "nnUNetPlans.json",
        logs,
    )


def plan_phantom(
    raw: Path, cases: int, shape: list[int], env: dict[str, str], logs: Path, times: dict[str, float]
) -> None:
    """Write the phantom in nnU-Net's raw layout at ``raw`` (``DatasetNNN_Name``), then nnU-Net's
    fingerprint and plans of it."""
    dataset = raw.name[len("Dataset") : len("Dataset") + 3]
    step("phantom", [sys.executable, "-m", "sidepair", "phantom", "--layout", "nnunet", "--out", str(raw),
                     "--cases", str(cases), "--shape", *map(str, shape)],
         env, logs / "phantom.log", times)  # fmt: skip
    step("fingerprint", [str(BIN / "nnUNetv2_extract_fingerprint"), "-d", dataset, "-np", "2"], env,
         logs / "fingerprint.log", times)  # fmt: skip
    step("plan", [str(BIN / "nnUNetv2_plan_experiment"), "-d", dataset], env, logs / "plan.log", times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "nnunet_finetune")
    parser.add_argument("--cases", type=int, default=6, help="Phantom cases (nnU-Net's 5 folds need 5).")
    parser.add_argument("--configuration", default="2d")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 32], help="Phantom grid X Y Z.")
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    args = parser.parse_args()
    work = args.work.resolve()
    env, raw, plans, logs = workspace(work, "Dataset501_SidepairPhantom")
    env["nnUNet_extTrainer"] = str(REPO / "scripts" / "nnunet_trainers")
    times: dict[str, float] = {}
    sidepair = [sys.executable, "-m", "sidepair"]
    c = args.configuration
    plan_phantom(raw, args.cases, args.shape, env, logs, times)
    step("preprocess", [str(BIN / "nnUNetv2_preprocess"), "-d", "501", "-c", c, "-np", "2"], env,
         logs / "preprocess.log", times)  # fmt: skip
    store, run, weights = work / "store", work / "pretrain", work / "side_pair_nnunet.pth"
    step("prepare", [*sidepair, "prepare", "--data", str(raw), "--out", str(store), "--preset", "demo",
                     "--plans", str(plans), "--configuration", c, "--side-check", "off"], env,
         logs / "prepare.log", times)  # fmt: skip
    step("pretrain", [*sidepair, "pretrain", "--store", str(store), "--out", str(run), "--preset", "demo",
                      "--architecture", "nnunet", "--plans", str(plans), "--configuration", c, "--mirror",
                      "--epochs", str(args.pretrain_epochs), "--device", "cpu"], env,
         logs / "pretrain.log", times)  # fmt: skip
    exported = step("export", [*sidepair, "export", "--model", str(run), "--format", "nnunet", "--plans",
                               str(plans), "--configuration", c, "--out", str(weights)], env,
                    logs / "export.log", times)  # fmt: skip
    # Data augmentation in the training process itself (2 CPU cores here); planning needs it unset.
    env["nnUNet_n_proc_DA"] = "0"
    # nnUNetv2_train's own entry point (scripts/nnunet_trainers/train.py says why not its console script).
    train = [sys.executable, str(REPO / "scripts" / "nnunet_trainers" / "train.py")]
    trained = step("nnUNetv2_train", [*train, "501", c, "0", "-tr",
                                      "nnUNetTrainer_1epoch_NoMirroring", "-pretrained_weights", str(weights),
                                      "-device", "cpu"], env, logs / "nnunet_train.log", times)  # fmt: skip
    lines = trained.splitlines()
    summary = {
        "data": f"phantom, {args.cases} cases (nnU-Net raw layout, labels kidney_right/kidney_left), "
        "not patient data",
        "configuration": c,
        "wall_s": times,
        "export": exported.strip().splitlines()[-1],
        "loading_line": next((x for x in lines if "Loading pretrained weights" in x), None),
        "loss_lines": [x for x in lines if "train_loss" in x or "val_loss" in x or "Pseudo dice" in x],
        "validation": next((x for x in lines if "Mean Validation Dice" in x), None),
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

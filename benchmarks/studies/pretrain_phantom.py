"""Side-pair pretraining on a 20-case phantom with the fast-2d preset: accuracy and wall time per mode.

Generates the phantom (seed 0, 256 x 256 x 100), prepares it with `fast-2d`, then runs
`sidepair pretrain` for each section mode, timing each run as a whole command. Writes
results/pretrain_phantom.json, a table, and results/pretrain_phantom_curves.png (held-out pair accuracy
per epoch for every mode). Phantom results, not real-data results.

Usage: python benchmarks/studies/pretrain_phantom.py [--work DIR] [--half-epochs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

from _common import RESULTS, measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=None, help="Keep runs here (default: a temporary folder)."
    )
    parser.add_argument(
        "--half-epochs",
        type=int,
        default=2,
        help="Epochs for half mode (128 x 128 half-slices cost 4x a 64 x 64 kidney section).",
    )
    parser.add_argument("--modes", nargs="+", default=["masked", "half", "bbox"])
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.work or Path(tmp.name)
    sidepair = [sys.executable, "-m", "sidepair"]
    if not (work / "phantom" / "phantom.json").exists():
        measure(
            [
                *sidepair,
                "phantom",
                "--out",
                str(work / "phantom"),
                "--cases",
                "20",
                "--seed",
                "0",
                "--no-montage",
            ]
        )
    measure(
        [
            *sidepair,
            "prepare",
            "--data",
            str(work / "phantom"),
            "--out",
            str(work / "store"),
            "--preset",
            "fast-2d",
        ]
    )
    rows, curves = [], {}
    for mode in args.modes:
        run = work / f"pretrain_{mode}"
        extra = ["--epochs", str(args.half_epochs)] if mode == "half" else []
        result = measure(
            [
                *sidepair,
                "pretrain",
                "--store",
                str(work / "store"),
                "--out",
                str(run),
                "--preset",
                "fast-2d",
                "--sections",
                mode,
                "--device",
                "cpu",
                *extra,
            ]
        )
        history = [
            json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        ]
        curves[mode] = history
        size = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["section_size"]
        rows.append(
            {
                "mode": mode,
                "epochs": history[-1]["epoch"],
                "wall_s": result["wall_s"],
                "val_acc": history[-1]["val_acc"],
                "val_auc": history[-1]["val_auc"],
                "val_acc_best": history[-1].get("val_acc_best", float("nan")),
                "best_val_acc": max(r["val_acc"] for r in history),
                "peak_rss_mib": result["peak_rss_mib"],
                "section": "x".join(map(str, size)),
            }
        )
    _plot(curves, RESULTS / "pretrain_phantom_curves.png")
    report(
        "pretrain_phantom", rows, {"data": "phantom, 20 cases (seed 0), fast-2d store; held-out val cases"}
    )


def _plot(curves: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, history in curves.items():
        epochs = [r["epoch"] for r in history]
        axes[0].plot(epochs, [r["train_loss"] for r in history], marker="o", ms=3, label=f"{mode} train")
        axes[0].plot(epochs, [r["val_loss"] for r in history], ls="--", label=f"{mode} val")
        axes[1].plot(epochs, [r["val_acc"] for r in history], marker="o", ms=3, label=f"{mode} acc (d<0.75)")
        axes[1].plot(epochs, [r["val_auc"] for r in history], ls=":", label=f"{mode} AUC")
    axes[0].set(xlabel="epoch", ylabel="contrastive loss", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="held-out pairs", ylim=(0.4, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        "side-pair pretraining, fast-2d, data: phantom (20 synthetic cases, not patient data)", fontsize=9
    )
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

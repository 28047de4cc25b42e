"""What a side model's checkpoint records of its own training: data, epochs, final validation, time, size.

Read from the checkpoint's ``history`` and ``config`` as ``scripts/train_side_model.py`` wrote them at
training time (the CPU it trained on is not recorded there; the epochs' time excludes writing the phantom
and ``prepare``). Validation is on held-out phantom cases. Default models: the shipped one and the
phantom-only test fixture. Writes results/side_model_card.json and a table.

Usage: python benchmarks/studies/side_model_card.py [--model NAME=FILE ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import model_specs, report
from sidepair.models.checkpoint import PretrainCheckpoint, read_checkpoint

REPO = Path(__file__).resolve().parents[2]
MODELS = {
    "shipped": [REPO / "src" / "sidepair" / "resources" / "side_model.pt"],
    "phantom-only fixture": [REPO / "tests" / "fixtures" / "side_model_phantom_only.pt"],
}


def card(name: str, path: Path) -> dict:
    """One model's row."""
    ckpt = read_checkpoint(path, PretrainCheckpoint)
    history, data = ckpt.history, ckpt.config.get("training_data", {})
    last, top = history[-1], max(e["val_side_score"] for e in history)
    return {
        "model": name,
        "phantom_cases": data.get("phantom", {}).get("cases"),
        "real": ", ".join(str(Path(p).parent) for p in data.get("real", [])) or "none",
        "epochs": len(history),
        "shipped_epoch": data.get("epoch", last["epoch"]),
        "val_side_acc": round(last["val_side_acc"], 3),
        "val_side_mirror_acc": round(last["val_side_mirror_acc"], 3),
        "val_pair_acc": round(last["val_acc"], 3),
        "epochs_at_best_score": [e["epoch"] for e in history if e["val_side_score"] == top],
        "epochs_time_s": round(sum(e["time_s"] for e in history)),
        "size_mb": round(path.stat().st_size / 1e6, 2),
        "labels_read": sum(len(v) for v in ckpt.labels_read.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=FILE: another side model.")
    args = parser.parse_args()
    models = MODELS | model_specs(parser, args.model)
    rows = [card(name, paths[0]) for name, paths in models.items()]
    report("side_model_card", rows, {"data": "the checkpoints' own training records (phantom validation)"})


if __name__ == "__main__":
    main()

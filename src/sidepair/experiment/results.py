"""Collect an experiment's finished runs into tables: one row per run, one row per run and test case."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sidepair.atomic import write_text
from sidepair.errors import SidepairError
from sidepair.experiment.plan import RunSpec

# The per-run columns of results.csv, in order; metric columns follow.
RUN_COLUMNS = [
    "run",
    "init",
    "mode",
    "variant",
    "fraction",
    "seed",
    "train_cases",
    "epochs",
    "best_epoch",
    "best_val_dice",
    "val_dice_auc",
    "train_s",
    "eval_s",
    "test_cases",
]
METRICS = ["kidney_dice", "kidney_hd95", "kidney_nsd", "right_dice", "left_dice"]


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of a run's ``metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def curve_area(values: list[float]) -> float:
    """Area under a per-epoch curve, normalised to [0, 1] by the number of epochs (mean height)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    area = sum((a + b) / 2 for a, b in zip(values[:-1], values[1:], strict=True))
    return float(area / (len(values) - 1))


def collect(out: Path, runs: list[RunSpec], split: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``results.csv`` (one per run) and ``per_case.csv`` (one per run and case).

    Raises:
        SidepairError: A run without its evaluation (the experiment did not finish it).
    """
    rows, cases = [], []
    for run in runs:
        run_dir = out / "runs" / run.name
        metrics_path = run_dir / f"eval_{split}" / "metrics.json"
        if not metrics_path.exists():
            raise SidepairError(f"{metrics_path}: missing; the run {run.name} is not finished")
        summary = json.loads(metrics_path.read_text(encoding="utf-8"))
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        history = read_history(run_dir)
        val = [float(h["val_dice"]) for h in history]
        best = max(range(len(val)), key=lambda i: val[i]) if val else -1
        row: dict[str, Any] = {
            "run": run.name,
            "init": run.init,
            "mode": run.mode,
            "variant": run.variant or "",
            "fraction": run.fraction,
            "seed": run.seed,
            "train_cases": len(info.get("train_cases", [])),
            "epochs": len(history),
            "best_epoch": best + 1,
            "best_val_dice": val[best] if val else float("nan"),
            "val_dice_auc": curve_area(val),
            "train_s": sum(float(h.get("time_s", 0.0)) for h in history),
            "eval_s": float(summary.get("wall_s", float("nan"))),
            "test_cases": int(summary["cases"]),
        }
        for metric in METRICS:
            stats = summary["metrics"].get(metric, {})
            row[f"{metric}_mean"] = stats.get("mean", float("nan"))
            row[f"{metric}_sd"] = stats.get("sd", float("nan"))
        rows.append(row)
        with open(run_dir / f"eval_{split}" / "per_case.csv", newline="", encoding="utf-8") as handle:
            for case in csv.DictReader(handle):
                cases.append(
                    {
                        "run": run.name,
                        "init": run.init,
                        "fraction": run.fraction,
                        "seed": run.seed,
                        "case_id": case["case_id"],
                        **{m: _number(case.get(m, "")) for m in METRICS},
                    }
                )
    return rows, cases


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows (all with the first row's keys) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
    return path

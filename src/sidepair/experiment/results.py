"""Collect an experiment's finished runs into tables: one row per run, one row per run and test case."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sidepair.atomic import number, write_text
from sidepair.errors import SidepairError
from sidepair.experiment.plan import RunSpec

METRICS = ["kidney_dice", "kidney_hd95", "kidney_nsd", "right_dice", "left_dice"]


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of a run's ``metrics.jsonl`` (``null``, a NaN when written, back as NaN)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{k: math.nan if v is None else v for k, v in r.items()} for r in rows]


def curve_area(values: list[float]) -> float:
    """The mean height of a per-epoch curve: the mean of its values (1 is perfect from the first epoch)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _labels(info: dict[str, Any]) -> dict[str, Any]:
    """The label accounting of one segmentation run, from its run.json (and its pretraining's)."""
    seg = info.get("labels_read") or {
        "train": info.get("train_cases", []),
        "selection": info.get("val_cases", []),
    }
    pre = info.get("pretrain_labels_read") or {"train": [], "selection": []}
    return {
        "seg_train_labels": len(seg["train"]),
        "pretrain_train_labels": len(pre["train"]),
        "train_labels_union": len(set(seg["train"]) | set(pre["train"])),
        "selection_labels": len(set(seg["selection"]) | set(pre["selection"])),
    }


def collect(
    out: Path, runs: list[RunSpec], split: str, groups: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``results.csv`` (one per run) and ``per_case.csv`` (one per run and case).

    Args:
        out: Experiment folder.
        runs: The segmentation runs.
        split: The split that was scored.
        groups: Case id -> its patient (the split group), the unit of the paired statistics.

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
        best = max(range(len(val)), key=lambda i: val[i] if math.isfinite(val[i]) else -1) if val else -1
        row: dict[str, Any] = {
            "run": run.name,
            "init": run.init,
            "mode": run.mode,
            "variant": run.variant or "",
            "pretrain": run.pretrain or "",
            "fraction": run.fraction,
            "seed": run.seed,
            "train_cases": len(info.get("train_cases", [])),
            **_labels(info),
            "epochs": len(history),
            "converged": bool(info.get("converged", False)),
            "stopped_on_plateau": bool(info.get("stopped_on_plateau", False)),
            "best_epoch": best + 1,
            "best_val_dice": val[best] if val else math.nan,
            "val_dice_mean_height": curve_area(val),
            # Whole validation volumes scored once for the chosen checkpoint (runs validated on patches).
            "val_dice_volumes": number(info.get("val_dice_volumes")),
            "device": info.get("device", ""),
            "train_s": sum(float(h.get("time_s", 0.0)) for h in history),
            "eval_s": number(summary.get("wall_s")),
            "test_cases": int(summary["cases"]),
        }
        for metric in METRICS:
            stats = summary["metrics"].get(metric, {})
            row[f"{metric}_mean"] = number(stats.get("mean"))
            row[f"{metric}_sd"] = number(stats.get("sd"))
            row[f"{metric}_n"] = int(stats.get("n") or 0)
        rows.append(row)
        with open(run_dir / f"eval_{split}" / "per_case.csv", newline="", encoding="utf-8") as handle:
            mine = list(csv.DictReader(handle))
        # Failures: nothing predicted where the reference has a kidney (scored Dice 0, HD95 the penalty).
        row["failures"] = sum(_number(c.get("kidney_failed", "")) == 1.0 for c in mine)
        for case in mine:
            cases.append(
                {
                    "run": run.name,
                    "init": run.init,
                    "fraction": run.fraction,
                    "seed": run.seed,
                    "case_id": case["case_id"],
                    "group": groups.get(case["case_id"], case["case_id"]),
                    **{m: _number(case.get(m, "")) for m in [*METRICS, "kidney_failed"]},
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

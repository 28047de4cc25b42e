"""The experiment's numbers, computed from its run folders.

The main table, the paired comparisons, convergence, the proxy task, and the environment the runs ran in.
"""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from sidepair.evaluation.statistics import epochs_to_reach, paired_comparison
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.plan import RunSpec
from sidepair.experiment.results import curve_area, read_history

PACKAGES = ["sidepair", "torch", "monai", "numpy", "scipy", "nibabel", "SimpleITK", "matplotlib"]


def environment() -> dict[str, Any]:
    """Software versions and the hardware this process runs on."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = math.nan
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "versions": versions,
        "hardware": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_cores": os.cpu_count(),
            "memory_gib": round(memory, 1),
            "gpus": gpus or ["none"],
            "torch_threads": torch.get_num_threads(),
        },
    }


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd of the finite values (NaN where there are too few)."""
    v = np.array([x for x in values if math.isfinite(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def main_table(rows: list[dict[str, Any]], inits: list[str], fractions: list[float]) -> list[dict[str, Any]]:
    """Per init and fraction: mean and sd over seeds of each run's mean over the test cases."""
    out = []
    for fraction in fractions:
        for init in inits:
            sel = [r for r in rows if r["init"] == init and r["fraction"] == fraction]
            if not sel:
                continue
            entry: dict[str, Any] = {
                "init": init,
                "fraction": fraction,
                "train_cases": sel[0]["train_cases"],
                "seeds": len(sel),
                "test_cases": sel[0]["test_cases"],
            }
            for metric in ("kidney_dice", "kidney_hd95", "kidney_nsd"):
                entry[metric], entry[f"{metric}_sd"] = mean_sd([r[f"{metric}_mean"] for r in sel])
            out.append(entry)
    return out


def comparisons(
    cases: list[dict[str, Any]], inits: list[str], fractions: list[float], n_boot: int
) -> list[dict[str, Any]]:
    """Each SSL init against scratch, per fraction, paired per test case (seeds averaged first).

    A second pairing, per test case and seed, is given beside it: the same seed means the same
    labelled cases and the same patches for both inits.
    """
    out = []
    for fraction in fractions:
        for init in (i for i in inits if i != "scratch"):
            for metric in ("kidney_dice", "kidney_hd95", "kidney_nsd"):
                by = {}
                for which in (init, "scratch"):
                    sel = [c for c in cases if c["init"] == which and c["fraction"] == fraction]
                    per_case: dict[str, list[float]] = {}
                    for c in sel:
                        per_case.setdefault(c["case_id"], []).append(c[metric])
                    by[which] = (
                        {
                            k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
                            for k, v in per_case.items()
                        },
                        {(c["case_id"], c["seed"]): c[metric] for c in sel},
                    )
                higher = metric != "kidney_hd95"
                result = paired_comparison(by[init][0], by["scratch"][0], n_boot, higher_is_better=higher)
                by_seed = paired_comparison(by[init][1], by["scratch"][1], n_boot, higher_is_better=higher)
                out.append(
                    {
                        "init": init,
                        "fraction": fraction,
                        "metric": metric,
                        **result,
                        "n_case_seed": by_seed["n"],
                        "mean_diff_case_seed": by_seed["mean_diff"],
                        "ci_low_case_seed": by_seed["ci_low"],
                        "ci_high_case_seed": by_seed["ci_high"],
                        "p_case_seed": by_seed["p"],
                    }
                )
    return out


def convergence(
    out: Path, runs: list[RunSpec], inits: list[str], fractions: list[float]
) -> tuple[list[dict[str, Any]], dict[tuple[str, float], list[list[float]]]]:
    """Convergence per init and fraction, and the validation curves themselves.

    Epochs to reach 95 % of the best validation Dice of the scratch run with the same fraction and
    seed, and the area under the validation Dice curve.
    """
    curves: dict[tuple[str, float], list[list[float]]] = {}
    by_run: dict[tuple[str, float, int], list[float]] = {}
    for run in runs:
        curve = [float(h["val_dice"]) for h in read_history(out / "runs" / run.name)]
        curves.setdefault((run.init, run.fraction), []).append(curve)
        by_run[(run.init, run.fraction, run.seed)] = curve
    table = []
    for fraction in fractions:
        for init in inits:
            reached, areas, best = [], [], []
            seeds = sorted({s for (i, f, s) in by_run if i == init and f == fraction})
            for seed in seeds:
                curve = by_run[(init, fraction, seed)]
                scratch = by_run.get(("scratch", fraction, seed), [])
                if scratch and curve:
                    reached.append(epochs_to_reach(curve, 0.95 * max(scratch)))
                areas.append(curve_area(curve))
                best.append(max(curve) if curve else math.nan)
            hits = [r for r in reached if r is not None]
            table.append(
                {
                    "init": init,
                    "fraction": fraction,
                    "seeds": len(seeds),
                    "reached": len(hits),
                    "epochs_to_95": float(np.mean(hits)) if hits else math.nan,
                    "auc": mean_sd(areas)[0],
                    "auc_sd": mean_sd(areas)[1],
                    "best_val_dice": mean_sd(best)[0],
                }
            )
    return table, curves


def proxy_results(out: Path, config: ExperimentConfig) -> list[dict[str, Any]]:
    """Final and best held-out pair accuracy and AUC of each proxy variant."""
    rows = []
    for v in config.pretrain:
        run_dir = out / "pretrain" / v.name
        history = read_history(run_dir)
        resolved = (
            yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
            if (run_dir / "config.yaml").exists()
            else {}
        )
        if not history:
            continue
        rows.append(
            {
                "variant": v.name,
                "sections": resolved.get("sections", v.sections),
                "loss": resolved.get("loss", v.loss),
                "epochs": len(history),
                "final_acc": history[-1]["val_acc"],
                "best_acc": max(h["val_acc"] for h in history),
                "final_auc": history[-1]["val_auc"],
                "best_auc": max(h["val_auc"] for h in history),
                "train_s": sum(float(h.get("time_s", 0.0)) for h in history),
                "history": history,
            }
        )
    return rows

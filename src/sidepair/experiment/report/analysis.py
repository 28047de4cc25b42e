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

from sidepair.evaluation.statistics import epochs_to_reach, holm, paired_comparison
from sidepair.experiment.plan import PretrainSpec, RunSpec
from sidepair.experiment.results import curve_area, read_history
from sidepair.training.pretext import TASKS
from sidepair.training.runinfo import read_run_info

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


PAIRED_METRICS = ("kidney_dice", "kidney_hd95", "kidney_nsd")
ALPHA = 0.05


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def main_table(
    rows: list[dict[str, Any]], cases: list[dict[str, Any]], inits: list[str], fractions: list[float]
) -> list[dict[str, Any]]:
    """Per init and fraction: mean and sd over seeds of each run's mean over the test cases.

    Beside them, every label the row used (segmentation's training labels, pretraining's, their union, the
    validation labels that selected models), the test patients and cases, failures, and whether every run
    of the row and of scratch at that fraction converged.
    """
    out = []
    for fraction in fractions:
        scratch_converged = all(
            r["converged"] for r in rows if r["init"] == "scratch" and r["fraction"] == fraction
        )
        for init in inits:
            sel = [r for r in rows if r["init"] == init and r["fraction"] == fraction]
            if not sel:
                continue
            mine = [c for c in cases if c["init"] == init and c["fraction"] == fraction]
            entry: dict[str, Any] = {
                "init": init,
                "fraction": fraction,
                "seg_train_labels": _span([r["seg_train_labels"] for r in sel]),
                "pretrain_train_labels": _span([r["pretrain_train_labels"] for r in sel]),
                "train_labels_union": _span([r["train_labels_union"] for r in sel]),
                "selection_labels": _span([r["selection_labels"] for r in sel]),
                "seeds": len(sel),
                "test_cases": sel[0]["test_cases"],
                "test_patients": len({c["group"] for c in mine}),
                "failures": sum(r["failures"] for r in sel),
                "case_seed_pairs": len(mine),
                "converged": sum(r["converged"] for r in sel),
                "all_converged": all(r["converged"] for r in sel) and scratch_converged,
            }
            for metric in PAIRED_METRICS:
                entry[metric], entry[f"{metric}_sd"] = mean_sd([r[f"{metric}_mean"] for r in sel])
            out.append(entry)
    return out


def per_patient(cases: list[dict[str, Any]], init: str, fraction: float, metric: str) -> dict[str, float]:
    """One value per test patient: its cases and seeds averaged (the unit of the paired statistics)."""
    values: dict[str, list[float]] = {}
    for c in cases:
        if c["init"] == init and c["fraction"] == fraction and math.isfinite(c[metric]):
            values.setdefault(c["group"], []).append(c[metric])
    return {g: float(np.mean(v)) for g, v in values.items()}


def comparisons(
    cases: list[dict[str, Any]], inits: list[str], fractions: list[float], reference: str = "scratch"
) -> list[dict[str, Any]]:
    """Each other init against ``reference``, per fraction and metric, paired per test patient.

    Seeds and a patient's cases are averaged first. Exact Wilcoxon p with its floor for that n, a 95 %
    t-interval, and Holm's adjustment over the whole family (every row returned).
    """
    out = []
    for fraction in fractions:
        for init in (i for i in inits if i != reference):
            for metric in PAIRED_METRICS:
                result = paired_comparison(
                    per_patient(cases, init, fraction, metric),
                    per_patient(cases, reference, fraction, metric),
                    higher_is_better=metric != "kidney_hd95",
                )
                out.append(
                    {"init": init, "reference": reference, "fraction": fraction, "metric": metric, **result}
                )
    adjusted = holm([c["p"] for c in out])
    family = sum(math.isfinite(c["p"]) for c in out)
    for c, p in zip(out, adjusted, strict=True):
        c["p_holm"] = p
        c["family"] = family
        # Even the family's first Holm step multiplies by its size: below that the floor cannot reach alpha.
        c["attainable"] = bool(math.isfinite(c["p_floor"]) and c["p_floor"] * family <= ALPHA)
    return out


def convergence(
    out: Path, runs: list[RunSpec], rows: list[dict[str, Any]], inits: list[str], fractions: list[float]
) -> tuple[list[dict[str, Any]], dict[tuple[str, float], list[list[float]]]]:
    """Convergence per init and fraction, and the validation curves themselves.

    Epochs to reach 95 % of the best validation Dice of the scratch run with the same fraction and
    seed, the mean height of the validation Dice curve (the mean of its per-epoch values), and how many
    runs converged by the plateau rule.
    """
    curves: dict[tuple[str, float], list[list[float]]] = {}
    by_run: dict[tuple[str, float, int], list[float]] = {}
    for run in runs:
        curve = [float(h["val_dice"]) for h in read_history(out / "runs" / run.name)]
        curves.setdefault((run.init, run.fraction), []).append(curve)
        by_run[(run.init, run.fraction, run.seed)] = curve
    converged = {(r["init"], r["fraction"], r["seed"]): r["converged"] for r in rows}
    epochs = {(r["init"], r["fraction"], r["seed"]): r["epochs"] for r in rows}
    table = []
    for fraction in fractions:
        for init in inits:
            reached, heights, best = [], [], []
            seeds = sorted({s for (i, f, s) in by_run if i == init and f == fraction})
            for seed in seeds:
                curve = by_run[(init, fraction, seed)]
                scratch = [v for v in by_run.get(("scratch", fraction, seed), []) if math.isfinite(v)]
                if scratch and curve:
                    reached.append(epochs_to_reach(curve, 0.95 * max(scratch)))
                heights.append(curve_area(curve))
                best.append(max((v for v in curve if math.isfinite(v)), default=math.nan))
            hits = [r for r in reached if r is not None]
            table.append(
                {
                    "init": init,
                    "fraction": fraction,
                    "seeds": len(seeds),
                    "reached": len(hits),
                    "epochs_to_95": float(np.mean(hits)) if hits else math.nan,
                    "mean_height": mean_sd(heights)[0],
                    "mean_height_sd": mean_sd(heights)[1],
                    "best_val_dice": mean_sd(best)[0],
                    "converged": sum(bool(converged.get((init, fraction, s))) for s in seeds),
                    "epochs": _span([int(epochs.get((init, fraction, s), 0)) for s in seeds])
                    if seeds
                    else "",
                }
            )
    return table, curves


def proxy_results(out: Path, specs: list[PretrainSpec]) -> list[dict[str, Any]]:
    """Each pretraining run's own held-out measure (final and best), with its task, labels and wall time.

    The measure is the one that picked the run's checkpoint: pair accuracy for side-pair (and its AUC),
    the share of the corruption undone for restoration, view-retrieval top-1 for contrastive views.
    """
    rows = []
    for spec in specs:
        run_dir = out / "pretrain" / spec.name
        history = read_history(run_dir)
        if not history:
            continue
        resolved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        info = read_run_info(run_dir)
        labels = info.get("labels_read") or {"train": [], "selection": []}
        task = resolved.get("task", "side-pair")
        key = TASKS[task].monitor
        values = [float(h[key]) for h in history]
        finite = [v for v in values if math.isfinite(v)]
        aucs = [float(h.get("val_auc", math.nan)) for h in history]
        rows.append(
            {
                "run": spec.name,
                "variant": spec.variant,
                "task": task,
                "mirror": bool(resolved.get("mirror", False)),
                "sections": resolved.get("sections"),
                "loss": {
                    "side-pair": resolved.get("loss"),
                    "restoration": resolved.get("restoration_loss"),
                }.get(task, "nt-xent"),
                "side_labels": resolved.get("side_labels", "true"),
                "train_labels": len(labels["train"]),
                "selection_labels": len(labels["selection"]),
                "epochs": len(history),
                "measure": TASKS[task].measure,
                "measure_key": key,
                "final": values[-1],
                "best": max(finite, default=math.nan),
                "final_auc": aucs[-1],
                "final_mirror_acc": float(history[-1].get("val_mirror_acc", math.nan)),
                "final_mirror_auc": float(history[-1].get("val_mirror_auc", math.nan)),
                "train_s": sum(float(h.get("time_s", 0.0)) for h in history),
                "history": history,
            }
        )
    return rows


def task_table(
    table: list[dict[str, Any]],
    versus_scratch: list[dict[str, Any]],
    versus_primary: list[dict[str, Any]],
    proxies: list[dict[str, Any]],
    runs: list[RunSpec],
) -> list[dict[str, Any]]:
    """Per fraction and init: the pretext task, its cost, Dice, and Dice against scratch and the primary.

    Dice is the main table's (mean and sd over seeds of each run's mean over the test cases); the
    differences are the paired per-patient ones of :func:`comparisons` (mean, Holm-adjusted p); the cost is
    the mean pretraining wall time of the variant's runs (a label-matched variant has one per subset).
    """
    variant_of = {r.init: r.variant for r in runs}
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for p in proxies:
        by_variant.setdefault(p["variant"], []).append(p)

    def diff(family: list[dict[str, Any]], init: str, fraction: float) -> dict[str, Any] | None:
        return next(
            (
                c
                for c in family
                if c["init"] == init and c["fraction"] == fraction and c["metric"] == "kidney_dice"
            ),
            None,
        )

    out = []
    for row in table:
        init, fraction = row["init"], row["fraction"]
        variant = variant_of.get(init)
        pre = by_variant.get(variant or "", [])
        first = pre[0] if pre else {}
        entry: dict[str, Any] = {
            "init": init,
            "fraction": fraction,
            "task": first.get("task", "none"),
            "targets": "random" if first.get("side_labels") == "random" else "true",
            "sections": first.get("sections", ""),
            "mirror": bool(first.get("mirror", False)),
            "pretrain_runs": len(pre),
            "pretrain_s": float(np.mean([p["train_s"] for p in pre])) if pre else 0.0,
            "train_labels_union": row["train_labels_union"],
            "dice": row["kidney_dice"],
            "dice_sd": row["kidney_dice_sd"],
            "seeds": row["seeds"],
        }
        for name, family in (("scratch", versus_scratch), ("primary", versus_primary)):
            c = diff(family, init, fraction)
            entry[f"vs_{name}"] = c["mean_diff"] if c else math.nan
            entry[f"vs_{name}_n"] = c["n"] if c else 0
            entry[f"vs_{name}_p_holm"] = c["p_holm"] if c else math.nan
        out.append(entry)
    return out

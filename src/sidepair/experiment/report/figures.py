"""The experiment's figures: Dice by label fraction, validation curves, proxy curves, overlays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sidepair.data.formats import source_of
from sidepair.data.store import Store
from sidepair.data.volume import load_nifti
from sidepair.evaluation.figures import render_overlay
from sidepair.experiment.config import ExperimentConfig
from sidepair.plotting import colour, save_figure, subplots


def write_figures(
    out: Path,
    store: Store,
    config: ExperimentConfig,
    table: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    curves: dict[tuple[str, float], list[list[float]]],
    proxies: list[dict[str, Any]],
    cases: list[dict[str, Any]],
    inits: list[str],
    fractions: list[float],
) -> dict[str, Path]:
    """Draw every figure of the report into ``out/figures``; return them by name."""
    data = store.describe()
    colours = {init: colour("tab10", i) for i, init in enumerate(inits)}
    split = config.evaluation.split
    figs = {
        "dice_vs_fraction": _dice_vs_fraction(
            out, config.name, split, table, rows, inits, fractions, colours, data
        ),
        "learning_curves": _learning_curves(out, config.name, curves, inits, fractions, colours, data),
    }
    if proxies:
        figs["proxy_curves"] = _proxy_curves(out, config.name, proxies, data)
    overlay = _overlays(out, store, config, cases, inits, fractions, data)
    if overlay is not None:
        figs["overlays"] = overlay
    return figs


Colours = dict[str, tuple[float, float, float, float]]


def _dice_vs_fraction(
    out: Path,
    name: str,
    split: str,
    table: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    inits: list[str],
    fractions: list[float],
    colours: Colours,
    data: str,
) -> Path:
    """Test Dice by label fraction per init: mean ± sd over seeds, each seed a dot."""
    fig, ax = subplots(figsize=(6.5, 4.2))
    for k, init in enumerate(inits):
        sel = [t for t in table if t["init"] == init]
        xs = np.array([t["fraction"] for t in sel]) * (1 + 0.03 * (k - (len(inits) - 1) / 2))
        ax.errorbar(
            xs,
            [t["kidney_dice"] for t in sel],
            yerr=[0 if not math.isfinite(t["kidney_dice_sd"]) else t["kidney_dice_sd"] for t in sel],
            marker="o",
            capsize=3,
            label=init,
            color=colours[init],
        )
        for r in (r for r in rows if r["init"] == init):
            ax.plot(r["fraction"], r["kidney_dice_mean"], ".", color=colours[init], alpha=0.35)
    ax.set_xscale("log")
    ax.set_xticks(fractions)
    counts = {t["fraction"]: t["seg_train_labels"] for t in table if t["init"] == "scratch"}
    ax.set_xticklabels([f"{f:g}\n({counts[f]} case{'s' if counts[f] != '1' else ''})" for f in fractions])
    ax.set_xlabel("label fraction (labelled training cases)")
    ax.set_ylabel(f"{split} kidney Dice (mean over cases)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(
        fig,
        out / "figures" / "dice_vs_fraction.png",
        f"{name}: {split} Dice by label fraction, mean ± sd over seeds (dots: seeds)\ndata: {data}",
    )


def _learning_curves(
    out: Path,
    name: str,
    curves: dict[tuple[str, float], list[list[float]]],
    inits: list[str],
    fractions: list[float],
    colours: Colours,
    data: str,
) -> Path:
    """Validation Dice per epoch, one panel per fraction: mean over seeds, band min-max."""
    fig, axes = subplots(1, len(fractions), figsize=(4.2 * len(fractions), 3.8), squeeze=False, sharey=True)
    for ax, fraction in zip(axes[0], fractions, strict=True):
        for init in inits:
            runs = [c for c in curves.get((init, fraction), []) if c]
            if not runs:
                continue
            n = min(len(c) for c in runs)
            arr = np.array([c[:n] for c in runs])
            epochs = np.arange(1, n + 1)
            ax.plot(epochs, arr.mean(0), label=f"{init} (n={len(runs)})", color=colours[init])
            ax.fill_between(epochs, arr.min(0), arr.max(0), color=colours[init], alpha=0.18)
        ax.set_title(f"fraction {fraction:g}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("validation kidney Dice")
    axes[0][0].legend(fontsize=8)
    return save_figure(
        fig,
        out / "figures" / "learning_curves.png",
        f"{name}: validation Dice per epoch, mean over seeds, band min-max\ndata: {data}",
    )


def _proxy_curves(out: Path, name: str, proxies: list[dict[str, Any]], data: str) -> Path:
    """Each pretraining's loss (relative to its first epoch) and its own held-out measure per epoch."""
    fig, (ax_loss, ax_own) = subplots(1, 2, figsize=(10, 3.8))
    for p in proxies:
        epochs = [h["epoch"] for h in p["history"]]
        losses = [h["train_loss"] for h in p["history"]]
        # Losses of different tasks differ in scale: each relative to its first epoch.
        ax_loss.plot(epochs, [v / losses[0] for v in losses], marker="o", ms=3, label=p["run"])
        line = ax_own.plot(
            epochs,
            [h[p["measure_key"]] for h in p["history"]],
            marker="o",
            ms=3,
            label=f"{p['run']}: {p['measure']}",
        )
        if p["task"] == "side-pair":
            ax_own.plot(
                epochs,
                [h["val_auc"] for h in p["history"]],
                ls="--",
                color=line[0].get_color(),
                label=f"{p['run']}: AUC",
            )
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss / first epoch's")
    ax_own.set_xlabel("epoch")
    ax_own.set_ylabel("each task's own held-out measure")
    ax_own.set_ylim(top=1.02)
    for ax in (ax_loss, ax_own):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save_figure(
        fig,
        out / "figures" / "proxy_curves.png",
        f"{name}: pretext tasks per run (held-out sections of the validation cases)\ndata: {data}",
    )


def _overlays(
    out: Path,
    store: Store,
    config: ExperimentConfig,
    cases: list[dict[str, Any]],
    inits: list[str],
    fractions: list[float],
    data: str,
) -> Path | None:
    """Scratch against the first SSL init at the lowest fraction and first seed: worst, median, best case."""
    ssl = [i for i in inits if i != "scratch"]
    fraction, seed = fractions[0], config.segmentation.seeds[0]
    scratch_rows = sorted(
        (c for c in cases if c["init"] == "scratch" and c["fraction"] == fraction and c["seed"] == seed),
        key=lambda c: c["kidney_dice"] if math.isfinite(c["kidney_dice"]) else -1,
    )
    if not scratch_rows:
        return None
    picks = [scratch_rows[0], scratch_rows[len(scratch_rows) // 2], scratch_rows[-1]]
    picks = list({c["case_id"]: c for c in picks}.values())
    shown = ["scratch", *ssl[:1]]
    panels = []
    split = config.evaluation.split
    for pick in picks:
        dataset, source = source_of(store, pick["case_id"])
        loaded = dataset.load(source)
        for init in shown:
            row = next(
                c
                for c in cases
                if c["init"] == init
                and c["fraction"] == fraction
                and c["seed"] == seed
                and c["case_id"] == pick["case_id"]
            )
            pred = load_nifti(
                out / "runs" / row["run"] / f"eval_{split}" / "predictions" / f"{pick['case_id']}.nii.gz",
                "label",
            )
            panels.append(
                (
                    f"{pick['case_id']} {init}\nDice {row['kidney_dice']:.3f}",
                    loaded.image.array,
                    loaded.labels.label if loaded.labels is not None else np.zeros_like(pred.array),
                    pred.array,
                    loaded.image.spacing,
                )
            )
    return render_overlay(
        panels,
        out / "figures" / "overlays.png",
        f"{config.name}: {split} cases at label fraction {fraction:g}, seed {seed} "
        f"(worst, median, best for scratch)\ndata: {data}",
        columns=len(shown),
    )

"""The experiment's report: ``report.md``, figures, ``results.csv``, ``per_case.csv``, ``summary.json``.

Everything is computed from the run folders, so a report can be rewritten at any time. Every table
and figure names the data it was measured on (phantom or real, how many cases).
"""

from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from sidepair.atomic import write_json, write_text
from sidepair.evaluation.statistics import epochs_to_reach, paired_comparison
from sidepair.experiment.results import collect, curve_area, read_history, write_csv
from sidepair.pretrain import describe_store

if TYPE_CHECKING:
    from sidepair.data.store import Store
    from sidepair.experiment.config import ExperimentConfig
    from sidepair.experiment.runner import RunSpec

PACKAGES = ["sidepair", "torch", "monai", "numpy", "scipy", "nibabel", "SimpleITK", "matplotlib"]


def environment() -> dict[str, Any]:
    """Software versions and the hardware this process runs on."""
    import torch

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


def _pm(mean: float, sd: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if math.isfinite(sd) else f"{mean:.{digits}f}"


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.array([x for x in values if math.isfinite(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


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
                entry[metric], entry[f"{metric}_sd"] = _mean_sd([r[f"{metric}_mean"] for r in sel])
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
                    "auc": _mean_sd(areas)[0],
                    "auc_sd": _mean_sd(areas)[1],
                    "best_val_dice": _mean_sd(best)[0],
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


def _figures(
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
    import matplotlib.pyplot as plt

    from sidepair.viz import save_figure

    data = describe_store(store)
    split = config.evaluation.split
    figs: dict[str, Path] = {}
    colours = {init: plt.get_cmap("tab10")(i) for i, init in enumerate(inits)}

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
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
    counts = {t["fraction"]: t["train_cases"] for t in table}
    ax.set_xticklabels([f"{f:g}\n({counts[f]} case{'s' if counts[f] != 1 else ''})" for f in fractions])
    ax.set_xlabel("label fraction (labelled training cases)")
    ax.set_ylabel(f"{split} kidney Dice (mean over cases)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figs["dice_vs_fraction"] = save_figure(
        fig,
        out / "figures" / "dice_vs_fraction.png",
        f"{config.name}: {split} Dice by label fraction, mean ± sd over seeds (dots: seeds)\ndata: {data}",
    )

    fig, axes = plt.subplots(
        1, len(fractions), figsize=(4.2 * len(fractions), 3.8), squeeze=False, sharey=True
    )
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
    figs["learning_curves"] = save_figure(
        fig,
        out / "figures" / "learning_curves.png",
        f"{config.name}: validation Dice per epoch, mean over seeds, band min-max\ndata: {data}",
    )

    if proxies:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
        for p in proxies:
            epochs = [h["epoch"] for h in p["history"]]
            ax_loss.plot(
                epochs, [h["train_loss"] for h in p["history"]], marker="o", ms=3, label=p["variant"]
            )
            line = ax_acc.plot(
                epochs,
                [h["val_acc"] for h in p["history"]],
                marker="o",
                ms=3,
                label=f"{p['variant']} accuracy",
            )
            ax_acc.plot(
                epochs,
                [h["val_auc"] for h in p["history"]],
                ls="--",
                color=line[0].get_color(),
                label=f"{p['variant']} AUC",
            )
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("train loss")
        ax_acc.set_xlabel("epoch")
        ax_acc.set_ylabel("held-out pairs")
        ax_acc.set_ylim(0.4, 1.02)
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        figs["proxy_curves"] = save_figure(
            fig,
            out / "figures" / "proxy_curves.png",
            f"{config.name}: side-pair proxy task per section mode (held-out pairs)\ndata: {data}",
        )

    overlay = _overlays(out, store, config, cases, inits, fractions, data)
    if overlay is not None:
        figs["overlays"] = overlay
    return figs


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
    from sidepair.data.volume import load_nifti
    from sidepair.viz import render_overlay

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
        dataset, source = store.source_of(pick["case_id"])
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


def write_report(
    config: ExperimentConfig, out: Path, store: Store, runs: list[RunSpec], stages: dict[str, float]
) -> Path:
    """Write the tables, figures and ``report.md`` of a finished experiment.

    Returns:
        The path of ``report.md``.
    """
    split = config.evaluation.split
    rows, cases = collect(out, runs, split)
    write_csv(out / "results.csv", rows)
    write_csv(out / "per_case.csv", cases)
    inits = list(dict.fromkeys(r.init for r in runs))
    fractions = list(config.segmentation.fractions)
    table = main_table(rows, inits, fractions)
    compared = comparisons(cases, inits, fractions, config.evaluation.bootstrap)
    conv, curves = convergence(out, runs, inits, fractions)
    proxies = proxy_results(out, config)
    figs = _figures(out, store, config, table, rows, curves, proxies, cases, inits, fractions)
    env = environment()
    data = describe_store(store)
    kind = "phantom" if data.startswith("phantom") else "real"
    counts = {s: len(store.split(s)) for s in ("train", "val", "test")}
    summary = {
        "name": config.name,
        "data": data,
        "data_kind": kind,
        "store": str(store.path),
        "split_sizes": counts,
        "runs": len(rows),
        "main_table": table,
        "comparisons": compared,
        "convergence": conv,
        "proxy": [{k: v for k, v in p.items() if k != "history"} for p in proxies],
        "stages_s": stages,
        "environment": env,
        "config": json.loads(config.model_dump_json()),
    }
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", _markdown(config, summary, figs, rows))
    return out / "report.md"


def _markdown(
    config: ExperimentConfig, s: dict[str, Any], figs: dict[str, Path], rows: list[dict[str, Any]]
) -> str:
    split = config.evaluation.split
    data = s["data"]
    warn = (
        "**These are phantom results** (synthetic CT from `sidepair phantom`): they show that the pipeline "
        "works, not how the method does on patients."
        if s["data_kind"] == "phantom"
        else "Real data."
    )
    counts = s["split_sizes"]
    parts = [
        f"# Experiment `{config.name}`: side-pair SSL against scratch",
        "",
        config.description.strip(),
        "",
        f"Data: **{data}**; split train {counts['train']} / val {counts['val']} / test "
        f"{counts['test']} cases. {warn}",
        f"{s['runs']} segmentation runs; metrics on the {split} split, in each scan's own geometry, "
        f"from each run's `{config.evaluation.checkpoint}` checkpoint (chosen by validation Dice).",
        "",
        f"## Test metrics ({data})",
        "",
        f"Mean ± sd over seeds of each run's mean over the {split} cases (`results.csv` holds one row "
        "per run). HD95 in mm; NSD at 2 mm.",
        "",
        _table(
            ["init", "label fraction (cases)", "seeds", f"{split} cases", "Dice", "HD95 mm", "NSD"],
            [
                [
                    t["init"],
                    f"{t['fraction']:g} ({t['train_cases']})",
                    str(t["seeds"]),
                    str(t["test_cases"]),
                    _pm(t["kidney_dice"], t["kidney_dice_sd"]),
                    _pm(t["kidney_hd95"], t["kidney_hd95_sd"], 1),
                    _pm(t["kidney_nsd"], t["kidney_nsd_sd"]),
                ]
                for t in s["main_table"]
            ],
        ),
        "",
    ]
    if "dice_vs_fraction" in figs:
        parts += ["![Dice by label fraction](figures/dice_vs_fraction.png)", ""]
    if s["comparisons"]:
        parts += [
            f"## Paired comparison per {split} case: SSL minus scratch ({data})",
            "",
            "Per case, the metric is first averaged over seeds; n is the number of cases. The Wilcoxon "
            "signed-rank test is two-sided; the 95 % interval of the mean difference is a percentile "
            f"bootstrap ({config.evaluation.bootstrap} resamples). Beside it, the same pairing per case and "
            "seed (the same seed gives both inits the same labelled cases and patches). "
            "For HD95 lower is better; wins count the cases where SSL is better.",
            "",
            _table(
                [
                    "init",
                    "fraction",
                    "metric",
                    "n",
                    "mean diff [95 % CI]",
                    "wins",
                    "Wilcoxon p",
                    "n (case×seed)",
                    "mean diff [95 % CI] (case×seed)",
                    "p (case×seed)",
                ],
                [
                    [
                        c["init"],
                        f"{c['fraction']:g}",
                        c["metric"].replace("kidney_", ""),
                        str(c["n"]),
                        _ci(c["mean_diff"], c["ci_low"], c["ci_high"]),
                        f"{c['wins']}/{c['n']}",
                        _p(c["p"]),
                        str(c["n_case_seed"]),
                        _ci(c["mean_diff_case_seed"], c["ci_low_case_seed"], c["ci_high_case_seed"]),
                        _p(c["p_case_seed"]),
                    ]
                    for c in s["comparisons"]
                ],
            ),
            "",
        ]
    parts += [
        f"## Convergence ({data}, validation split)",
        "",
        "Epochs to reach 95 % of the best validation Dice of the scratch run with the same fraction and seed "
        "(mean over the seeds that reached it), and the area under the validation Dice curve (its mean "
        "height over the epochs, 1 is perfect from the first epoch).",
        "",
        _table(
            [
                "init",
                "fraction",
                "reached / seeds",
                "epochs to 95 % of scratch best",
                "area under val Dice curve",
                "best val Dice",
            ],
            [
                [
                    c["init"],
                    f"{c['fraction']:g}",
                    f"{c['reached']}/{c['seeds']}",
                    f"{c['epochs_to_95']:.1f}" if math.isfinite(c["epochs_to_95"]) else "not reached",
                    _pm(c["auc"], c["auc_sd"]),
                    f"{c['best_val_dice']:.3f}",
                ]
                for c in s["convergence"]
            ],
        ),
        "",
    ]
    if "learning_curves" in figs:
        parts += ["![Validation Dice per epoch](figures/learning_curves.png)", ""]
    if s["proxy"]:
        parts += [
            f"## Proxy task: side pairs ({data}, held-out pairs from the validation cases)",
            "",
            _table(
                [
                    "variant",
                    "sections",
                    "loss",
                    "epochs",
                    "final accuracy",
                    "best accuracy",
                    "final AUC",
                    "best AUC",
                    "train s",
                ],
                [
                    [
                        p["variant"],
                        p["sections"],
                        p["loss"],
                        str(p["epochs"]),
                        f"{p['final_acc']:.3f}",
                        f"{p['best_acc']:.3f}",
                        f"{p['final_auc']:.3f}",
                        f"{p['best_auc']:.3f}",
                        f"{p['train_s']:.0f}",
                    ]
                    for p in s["proxy"]
                ],
            ),
            "",
        ]
        if "proxy_curves" in figs:
            parts += ["![Proxy task curves](figures/proxy_curves.png)", ""]
    if "overlays" in figs:
        parts += [f"## Example {split} cases ({data})", "", "![Overlays](figures/overlays.png)", ""]
    env = s["environment"]
    hw = env["hardware"]
    stages = s["stages_s"]
    train_s = sum(r["train_s"] for r in rows)
    eval_s = sum(r["eval_s"] for r in rows if math.isfinite(r["eval_s"]))
    parts += [
        "## Setup",
        "",
        f"- Data: {data}; store `{s['store']}`.",
        f"- Hardware: {hw['processor']}, {hw['cpu_cores']} CPU cores, {hw['memory_gib']} GiB, GPU: "
        f"{', '.join(hw['gpus'])}; {config.jobs} run(s) at a time; {hw['platform']}.",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "- Wall time per stage (summed over the invocations that did the work): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
        + f"; inside the segmentation stage, training epochs {train_s:.0f} s and evaluation "
        f"{eval_s:.0f} s of run time"
        + (" (runs in parallel, so more than the stage's wall time)" if config.jobs > 1 else "")
        + ".",
        "",
        "Resolved config:",
        "",
        "```yaml",
        yaml.safe_dump(s["config"], sort_keys=False).strip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def _ci(mean: float, low: float, high: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(low):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.3g}"

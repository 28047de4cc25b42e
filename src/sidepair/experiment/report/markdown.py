"""``report.md``: the experiment's tables and figures in Markdown, every number from ``summary.json``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from sidepair.experiment.config import ExperimentConfig


def _pm(mean: float, sd: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if math.isfinite(sd) else f"{mean:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(
    config: ExperimentConfig, s: dict[str, Any], figs: dict[str, Path], rows: list[dict[str, Any]]
) -> str:
    """The report as Markdown, from the summary, the figures and the per-run rows."""
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

"""``report.md``: the experiment's tables and figures in Markdown, every number from ``summary.json``.

Every sentence that states a rule (which checkpoint was scored, which split, how convergence and the
statistics were defined) is built from the config or from the code that applied the rule.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from sidepair.evaluation.statistics import wilcoxon_floor
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.plan import REFERENCE

SPLIT_NAMES = {"test": "Test", "val": "Validation", "train": "Training"}
NOT_CONVERGED = "†"


def _pm(mean: float, sd: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if math.isfinite(sd) else f"{mean:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ci(mean: float, low: float, high: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(low):
        return f"{mean:+.3f}"
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.3g}"


def _metric(name: str) -> str:
    return name.replace("kidney_", "")


def _main_section(config: ExperimentConfig, s: dict[str, Any]) -> list[str]:
    split = config.evaluation.split
    rows = []
    for t in s["main_table"]:
        mark = "" if t["all_converged"] else f" {NOT_CONVERGED}"
        rows.append(
            [
                t["init"] + mark,
                f"{t['fraction']:g}",
                t["seg_train_labels"],
                t["pretrain_train_labels"],
                t["train_labels_union"],
                t["selection_labels"],
                str(t["seeds"]),
                f"{t['test_patients']} ({t['test_cases']})",
                f"{t['failures']}/{t['case_seed_pairs']}",
                _pm(t["kidney_dice"], t["kidney_dice_sd"]),
                _pm(t["kidney_hd95"], t["kidney_hd95_sd"], 1),
                _pm(t["kidney_nsd"], t["kidney_nsd_sd"]),
            ]
        )
    unconverged = [t for t in s["main_table"] if not t["all_converged"]]
    lines = [
        f"## {SPLIT_NAMES[split]} metrics ({s['data']})",
        "",
        f"Mean ± sd over seeds of each run's mean over the {split} cases (`results.csv` holds one row per "
        "run). HD95 in mm; NSD at 2 mm. **Labels used**, per row: training labels read by segmentation, by "
        "pretraining (the masks that cut its sections), their union (the row's label budget), and the "
        "validation labels that selected models (checkpoints, learning-rate schedule, stopping), the same "
        "for every arm. A failure is a case where nothing was predicted and the reference has a kidney: it "
        "scores Dice 0, NSD 0 and HD95 the image's diagonal, and it is in the means.",
        "",
        _table(
            [
                "init",
                "fraction",
                "seg. labels",
                "pretrain labels",
                "union",
                "selection labels",
                "seeds",
                f"{split} patients (cases)",
                "failures (case×seed)",
                "Dice",
                "HD95 mm",
                "NSD",
            ],
            rows,
        ),
        "",
    ]
    if unconverged:
        lines += [
            f"{NOT_CONVERGED} Not every run of this row, or of scratch at its fraction, converged ("
            f"{s['rules']['convergence'] or 'the plateau rule'}). Differences in such rows measure the speed "
            "of training, not final quality.",
            "",
        ]
    return lines


def _reference_note(compared: list[dict[str, Any]]) -> list[str]:
    """The reference arm's rows: what they are, and that their Holm family is their own."""
    mine = [c for c in compared if c["init"] == REFERENCE]
    if not mine:
        return []
    return [
        f"`{REFERENCE}` is nnU-Net's network from its plans, on nnU-Net's preprocessing, trained from "
        "scratch by the same recipe on the same labelled cases: it asks whether scratch is as strong as "
        f"nnU-Net's network, not whether pretraining helps. Its {mine[0]['family']} comparisons are a Holm "
        "family of their own; the pretraining rows' family does not include them.",
        "",
    ]


def _comparison_section(config: ExperimentConfig, s: dict[str, Any], key: str = "comparisons") -> list[str]:
    split = config.evaluation.split
    compared = s[key]
    if not compared:
        return []
    family = next((c["family"] for c in compared if c["init"] != REFERENCE), compared[0]["family"])
    ns = sorted({c["n"] for c in compared})
    floors = ", ".join(f"n = {n}: {wilcoxon_floor(n):.3g}" for n in ns)
    attainable = [c for c in compared if c["attainable"]]
    lines = [
        f"## Paired comparison per {split} patient: each init minus {compared[0]['reference']} ({s['data']})",
        "",
        *(
            [
                f"{compared[0]['reference']} is the side-pair variant the config named as primary before "
                "the experiment ran; it is not chosen by its test results. Holm's adjustment runs over this "
                "table.",
                "",
            ]
            if key == "comparisons_primary"
            else []
        ),
        "The unit is the test patient (the split's group): its cases and its seeds are averaged first, so "
        "n counts patients. p is the exact two-sided Wilcoxon signed-rank test (zero differences dropped); "
        f"beside it the smallest p its n can reach ({floors}); p (Holm) is adjusted over all {family} "
        "comparisons of this table. The interval is a 95 % t-interval of the mean difference, whose coverage "
        "a test checks by simulation. For HD95 lower is better; wins count the patients where the init is "
        "better.",
        "",
        *_reference_note(compared),
        _table(
            ["init", "fraction", "metric", "n", "mean diff [95 % CI]", "wins", "p", "smallest p", "p (Holm)"],
            [
                [
                    c["init"],
                    f"{c['fraction']:g}",
                    _metric(c["metric"]),
                    str(c["n"]),
                    _ci(c["mean_diff"], c["ci_low"], c["ci_high"]),
                    f"{c['wins']}/{c['n']}",
                    _p(c["p"]),
                    _p(c["p_floor"]),
                    _p(c["p_holm"]),
                ]
                for c in compared
            ],
        ),
        "",
    ]
    if not attainable:
        lines += [
            f"**No comparison here can reach p < 0.05 after Holm's correction**: with {family} comparisons "
            "even the smallest attainable p times the family size stays above 0.05. More test patients are "
            "needed to test; the differences above are descriptive.",
            "",
        ]
    return lines


def _convergence_section(s: dict[str, Any]) -> list[str]:
    return [
        f"## Convergence ({s['data']}, validation split)",
        "",
        "Epochs to reach 95 % of the best validation Dice of the scratch run with the same fraction and seed "
        "(mean over the seeds that reached it); the mean height of the validation Dice curve (the mean of "
        "its per-epoch values; 1 is perfect from the first epoch); how many runs converged: "
        f"{s['rules']['convergence'] or 'see run.json'}"
        + ("; runs stopped at their first plateau." if s["rules"]["stop_on_plateau"] else "."),
        "",
        _table(
            [
                "init",
                "fraction",
                "epochs",
                "converged / seeds",
                "reached / seeds",
                "epochs to 95 % of scratch best",
                "mean height of val Dice",
                "best val Dice",
            ],
            [
                [
                    c["init"],
                    f"{c['fraction']:g}",
                    c["epochs"],
                    f"{c['converged']}/{c['seeds']}",
                    f"{c['reached']}/{c['seeds']}",
                    f"{c['epochs_to_95']:.1f}" if math.isfinite(c["epochs_to_95"]) else "not reached",
                    _pm(c["mean_height"], c["mean_height_sd"]),
                    f"{c['best_val_dice']:.3f}",
                ]
                for c in s["convergence"]
            ],
        ),
        "",
        (
            f"Runs that did not converge by this rule ({len(s['unconverged_runs'])}): "
            + ", ".join(s["unconverged_runs"])
            + "."
            if s.get("unconverged_runs")
            else "Every run converged by this rule."
        ),
        "",
    ]


def _proxy_section(s: dict[str, Any], figs: dict[str, Path]) -> list[str]:
    if not s["proxy"]:
        return []
    lines = [
        f"## Pretext tasks ({s['data']}, held-out sections of the validation cases)",
        "",
        "One row per pretraining run (a label-matched variant has one per labelled subset). Each task "
        "reports its own held-out measure, the one that chose its checkpoint: side-pair the pair accuracy"
        " on true sides (with its AUC), restoration the share of the corruption's error it undoes (0 "
        "returns the input, 1 is perfect, below 0 is worse than the input), contrastive views the view-"
        "retrieval top-1 (chance 1 / sections). A random-target control learns targets drawn apart from "
        "the sides, so its accuracy on true pairs should stay near 0.5. Measures of different tasks are "
        "not comparable with each other; the segmentation tables compare the tasks.",
        "",
        "The mirror score is side-pair's accuracy on the same held-out pairs with every second section "
        "mirrored left-right, each keeping its patient's side: a model that tells sides by the organs a "
        "section holds scores as on plain pairs, one that tells them by handedness (which edge the spine is "
        "on, which way a hilum faces) near 0. For kidney-only `masked` and `bbox` sections a low score is "
        "expected: a kidney's shape is its handedness, and that is the signal there.",
        "",
        _table(
            [
                "run",
                "task",
                "sections",
                "mirrored",
                "loss",
                "targets",
                "train labels",
                "epochs",
                "measure",
                "final",
                "best",
                "final AUC",
                "mirror score",
                "train s",
            ],
            [
                [
                    p["run"],
                    p["task"],
                    str(p["sections"]),
                    "yes" if p["mirror"] else "no",
                    str(p["loss"]),
                    ("sides" if p["side_labels"] == "true" else "random")
                    if p["task"] == "side-pair"
                    else "-",
                    str(p["train_labels"]),
                    str(p["epochs"]),
                    p["measure"],
                    f"{p['final']:.3f}",
                    f"{p['best']:.3f}",
                    f"{p['final_auc']:.3f}" if math.isfinite(p["final_auc"]) else "-",
                    f"{p['final_mirror_acc']:.3f}" if math.isfinite(p["final_mirror_acc"]) else "-",
                    f"{p['train_s']:.0f}",
                ]
                for p in s["proxy"]
            ],
        ),
        "",
    ]
    if "proxy_curves" in figs:
        lines += ["![Pretext task curves](figures/proxy_curves.png)", ""]
    return lines


def _task_section(config: ExperimentConfig, s: dict[str, Any]) -> list[str]:
    tasks = s["tasks"]
    if not tasks or all(t["task"] in ("none", "side-pair") and t["targets"] == "true" for t in tasks):
        return []
    primary = s["primary"]
    split = config.evaluation.split
    lines = [
        f"## Side-pair against the other pretexts ({s['data']}, {split} split)",
        "",
        "Every pretext trains the same encoder on the same store, sections and number of optimiser steps and "
        "sections, and transfers through the same strict encoder load; only the task differs. Dice is the "
        "main table's (mean ± sd over seeds); the differences are paired per test patient (mean, Holm-"
        "adjusted p of the tables above); pretraining time is the mean wall time of the variant's "
        "pretraining runs."
        + (f" The primary side-pair variant, named in advance, is `{primary}`." if primary else ""),
        "",
        _table(
            [
                "fraction",
                "init",
                "task",
                "sections",
                "mirrored",
                "targets",
                "labels (union)",
                "pretrain s",
                "Dice",
                "vs scratch",
                "p (Holm)",
                *(["vs primary", "p (Holm)"] if primary else []),
            ],
            [
                [
                    f"{t['fraction']:g}",
                    t["init"],
                    t["task"],
                    str(t["sections"] or "-"),
                    "yes" if t["mirror"] else "no",
                    t["targets"] if t["task"] == "side-pair" else "-",
                    str(t["train_labels_union"]),
                    f"{t['pretrain_s']:.0f}",
                    _pm(t["dice"], t["dice_sd"]),
                    f"{t['vs_scratch']:+.3f}" if math.isfinite(t["vs_scratch"]) else "-",
                    _p(t["vs_scratch_p_holm"]) if math.isfinite(t["vs_scratch_p_holm"]) else "-",
                    *(
                        [
                            f"{t['vs_primary']:+.3f}" if math.isfinite(t["vs_primary"]) else "-",
                            _p(t["vs_primary_p_holm"]) if math.isfinite(t["vs_primary_p_holm"]) else "-",
                        ]
                        if primary
                        else []
                    ),
                ]
                for t in tasks
            ],
        ),
        "",
    ]
    return lines


def _setup_section(config: ExperimentConfig, s: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    env = s["environment"]
    hw = env["hardware"]
    stages = s["stages_s"]
    train_s = sum(r["train_s"] for r in rows)
    eval_s = sum(r["eval_s"] for r in rows if math.isfinite(r["eval_s"]))
    devices = [str(r.get("device") or "not recorded") for r in rows]
    parallel = len(config.device_slots()) > 1
    return [
        "## Setup",
        "",
        f"- Data: {s['data']}; store `{s['store']}`.",
        (
            f"- Network: nnU-Net's own, built by nnU-Net from `{config.plans}` configuration "
            f"`{config.configuration}` (deep supervision off, as every arm here), on nnU-Net's preprocessing."
            if config.architecture == "nnunet"
            else "- Network: sidepair's U-Net of MONAI blocks."
        ),
        f"- Hardware: {hw['processor']}, {hw['cpu_cores']} CPU cores, {hw['memory_gib']} GiB, GPU: "
        f"{', '.join(hw['gpus'])}; {len(config.device_slots())} run(s) at a time; {hw['platform']}.",
        "- Devices the segmentation runs trained on (each run's is in `results.csv`): "
        + ", ".join(f"{d} {n} run{'s' if n != 1 else ''}" for d, n in sorted(Counter(devices).items()))
        + ".",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "- Wall time per stage (summed over the invocations that did the work): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
        + f"; inside the segmentation stage, training epochs {train_s:.0f} s and evaluation "
        f"{eval_s:.0f} s of run time"
        + (" (runs in parallel, so more than the stage's wall time)" if parallel else "")
        + ".",
        "",
        "Resolved config:",
        "",
        "```yaml",
        yaml.safe_dump(s["config"], sort_keys=False).strip(),
        "```",
        "",
    ]


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
    counts, patients = s["split_sizes"], s["split_patients"]
    parts = [
        f"# Experiment `{config.name}`: side-pair SSL against scratch",
        "",
        config.description.strip(),
        "",
        f"Data: **{data}**; split train {counts['train']} / val {counts['val']} / test {counts['test']} "
        f"cases ({patients['train']} / {patients['val']} / {patients['test']} patients). {warn}",
        f"{s['runs']} segmentation runs; metrics on the {split} split, in each scan's own geometry, from "
        f"{s['rules']['checkpoint']}; predictions brought back to each scan's grid as "
        f"{s['rules']['resample']}.",
        "",
    ]
    parts += _main_section(config, s)
    if "dice_vs_fraction" in figs:
        parts += ["![Dice by label fraction](figures/dice_vs_fraction.png)", ""]
    parts += _comparison_section(config, s)
    parts += _comparison_section(config, s, "comparisons_primary")
    parts += _task_section(config, s)
    parts += _convergence_section(s)
    if "learning_curves" in figs:
        parts += ["![Validation Dice per epoch](figures/learning_curves.png)", ""]
    parts += _proxy_section(s, figs)
    if "overlays" in figs:
        parts += [f"## Example {split} cases ({data})", "", "![Overlays](figures/overlays.png)", ""]
    parts += _setup_section(config, s, rows)
    return "\n".join(parts)

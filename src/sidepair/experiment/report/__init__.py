"""The experiment's report: ``report.md``, figures, ``results.csv``, ``per_case.csv``, ``summary.json``.

Everything is computed from the run folders, so a report can be rewritten at any time. Every table and
figure names the data it was measured on (phantom or real, how many cases). ``analysis`` computes,
``figures`` draws, ``markdown`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sidepair.atomic import write_json, write_text
from sidepair.config import load_yaml
from sidepair.data.store import Store
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.plan import REFERENCE, RunSpec, init_label, plan_pretraining
from sidepair.experiment.report.analysis import (
    comparisons,
    convergence,
    environment,
    main_table,
    proxy_results,
    task_table,
)
from sidepair.experiment.report.figures import write_figures
from sidepair.experiment.report.markdown import render_markdown
from sidepair.experiment.results import collect, write_csv
from sidepair.training.runinfo import read_run_info

RESAMPLE_TEXT = {
    "probabilities": "probabilities resampled linearly, then the argmax",
    "labels": "labels resampled by nearest neighbour",
}


def report_rules(config: ExperimentConfig, out: Path, runs: list[RunSpec]) -> dict[str, Any]:
    """The rules the report states, each from the config or from the code that applied it."""
    first = load_yaml(out / "runs" / runs[0].name / "config.yaml") if runs else {}
    if first.get("validation") == "patches":
        validation = (
            f"validation Dice pooled over {first.get('val_patches')} fixed patches of the validation cases "
            "(the same patches for every run), each epoch; whole validation volumes scored once, for the "
            "chosen checkpoint"
        )
    else:
        validation = "validation Dice: the mean per-case Dice of the whole validation volumes, each epoch"
    best = "the best validation Dice"
    if float(first.get("smoothing") or 0) > 0:
        best = f"the best moving average (smoothing {float(first['smoothing']):g}) of the validation Dice"
    return {
        "checkpoint": (
            f"the checkpoint of the epoch with {best} ({validation})"
            if config.evaluation.checkpoint == "best"
            else f"the last epoch's checkpoint ({validation})"
        ),
        # Stated by the code that applied it (each run's run.json), not restated here.
        "convergence": read_run_info(out / "runs" / runs[0].name).get("convergence_rule", "") if runs else "",
        "stop_on_plateau": bool(config.segmentation.stop_on_plateau),
        "resample": RESAMPLE_TEXT[config.evaluation.resample],
    }


def versus_scratch(
    cases: list[dict[str, Any]], inits: list[str], fractions: list[float]
) -> list[dict[str, Any]]:
    """Every init against scratch, paired per test patient, in Holm families.

    The reference arm asks another question (is scratch as strong as nnU-Net's network?): its comparisons
    with scratch are a family of their own, so the pretraining rows' family does not grow by them.
    """
    compared = comparisons(cases, [i for i in inits if i != REFERENCE], fractions)
    if REFERENCE in inits:
        compared += comparisons(cases, ["scratch", REFERENCE], fractions)
    return compared


def write_report(
    config: ExperimentConfig, out: Path, store: Store, runs: list[RunSpec], stages: dict[str, float]
) -> Path:
    """Write the tables, figures and ``report.md`` of a finished experiment.

    Returns:
        The path of ``report.md``.
    """
    split = config.evaluation.split
    groups = {case_id: entry.group for case_id, entry in store.cases.items()}
    rows, cases = collect(out, runs, split, groups)
    write_csv(out / "results.csv", rows)
    write_csv(out / "per_case.csv", cases)
    inits = list(dict.fromkeys(r.init for r in runs))
    fractions = list(config.segmentation.fractions)
    table = main_table(rows, cases, inits, fractions)
    compared = versus_scratch(cases, inits, fractions)
    arms = [i for i in inits if i != REFERENCE]
    primary = init_label("finetune", config.primary) if config.primary else None
    versus_primary = (
        comparisons(cases, [i for i in arms if i != "scratch"], fractions, reference=primary)
        if primary
        else []
    )
    conv, curves = convergence(out, runs, rows, inits, fractions)
    proxies = proxy_results(out, plan_pretraining(config, store))
    tasks = task_table(table, compared, versus_primary, proxies, runs)
    figs = write_figures(out, store, config, table, rows, curves, proxies, cases, inits, fractions)
    env = environment()
    data = store.describe()
    kind = "phantom" if data.startswith("phantom") else "real"
    counts = {s: len(store.split(s)) for s in ("train", "val", "test")}
    patients = {s: len({store.cases[c].group for c in store.split(s)}) for s in ("train", "val", "test")}
    rules = report_rules(config, out, runs)
    summary = {
        "name": config.name,
        "data": data,
        "data_kind": kind,
        "store": str(store.path),
        "split_sizes": counts,
        "split_patients": patients,
        "rules": rules,
        "runs": len(rows),
        "main_table": table,
        "comparisons": compared,
        "primary": primary,
        "comparisons_primary": versus_primary,
        "tasks": tasks,
        "convergence": conv,
        "unconverged_runs": [r["run"] for r in rows if not r["converged"]],
        "proxy": [{k: v for k, v in p.items() if k != "history"} for p in proxies],
        "stages_s": stages,
        "environment": env,
        "config": json.loads(config.model_dump_json()),
    }
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", render_markdown(config, summary, figs, rows))
    return out / "report.md"


__all__ = ["write_report"]

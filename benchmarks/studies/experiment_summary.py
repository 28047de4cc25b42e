"""An experiment's report as a result file: its ``summary.json`` with the commit, the machine and the data.

`sidepair experiment` writes ``summary.json`` beside ``report.md`` (main table, paired comparisons,
convergence, pretext tasks, label counts). This copies it to results/<name>.json with the commit its runs
were trained at (``--commit``; default this checkout's) and this machine, so that a figure the docs quote
from a report has a committed file. Nothing is trained.

With ``--fractions``, the report of those label fractions alone is written first, from their finished runs,
while the experiment may still train the others: its resolved config (``experiment.yaml``) restricted to
them, its finished runs and pretrainings linked into ``--work`` (hard links; nothing in the experiment
folder is written), and sidepair's own report over them.

Usage: python benchmarks/studies/experiment_summary.py EXPERIMENT_DIR --name NAME [--commit SHA]
       [--note TEXT] [--fractions F ...] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import RESULTS, commit, machine
from sidepair.data.store import Store
from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.plan import plan_runs
from sidepair.experiment.report import write_report


def partial_report(experiment: Path, fractions: list[float], work: Path) -> Path:
    """The report of ``fractions`` alone, from the experiment's finished runs linked into ``work``."""
    full = load_experiment_config(experiment / "experiment.yaml")
    grid = full.segmentation.model_copy(update={"fractions": fractions})
    config = full.model_copy(update={"segmentation": grid})
    stores = sorted(experiment.glob("store_*"))
    if len(stores) != 1:
        sys.exit(f"{experiment}: expected one store_* folder, found {len(stores)}")
    store = Store(stores[0])
    runs = plan_runs(config, store)
    for run in runs:
        source = experiment / "runs" / run.name
        if not (source / "eval_test" / "metrics.json").is_file():
            sys.exit(f"{source}: not finished (no eval_test/metrics.json)")
        link_tree(source, work / "runs" / run.name)
    link_tree(experiment / "pretrain", work / "pretrain")
    state = experiment / "experiment.json"
    stages = json.loads(state.read_text(encoding="utf-8")).get("stages", {}) if state.is_file() else {}
    write_report(config, work, store, runs, stages)
    return work


def link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` under ``target`` (a report reads them; it writes beside them)."""
    for path in source.rglob("*"):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.hardlink_to(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="The experiment folder (holding summary.json).")
    parser.add_argument("--name", required=True, help="The results file's name.")
    parser.add_argument("--commit", default=None, help="The commit the runs were trained at.")
    parser.add_argument("--note", default="", help="What the reader must know (e.g. a partial grid).")
    parser.add_argument("--fractions", type=float, nargs="+", help="Report these label fractions alone.")
    parser.add_argument("--work", type=Path, help="With --fractions: where their report is written.")
    args = parser.parse_args()
    folder = args.experiment
    if args.fractions:
        work = args.work or args.experiment.with_name(f"{args.experiment.name}-partial")
        folder = partial_report(args.experiment, args.fractions, work)
    path = folder / "summary.json"
    if not path.is_file():
        sys.exit(f"{path}: not found (run `sidepair experiment` to its report first)")
    summary = json.loads(path.read_text(encoding="utf-8"))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    record = {
        "benchmark": args.name,
        "commit": args.commit or commit(),
        "machine": machine(),
        "data": summary["data"],
        "note": args.note,
        **summary,
    }
    out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"{'init':<18} {'fraction':>8} {'Dice':>14} {'converged':>10}")
    for row in summary["main_table"]:
        dice = f"{row['kidney_dice']:.3f} ± {row['kidney_dice_sd']:.3f}"
        print(f"{row['init']:<18} {row['fraction']:>8} {dice:>14} {row['converged']:>6}/{row['seeds']}")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()

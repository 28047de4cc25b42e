"""The pretext comparison in an experiment: every task side by side, its table recomputed from the CSVs."""

import json
import re

import numpy as np
import pytest
import yaml

from sidepair.errors import ConfigError
from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.runner import run_experiment
from tests.conftest import read_csv

pytestmark = pytest.mark.integration

SHORT = {"epochs": 1, "pairs_per_epoch": 64}
TASKS = {
    "name": "tasks",
    "preset": "demo",
    "data": {"phantom": {"cases": 10, "seed": 3, "shape": [96, 96, 32]}},
    "pretrain": [
        {"name": "masked", "sections": "masked", "epochs": 1, "pairs_per_epoch": 64},
        {"name": "random", "sections": "masked", "epochs": 1, "pairs_per_epoch": 64, "side_labels": "random"},
        {"name": "restore", "task": "restoration", "sections": "half", "epochs": 1, "pairs_per_epoch": 64},
        {
            "name": "views",
            "task": "contrastive-views",
            "sections": "half",
            "epochs": 1,
            "pairs_per_epoch": 64,
        },
    ],
    "primary": "masked",
    "segmentation": {"fractions": [1.0], "seeds": [0, 1], "epochs": 1, "samples_per_epoch": 32},
    "jobs": 1,
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    (root / "tasks.yaml").write_text(yaml.safe_dump(TASKS), encoding="utf-8")
    report = run_experiment(load_experiment_config(root / "tasks.yaml"), root / "out", progress=False)
    return root / "out", report.read_text(encoding="utf-8")


def per_patient(cases, init):
    values = {}
    for c in cases:
        if c["init"] == init:
            values.setdefault(c["group"], []).append(float(c["kidney_dice"]))
    return {g: np.mean(v) for g, v in values.items()}


def test_the_task_table_equals_a_recomputation_from_the_csvs(experiment):
    out, text = experiment
    rows, cases = read_csv(out / "results.csv"), read_csv(out / "per_case.csv")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    section = text.split("## Side-pair against the other pretexts")[1].split("\n## ")[0]
    lines = [x for x in section.splitlines() if re.match(r"\| 1 \| ", x)]
    assert [x.split("|")[2].strip() for x in lines] == [
        "scratch",
        "ssl-masked",
        "ssl-random",
        "ssl-restore",
        "ssl-views",
    ]
    scratch, primary = per_patient(cases, "scratch"), per_patient(cases, "ssl-masked")
    expected_task = {"scratch": "none", "ssl-masked": "side-pair", "ssl-random": "side-pair"}
    expected_task |= {"ssl-restore": "restoration", "ssl-views": "contrastive-views"}
    for line, entry in zip(lines, summary["tasks"], strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        init = cells[1]
        assert entry["init"] == init and cells[2] == expected_task[init]
        dice = [float(r["kidney_dice_mean"]) for r in rows if r["init"] == init]
        assert len(dice) == 2 and cells[8] == f"{np.mean(dice):.3f} ± {np.std(dice, ddof=1):.3f}"
        mine = per_patient(cases, init)
        if init != "scratch":
            diff = np.mean([mine[g] - scratch[g] for g in scratch])
            assert entry["vs_scratch"] == pytest.approx(diff) and cells[9] == f"{diff:+.3f}"
        if init not in ("scratch", "ssl-masked"):
            diff = np.mean([mine[g] - primary[g] for g in primary])
            assert entry["vs_primary"] == pytest.approx(diff) and cells[11] == f"{diff:+.3f}"
        pre = [p for p in summary["proxy"] if f"ssl-{p['variant']}" == init]
        assert float(cells[7]) == pytest.approx(np.mean([p["train_s"] for p in pre]) if pre else 0, abs=0.5)
    assert cells and "## Paired comparison per test patient: each init minus ssl-masked" in text


def test_each_pretext_reports_its_own_measure(experiment):
    out, text = experiment
    proxy = {p["variant"]: p for p in json.loads((out / "summary.json").read_text(encoding="utf-8"))["proxy"]}
    assert proxy["masked"]["measure_key"] == "val_acc" and proxy["random"]["side_labels"] == "random"
    assert proxy["restore"]["measure_key"] == "val_gain" and proxy["views"]["measure_key"] == "val_top1"
    assert all(not p["mirror"] for p in proxy.values())
    assert proxy["restore"]["train_labels"] == 0 and proxy["masked"]["train_labels"] > 0
    history = [json.loads(x) for x in (out / "pretrain" / "views" / "metrics.jsonl").read_text().splitlines()]
    assert proxy["views"]["final"] == pytest.approx(history[-1]["val_top1"])
    assert "| views | contrastive-views | half | no |" in text


def test_the_primary_must_be_a_side_pair_variant(tmp_path):
    bad = {**TASKS, "primary": "restore"}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ConfigError, match="primary 'restore' must be a side-pair variant"):
        load_experiment_config(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text(yaml.safe_dump({**TASKS, "primary": "nope"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="primary 'nope' is not a variant"):
        load_experiment_config(tmp_path / "y.yaml")

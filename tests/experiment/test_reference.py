"""The reference arm: nnU-Net's network and plans from scratch, by the experiment's recipe, on the same cases.

On the nnU-Net phantom (nnU-Net's own fingerprint and plans): a second store with nnU-Net's preprocessing
and the same split, one ``nnunet-scratch`` run per fraction and seed, its rows in the report as a Holm
family of their own, and its steps in ``--plan``.
"""

import json

import pytest
import yaml

from sidepair.data.store import Store
from sidepair.errors import ConfigError
from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.estimate import estimate, plan_lines
from sidepair.experiment.plan import REFERENCE, plan_runs
from sidepair.experiment.runner import run_experiment
from sidepair.experiment.status import experiment_status
from tests.conftest import read_csv

pytestmark = pytest.mark.integration


def reference_config(tmp_path, planned) -> dict:
    beside = tmp_path / "nnUNetPlans.json"  # a relative plans path is looked up beside the config
    beside.write_text(planned["plans"].read_text(encoding="utf-8"), encoding="utf-8")
    dataset = planned["plans"].parent / "dataset.json"  # nnU-Net's preprocessor reads it beside the plans
    (tmp_path / "dataset.json").write_text(dataset.read_text(encoding="utf-8"), encoding="utf-8")
    return {
        "name": "with-reference",
        "preset": "demo",
        "data": {"paths": [str(planned["raw"])]},
        "prepare": {"val_fraction": 0.25, "test_fraction": 0.25},
        "segmentation": {
            "inits": ["scratch"],
            "fractions": [1.0],
            "seeds": [0],
            "epochs": 1,
            "samples_per_epoch": 16,
            "batch_size": 8,
            "val_patches": 8,
        },
        "reference": {"plans": "nnUNetPlans.json", "configuration": "2d"},
        "device": "cpu",
    }


def write(tmp_path, data):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_reference_arm_trains_nnunets_network_on_the_same_cases(nnunet_planned, tmp_path):
    config = load_experiment_config(write(tmp_path, reference_config(tmp_path, nnunet_planned)))
    assert config.reference.plans == str((tmp_path / "nnUNetPlans.json").resolve())
    assert [r.name for r in plan_runs(config)] == ["scratch_f1_s0", f"{REFERENCE}_f1_s0"]
    lines = {line.what: line for line in plan_lines(config)}
    assert lines[REFERENCE].runs == 1 and lines[REFERENCE].steps == lines["scratch"].steps == 2
    assert lines[REFERENCE].step.size == (64, 64)  # the plans' 2d patch
    timed = {r["what"]: r for r in estimate(config)["rows"]}  # nnU-Net's own network, timed here
    assert timed[REFERENCE]["cpu_step_s"] > 0 and timed[REFERENCE]["cpu_timed_at"] is None

    out = tmp_path / "out"
    report = run_experiment(config, out, progress=False)

    stores = sorted(out.glob("store_*"))
    assert len(stores) == 2  # the experiment's grid and nnU-Net's
    splits = [{s: sorted(Store(p).labelled(s)) for s in ("train", "val", "test")} for p in stores]
    assert splits[0] == splits[1] and len(splits[0]["test"]) == 1
    ref = yaml.safe_load((out / "runs" / f"{REFERENCE}_f1_s0" / "config.yaml").read_text(encoding="utf-8"))
    own = yaml.safe_load((out / "runs" / "scratch_f1_s0" / "config.yaml").read_text(encoding="utf-8"))
    assert (ref["architecture"], ref["configuration"], ref["init"]) == ("nnunet", "2d", "scratch")
    assert own["architecture"] == "monai" and ref["store"] != own["store"]
    # Only the network and its preprocessing differ: the recipe and the labelled cases are the same.
    for key in ("optimizer", "lr", "schedule", "steps", "label_fraction", "seed", "validation", "smoothing"):
        assert ref[key] == own[key], key
    cases = read_csv(out / "per_case.csv")
    by_init = {
        init: sorted(c["case_id"] for c in cases if c["init"] == init) for init in ("scratch", REFERENCE)
    }
    assert by_init["scratch"] == by_init[REFERENCE] == splits[0]["test"]
    assert all(0.0 <= float(c["kidney_dice"]) <= 1.0 for c in cases)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    mine = [c for c in summary["comparisons"] if c["init"] == REFERENCE]
    assert mine and all(c["reference"] == "scratch" and c["family"] <= 3 for c in mine)
    assert {t["init"] for t in summary["main_table"]} == {"scratch", REFERENCE}
    text = report.read_text(encoding="utf-8")
    assert f"`{REFERENCE}` is nnU-Net's network from its plans" in text
    _, status = experiment_status(out)
    assert [(s.folder, s.state) for s in status] == [
        ("runs/scratch_f1_s0", "finished"),
        (f"runs/{REFERENCE}_f1_s0", "finished"),
    ]


def test_a_reference_beside_nnunet_everywhere_is_refused(nnunet_planned, tmp_path):
    data = reference_config(tmp_path, nnunet_planned)
    data.update(architecture="nnunet", plans="nnUNetPlans.json", configuration="2d")
    with pytest.raises(ConfigError, match="reference is nnU-Net's network from scratch"):
        load_experiment_config(write(tmp_path, data))

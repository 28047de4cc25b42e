"""The experiment end to end on a tiny phantom: tables against results.csv, skip on rerun, kill and resume."""

import json
import re

import nibabel as nib
import numpy as np
import pytest
import yaml

from sidepair.experiment.config import ExperimentConfig, load_experiment_config
from sidepair.experiment.plan import plan_runs
from sidepair.experiment.report import report_rules
from sidepair.experiment.report.markdown import render_markdown
from sidepair.experiment.runner import run_experiment
from tests.conftest import read_csv, run_cli
from tests.experiment.conftest import TINY
from tests.experiment.golden_key import golden_path

pytestmark = pytest.mark.integration


def test_every_run_has_one_row_and_its_evaluation(tiny):
    config, out, _ = tiny
    runs = plan_runs(config)
    rows = read_csv(out / "results.csv")
    assert len(runs) == 8
    assert sorted(r["run"] for r in rows) == sorted(r.name for r in runs)
    for row in rows:
        run_dir = out / "runs" / row["run"]
        assert int(row["epochs"]) == 2 and int(row["test_cases"]) >= 2
        metrics = json.loads((run_dir / "eval_test" / "metrics.json").read_text(encoding="utf-8"))
        assert float(row["kidney_dice_mean"]) == pytest.approx(metrics["metrics"]["kidney_dice"]["mean"])
        assert int(row["train_cases"]) == (3 if row["fraction"] == "0.5" else 6)
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        if row["init"] == "scratch":
            assert info["transfer"] == "scratch (no transfer)"
        else:
            assert re.match(r"(\d+)/\1 encoder tensors transferred", info["transfer"])
    # scratch and SSL runs at the same fraction and seed train on the same cases
    a = json.loads((out / "runs" / "scratch_f0.5_s1" / "run.json").read_text(encoding="utf-8"))
    b = json.loads((out / "runs" / "ssl-masked_f0.5_s1" / "run.json").read_text(encoding="utf-8"))
    assert a["train_cases"] == b["train_cases"]
    per_case = read_csv(out / "per_case.csv")
    assert len(per_case) == sum(int(r["test_cases"]) for r in rows)


def test_report_tables_agree_with_results_csv(tiny):
    _, out, report = tiny
    text = report.read_text(encoding="utf-8")
    rows = read_csv(out / "results.csv")
    assert "phantom" in text.splitlines()[4] and "These are phantom results" in text
    main = text.split("## Test metrics")[1].split("\n## ")[0]
    table = [
        line for line in main.splitlines() if re.match(r"\| (scratch|ssl-masked)( †)? \| [\d.]+ \|", line)
    ]
    assert len(table) == 4
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        init, fraction = cells[0].split()[0], float(cells[1])
        sel = [r for r in rows if r["init"] == init and float(r["fraction"]) == fraction]
        dice = [float(r["kidney_dice_mean"]) for r in sel]
        hd95 = [float(r["kidney_hd95_mean"]) for r in sel]
        # the label accounting: segmentation, pretraining, union, selection
        assert cells[2:6] == [
            sel[0][k]
            for k in ("seg_train_labels", "pretrain_train_labels", "train_labels_union", "selection_labels")
        ]
        assert cells[6] == str(len(dice)) == "2"
        assert cells[9] == f"{np.mean(dice):.3f} ± {np.std(dice, ddof=1):.3f}"
        assert cells[10] == f"{np.mean(hd95):.1f} ± {np.std(hd95, ddof=1):.1f}"
        assert cells[0].endswith("†")  # two epochs: no run converged, and the row says so
    # the paired Dice difference, recomputed from per_case.csv (per patient, seeds averaged first)
    cases = read_csv(out / "per_case.csv")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for fraction in (0.5, 1.0):
        per = {}
        for c in cases:
            if float(c["fraction"]) == fraction:
                per.setdefault((c["init"], c["group"]), []).append(float(c["kidney_dice"]))
        ids = sorted({k[1] for k in per})
        diff = np.mean([np.mean(per[("ssl-masked", i)]) - np.mean(per[("scratch", i)]) for i in ids])
        entry = next(
            c for c in summary["comparisons"] if c["fraction"] == fraction and c["metric"] == "kidney_dice"
        )
        assert entry["mean_diff"] == pytest.approx(diff) and entry["n"] == len(ids)
        assert f"| ssl-masked | {fraction:g} | dice | {len(ids)} | {diff:+.3f}" in text
    assert "No comparison here can reach p < 0.05 after Holm's correction" in text  # 2 test patients
    for name in ("dice_vs_fraction", "learning_curves", "proxy_curves", "overlays"):
        png = out / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000 and f"figures/{name}.png" in text
    assert "torch 2.13" in text and "CPU cores" in text and "segmentation" in summary["stages_s"]
    assert summary["data_kind"] == "phantom"
    # strict JSON: no NaN tokens anywhere
    json.loads((out / "summary.json").read_text(encoding="utf-8"), parse_constant=_refuse)
    for path in out.glob("runs/*/eval_test/metrics.json"):
        json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse)


def _refuse(token):
    raise AssertionError(f"non-strict JSON token {token}")


def test_runs_record_every_label_they_read(tiny):
    config, out, _ = tiny
    for run in read_csv(out / "results.csv"):
        info = json.loads((out / "runs" / run["run"] / "run.json").read_text(encoding="utf-8"))
        assert info["labels_read"]["train"] == info["train_cases"]
        assert info["labels_read"]["selection"] == info["val_cases"]
        test = set(json.loads((out / next(out.glob("store_*")).name / "splits.json").read_text())["test"])
        assert not test & set(info["labels_read"]["train"] + info["labels_read"]["selection"])
        if run["init"] == "scratch":
            assert info["pretrain_labels_read"] is None
        else:  # masked pretraining on all labelled training cases (mask_cases: all)
            assert len(info["pretrain_labels_read"]["train"]) == 6
            assert info["pretrain_labels_read"]["selection"] == info["val_cases"]


def test_rerun_skips_finished_runs(tiny, capsys):
    config, out, _ = tiny
    ckpts = sorted(out.glob("runs/*/checkpoint_*.pt")) + sorted(out.glob("pretrain/*/checkpoint_*.pt"))
    before = {p: p.stat().st_mtime_ns for p in ckpts}
    run_experiment(config, out, progress=True)
    assert "8 segmentation runs, 8 already finished" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in ckpts} == before
    assert len(read_csv(out / "results.csv")) == 8


def test_a_changed_config_is_refused_naming_the_run(tiny, tmp_path):
    config, out, _ = tiny
    from sidepair.errors import SidepairError

    changed = config.model_copy(update={"segmentation": config.segmentation.model_copy(update={"lr": 0.5})})
    with pytest.raises(SidepairError, match=r"scratch_f0.5_s0/config.yaml: this run was made with other"):
        run_experiment(changed, out, progress=False)


def test_per_case_metrics_equal_those_before_the_redesign(tiny):
    """With ``resample: labels`` (the old way back to the source grid), every per-case metric of the tiny
    experiment equals what the code before the one-prediction-path redesign wrote (commit 1852e12) on this
    CPU. Training floats are CPU-specific (see ``golden_key``), so a CPU with no record is skipped."""
    _, out, _ = tiny
    path = golden_path()
    if not path.exists():
        pytest.skip(f"no golden for this CPU ({path.name}); python -m tests.experiment.golden_key records it")
    golden = read_csv(path)
    now = read_csv(out / "per_case.csv")
    key = ("run", "case_id")
    assert sorted(tuple(r[k] for k in key) for r in now) == sorted(tuple(r[k] for k in key) for r in golden)
    by_key = {tuple(r[k] for k in key): r for r in now}
    for old in golden:
        new = by_key[tuple(old[k] for k in key)]
        for column in ("kidney_dice", "kidney_hd95", "kidney_nsd", "right_dice", "left_dice"):
            assert float(new[column]) == pytest.approx(float(old[column]), rel=1e-9, abs=1e-12), (old, column)


def test_experiment_dice_equals_what_predict_writes(tiny, tmp_path):
    """The experiment scores exactly what `sidepair predict` writes: `predict` on each test case, then
    `sidepair evaluate --predictions`, gives the run's per-case Dice."""
    config, out, _ = tiny
    run = "ssl-masked_f1_s0"
    rows = [r for r in read_csv(out / "per_case.csv") if r["run"] == run]
    assert len(rows) >= 2
    data, preds = tmp_path / "data", tmp_path / "preds"
    for row in rows:
        case = out / "phantom" / row["case_id"]
        (data / row["case_id"]).mkdir(parents=True)
        for name in ("imaging.nii.gz", "segmentation.nii.gz"):
            (data / row["case_id"] / name).symlink_to(case / name)
        result = run_cli(
            "predict",
            "-i",
            case / "imaging.nii.gz",
            "-o",
            preds / f"{row['case_id']}.nii.gz",
            "--model",
            out / "runs" / run,
            "--resample",
            config.evaluation.resample,
        )
        assert result.returncode == 0, result.stderr
        written = out / "runs" / run / "eval_test" / "predictions" / f"{row['case_id']}.nii.gz"
        a, b = nib.load(preds / f"{row['case_id']}.nii.gz"), nib.load(written)
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        np.testing.assert_allclose(a.affine, b.affine)
    result = run_cli("evaluate", "--predictions", preds, "--data", data)
    assert result.returncode == 0, result.stderr
    scored = {r["case_id"]: r for r in read_csv(preds / "per_case.csv")}
    for row in rows:
        for column in ("kidney_dice", "kidney_hd95", "kidney_nsd"):
            assert float(scored[row["case_id"]][column]) == pytest.approx(float(row[column]), rel=1e-9)


def test_report_text_comes_from_the_config_and_the_code(tiny):
    config, out, report = tiny
    runs = plan_runs(config)
    rules = report_rules(config, out, runs)
    assert rules["checkpoint"] == (
        "the checkpoint of the epoch with the best validation Dice (validation Dice: the mean per-case Dice "
        "of the whole validation volumes, each epoch)"
    )
    assert "from the checkpoint of the epoch with the best validation Dice" in report.read_text(
        encoding="utf-8"
    )
    last = config.model_copy(
        update={"evaluation": config.evaluation.model_copy(update={"checkpoint": "last"})}
    )
    assert report_rules(last, out, runs)["checkpoint"].startswith(
        "the last epoch's checkpoint (validation Dice"
    )
    # the convergence rule is the one the runs applied, with the preset's window and threshold
    info = json.loads((out / "runs" / runs[0].name / "run.json").read_text(encoding="utf-8"))
    assert rules["convergence"] == info["convergence_rule"] and "last 5 epochs" in rules["convergence"]
    # the split's name comes from the config
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    on_val = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"split": "val"})})
    text = render_markdown(on_val, {**summary, "rules": report_rules(last, out, runs)}, {}, read_rows(out))
    assert "## Validation metrics" in text and "Test metrics" not in text
    assert "metrics on the val split" in text and "from the last epoch's checkpoint" in text
    assert "the mean of its per-epoch values" in text  # what curve_area computes (tested in statistics)


def read_rows(out):
    rows = read_csv(out / "results.csv")
    return [{**r, "train_s": float(r["train_s"]), "eval_s": float(r["eval_s"])} for r in rows]


SLICES = {
    "name": "slices",
    "preset": "demo",
    "data": {
        "phantom": {"cases": 10, "seed": 5, "shape": [96, 96, 32], "layout": "slices", "slices_per_case": 3}
    },
    "prepare": {"test_fraction": 0.3},
    "pretrain": [{"name": "half", "sections": "half", "epochs": 1, "pairs_per_epoch": 32}],
    "segmentation": {"fractions": [1.0], "seeds": [0, 1], "epochs": 1, "samples_per_epoch": 32},
}


def test_a_slice_folder_experiment_counts_and_pairs_patients_not_slices(tmp_path):
    path = tmp_path / "slices.yaml"
    path.write_text(yaml.safe_dump(SLICES), encoding="utf-8")
    out = tmp_path / "out"
    report = run_experiment(load_experiment_config(path), out, progress=False)
    cases = read_csv(out / "per_case.csv")
    patients = {c["group"] for c in cases}
    slices = {c["case_id"] for c in cases}
    assert len(patients) == 3 and len(slices) == 9  # 3 test patients of 3 slices each
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert {c["n"] for c in summary["comparisons"]} == {3}  # paired per patient, not per slice
    assert summary["main_table"][0]["test_patients"] == 3 and summary["main_table"][0]["test_cases"] == 9
    text = report.read_text(encoding="utf-8")
    assert "| 3 (9) |" in text and "n = 3: 0.25" in text


@pytest.mark.slow  # 150 s alone: worker processes each importing torch; keeps `make test` near 15 min
def test_runs_spread_over_device_slots_give_the_in_process_results(tiny, tmp_path):
    """Issue #31: two slots on one CPU (each worker takes one when it starts) give, per run, what the
    in-process experiment gave; results.csv and the report name each run's device."""
    import torch

    config, out, _ = tiny
    assert ExperimentConfig.model_validate(
        {**TINY, "devices": ["cuda:0", "cuda:1"], "runs_per_device": 2}
    ).device_slots() == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert config.device_slots() == ["auto"]
    # Each worker keeps the in-process run's thread count: floats depend on it.
    spread = config.model_copy(update={"devices": ["cpu", "cpu"], "threads_per_job": torch.get_num_threads()})
    report = run_experiment(spread, tmp_path / "spread", progress=False)
    key = ("run", "case_id")
    before, after = read_csv(out / "per_case.csv"), read_csv(tmp_path / "spread" / "per_case.csv")
    assert sorted((tuple(r[k] for k in key), r) for r in after) == sorted(
        (tuple(r[k] for k in key), r) for r in before
    )
    rows = read_csv(tmp_path / "spread" / "results.csv")
    assert {r["device"] for r in rows} == {"cpu"} and len(rows) == 8
    assert "- Devices the segmentation runs trained on (each run's is in `results.csv`): cpu 8 runs." in (
        report.read_text(encoding="utf-8")
    )
    assert "2 run(s) at a time" in report.read_text(encoding="utf-8")


def test_status_of_a_partly_finished_grid(tiny, tmp_path):
    import os
    import shutil
    import socket

    _, out, _ = tiny
    grid = tmp_path / "grid"
    shutil.copytree(out, grid)
    shutil.rmtree(grid / "runs" / "scratch_f0.5_s0")  # never started
    shutil.rmtree(grid / "runs" / "scratch_f0.5_s1" / "eval_test")  # killed before its evaluation
    for name in ("scratch_f1_s0", "scratch_f1_s1"):  # trained, not evaluated: then it failed, or runs
        shutil.rmtree(grid / "runs" / name / "eval_test")
    (grid / "runs" / "scratch_f1_s0" / "error.txt").write_text("Traceback ...\nDataError: case_3: bad\n")
    mark = {"pid": os.getpid(), "host": socket.gethostname(), "device": "cuda:1", "started": 0}
    (grid / "runs" / "scratch_f1_s1" / "job.json").write_text(json.dumps(mark))
    done = run_cli("experiment", "--status", grid)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"experiment tiny in {grid}: 9 runs; 5 finished, 1 running, 1 interrupted, 1 failed, 1 waiting"
    )
    state = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert state["pretrain/masked"] == ["finished"]
    assert state["runs/scratch_f0.5_s0"] == ["waiting"]
    assert state["runs/scratch_f0.5_s1"] == ["interrupted", "a rerun resumes it"]
    assert state["runs/scratch_f1_s0"] == ["failed", "DataError: case_3: bad"]
    assert state["runs/scratch_f1_s1"] == ["running", f"on cuda:1 at {socket.gethostname()}"]
    assert "every run finished" not in done.stdout
    refused = run_cli("experiment", "--status", tmp_path)
    assert refused.returncode == 1 and "not an experiment folder (no experiment.yaml)" in refused.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--devices", "cpu,gpu3"], "unknown device 'gpu3' (auto, cpu, cuda, cuda:N or mps)"),
        (["--devices", "cpu", "--runs-per-device", "0"], "runs_per_device: Input should be greater than"),
        (["--runs-per-device", "2"], "--runs-per-device goes with --devices"),
        (["--status", "x"], "--status DIR reads the experiment folder alone"),
    ],
)
def test_device_options_are_checked_in_one_line(options, message):
    done = run_cli("experiment", "demo", *options, "--plan")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_run_whose_job_still_runs_is_not_started_twice(tiny, tmp_path):
    """A rerun of the command while a job of the earlier one still runs in a folder refuses, naming it."""
    import os
    import shutil
    import socket

    from sidepair.errors import SidepairError

    config, out, _ = tiny
    run_dir = out / "runs" / "scratch_f1_s1"
    shutil.move(run_dir / "eval_test", tmp_path / "eval_test")  # put back below: the experiment is shared
    mark = {"pid": os.getpid(), "host": socket.gethostname(), "device": "cpu", "started": 0}
    (run_dir / "job.json").write_text(json.dumps(mark))
    try:
        with pytest.raises(
            SidepairError, match=r"scratch_f1_s1: a job still runs in it \(on cpu at .*job.json"
        ):
            run_experiment(config, out, progress=False)
        assert not (run_dir / "eval_test").exists()
    finally:
        (run_dir / "job.json").unlink()
        shutil.move(tmp_path / "eval_test", run_dir / "eval_test")

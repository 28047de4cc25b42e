"""The experiment end to end on a tiny phantom: tables against results.csv, skip on rerun, kill and resume."""

import csv
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from sidepair.experiment import load_experiment_config, run_experiment
from sidepair.experiment.plan import plan_runs
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

TINY = {
    "name": "tiny",
    "description": "tiny end-to-end check",
    "preset": "demo",
    "data": {"phantom": {"cases": 10, "seed": 3, "shape": [96, 96, 32]}},
    "pretrain": [{"name": "masked", "sections": "masked", "epochs": 2, "pairs_per_epoch": 64}],
    "segmentation": {
        "inits": ["scratch", "finetune"],
        "fractions": [0.5, 1.0],
        "seeds": [0, 1],
        "epochs": 2,
        "samples_per_epoch": 64,
    },
    # The way back of the code before the one-prediction-path redesign, for the golden comparison below.
    "evaluation": {"bootstrap": 500, "resample": "labels"},
    "jobs": 1,
}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    config = load_experiment_config(path)
    out = root / "out"
    report = run_experiment(config, out, progress=False)
    return config, out, report


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
    table = [
        line for line in text.splitlines() if re.match(r"\| (scratch|ssl-masked) \| [\d.]+ \(\d+\) \|", line)
    ]
    assert len(table) == 4
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        init, fraction = cells[0], float(cells[1].split()[0])
        dice = [
            float(r["kidney_dice_mean"])
            for r in rows
            if r["init"] == init and float(r["fraction"]) == fraction
        ]
        hd95 = [
            float(r["kidney_hd95_mean"])
            for r in rows
            if r["init"] == init and float(r["fraction"]) == fraction
        ]
        assert cells[2] == str(len(dice)) == "2"
        assert cells[4] == f"{np.mean(dice):.3f} ± {np.std(dice, ddof=1):.3f}"
        assert cells[5] == f"{np.mean(hd95):.1f} ± {np.std(hd95, ddof=1):.1f}"
    # the paired Dice difference, recomputed from per_case.csv (seeds averaged per case)
    cases = read_csv(out / "per_case.csv")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for fraction in (0.5, 1.0):
        per = {}
        for c in cases:
            if float(c["fraction"]) == fraction:
                per.setdefault((c["init"], c["case_id"]), []).append(float(c["kidney_dice"]))
        ids = sorted({k[1] for k in per})
        diff = np.mean([np.mean(per[("ssl-masked", i)]) - np.mean(per[("scratch", i)]) for i in ids])
        entry = next(
            c for c in summary["comparisons"] if c["fraction"] == fraction and c["metric"] == "kidney_dice"
        )
        assert entry["mean_diff"] == pytest.approx(diff) and entry["n"] == len(ids)
        assert f"| ssl-masked | {fraction:g} | dice | {len(ids)} | {diff:+.3f}" in text
    for name in ("dice_vs_fraction", "learning_curves", "proxy_curves", "overlays"):
        png = out / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000 and f"figures/{name}.png" in text
    assert "torch 2.13" in text and "CPU cores" in text and "segmentation" in summary["stages_s"]
    assert summary["data_kind"] == "phantom"


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
    experiment equals what the code before the one-prediction-path redesign wrote (commit 1852e12)."""
    _, out, _ = tiny
    golden = read_csv(Path(__file__).parent / "golden_tiny_per_case.csv")
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

"""SIGKILL at seeded random moments, several times per command; each resume ends as an uninterrupted run.

For pretrain, train and experiment: a reference run without interruption, then the same command killed
KILLS times at random moments (seeded) and resumed each time, then resumed to the end. Every checkpoint
left after a kill must verify; the final run must hold every epoch exactly once, with the reference's
numbers (same seed, CPU).
"""

import csv
import json
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml

from sidepair.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.integration

KILLS = 3
SIDEPAIR = [sys.executable, "-m", "sidepair"]


def kill_at_random(cmd, rng, low=1.0, high=6.0):
    """Start ``cmd``, SIGKILL it after a random delay (unless it ends first); True if it was killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + rng.uniform(low, high)
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def assert_checkpoints_valid(folder):
    for path in folder.rglob("checkpoint_*.pt"):
        load_checkpoint(path)  # raises on a truncated or corrupted file


def history(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def run_ok(cmd):
    result = subprocess.run(cmd, capture_output=True, encoding="utf-8", timeout=900)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow  # about a minute each: run by `make test-slow` (CI runs both), keeping `make test` under 15
@pytest.mark.parametrize("verb", ["pretrain", "train"])
def test_pretrain_and_train_resume_after_repeated_kills(small_store, tmp_path, verb):
    if verb == "pretrain":
        args = [
            "--sections",
            "masked",
            "--section-size",
            "24",
            "--section-size",
            "24",
            "--pairs-per-epoch",
            "256",
            "--batch-size",
            "8",
            "--val-pairs",
            "16",
        ]
        keys = ["train_loss", "val_auc"]
    else:
        args = ["--patch-size", "32", "--patch-size", "32", "--samples-per-epoch", "96", "--batch-size", "8"]
        keys = ["train_loss", "val_dice"]
    base = [
        *SIDEPAIR,
        verb,
        "--store",
        str(small_store),
        "--preset",
        "fast-2d",
        "--epochs",
        "4",
        "--seed",
        "3",
        "--device",
        "cpu",
        *args,
    ]
    run_ok([*base, "--out", str(tmp_path / "ref")])
    run = tmp_path / "killed"
    rng = random.Random(f"{verb}-kills")
    killed = 0
    for _ in range(KILLS):
        killed += kill_at_random([*base, "--out", str(run), "--resume"], rng)
        assert_checkpoints_valid(run)
    print(f"\n{verb}: {killed} of {KILLS} kills landed during the run")
    assert killed >= 2, "the runs ended before they could be killed"
    run_ok([*base, "--out", str(run), "--resume"])
    rows, ref = history(run), history(tmp_path / "ref")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for a, b in zip(rows, ref, strict=True):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7)
    assert load_checkpoint(run / "checkpoint_last.pt")["epoch"] == 4


@pytest.mark.slow  # about 2 minutes
def test_experiment_resumes_after_repeated_kills(small_phantom, tmp_path):
    """Kills land anywhere: during prepare, pretraining, a segmentation run, evaluation or the report."""
    from tests.experiment.conftest import TINY

    config = {
        **TINY,
        "data": {"paths": [str(small_phantom)], "format": "kits"},
        "segmentation": {**TINY["segmentation"], "epochs": 3, "samples_per_epoch": 64},
        "jobs": 2,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "out"
    cmd = [*SIDEPAIR, "experiment", str(path), "--out", str(out)]
    rng = random.Random("experiment-kills")
    killed = 0
    for _ in range(KILLS):
        killed += kill_at_random(cmd, rng, 2.0, 25.0)
        # The workers die with the experiment (PR_SET_PDEATHSIG): nothing changes in the folder afterwards.
        time.sleep(1.0)
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
        time.sleep(2.0)
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
        assert_checkpoints_valid(out)
    print(f"\nexperiment: {killed} of {KILLS} kills landed during the run")
    assert killed >= 2
    run_ok(cmd)
    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and len({r["run"] for r in rows}) == 8
    for row in rows:
        assert [h["epoch"] for h in history(out / "runs" / row["run"])] == [1, 2, 3]
    assert_checkpoints_valid(out)

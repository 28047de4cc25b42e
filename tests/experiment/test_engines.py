"""The experiment grid through submitit (issue #31): its local executor runs each job as its own process."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from sidepair.errors import ConfigError, SidepairError
from sidepair.experiment import engines
from sidepair.experiment.config import ExperimentConfig
from tests.conftest import read_csv
from tests.experiment.conftest import TINY

pytest.importorskip("submitit", reason="the [slurm] extra is not installed")

SIDEPAIR = [sys.executable, "-m", "sidepair"]
TIMING = {"train_s", "eval_s"}  # wall times: the one thing a run through another engine may change


def experiment_yaml(tmp_path, cpus=None, **changes):
    """TINY through submitit's local executor; by default each job with the in-process run's threads."""
    config = {**TINY, **changes, "executor": "submitit-local"}
    config["slurm"] = {"cpus_per_job": cpus or torch.get_num_threads(), "time_min": 30}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.slow  # nine job processes, each importing torch and MONAI: about 2 minutes
def test_submitit_jobs_give_the_in_process_results(tiny, tmp_path):
    """Each job as its own process, with the in-process run's thread count: results.csv and per_case.csv
    equal the in-process experiment's, wall times aside."""
    _, reference, _ = tiny
    path = experiment_yaml(tmp_path)
    done = subprocess.run(
        [*SIDEPAIR, "experiment", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("results.csv", "per_case.csv"):
        ours = sorted(
            tuple((k, v) for k, v in r.items() if k not in TIMING) for r in read_csv(tmp_path / "out" / name)
        )
        theirs = sorted(
            tuple((k, v) for k, v in r.items() if k not in TIMING) for r in read_csv(reference / name)
        )
        assert ours == theirs, name
    assert len(list((tmp_path / "out" / "submitit").glob("*_log.out"))) == 9  # one job per run, logs kept


@pytest.mark.slow  # about 2 minutes
def test_a_killed_job_fails_the_command_and_its_rerun_resumes_from_the_checkpoint(tmp_path):
    # One thread a job: the local executor starts every fine-tune at once.
    path = experiment_yaml(tmp_path, cpus=1, segmentation={**TINY["segmentation"], "epochs": 4})
    out = tmp_path / "out"
    cmd = [*SIDEPAIR, "experiment", str(path), "--out", str(out)]
    experiment = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline and experiment.poll() is None:
        for mark in sorted(out.glob("runs/*/job.json")):
            if (mark.parent / "checkpoint_last.pt").exists():
                try:
                    victim = mark.parent, json.loads(mark.read_text(encoding="utf-8"))["pid"]
                except (ValueError, OSError):
                    continue
                break
        time.sleep(0.2)
    assert victim is not None, "no segmentation job reached its first checkpoint"
    run_dir, pid = victim
    os.kill(pid, signal.SIGKILL)
    _, stderr = experiment.communicate(timeout=900)
    assert experiment.returncode == 1 and f"run {run_dir.name}:" in stderr, stderr[-2000:]
    status = subprocess.run([*SIDEPAIR, "experiment", "--status", str(out)], capture_output=True, text=True)
    assert f"runs/{run_dir.name}" in status.stdout and "interrupted" in status.stdout.split(run_dir.name)[1]
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as handle:
        epochs = [json.loads(line)["epoch"] for line in handle if line.strip()]
    assert epochs == [1, 2, 3, 4]  # resumed: every epoch once
    assert not (run_dir / "job.json").exists() and not (run_dir / "error.txt").exists()
    with open(out / "results.csv", newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 8


def test_the_slurm_executor_names_its_extra_when_submitit_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # an import of it now fails
    with pytest.raises(ConfigError, match=r"pip install 'sidepair\[slurm\]'"):
        engines.require_submitit()


def test_slurm_settings_reach_submitit_and_a_machine_without_slurm_is_told(tmp_path):
    config = ExperimentConfig.model_validate(
        {**TINY, "executor": "slurm", "slurm": {"partition": "gpu", "time_min": 90, "gpus_per_job": 2}}
    )
    assert engines.slurm_parameters(config) == {
        "name": "sidepair-tiny",
        "timeout_min": 90,
        "gpus_per_node": 2,
        "cpus_per_task": 4,
        "mem_gb": 32.0,
        "slurm_partition": "gpu",
    }
    with pytest.raises(SidepairError, match=r"srun.*--executor submitit-local"):
        engines.SubmititEngine(config, tmp_path)

"""One job of an experiment (a pretraining, or a segmentation run and its evaluation), and its state.

A job is a plain dictionary, so that any engine can carry it: a worker process here, or a SLURM job.
Its run folder is its state. A job marks itself running (``job.json``: process, host, device, start) and
removes the mark when it ends; a job that fails leaves ``error.txt`` with the reason. ``--status`` reads
these marks and the run's own files; a rerun of the experiment skips what finished and resumes the rest.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Literal

import yaml

from sidepair.atomic import number, write_json, write_text
from sidepair.config import Performance
from sidepair.errors import SidepairError
from sidepair.evaluation.evaluate import evaluate_run
from sidepair.experiment.results import read_history
from sidepair.models.checkpoint import load_checkpoint
from sidepair.training.pretrain import PretrainConfig, run_pretrain
from sidepair.training.runinfo import field_defaults, read_run_info, same_run
from sidepair.training.segment import run_train
from sidepair.training.segment_config import TrainConfig

JOB_MARK = "job.json"  # a job is running in this folder (or was killed while it did)
ERROR_MARK = "error.txt"  # the last job in this folder failed, and why

JobState = Literal["waiting", "running", "interrupted", "failed", "finished"]


def training_finished(run_dir: Path, resolved: dict[str, Any]) -> bool:
    """Whether a run folder holds a complete training run with exactly these settings.

    Raises:
        SidepairError: If it holds a run with other settings (the message names the folder).
    """
    saved = run_dir / "config.yaml"
    if not saved.exists():
        return False
    saved_config = yaml.safe_load(saved.read_text(encoding="utf-8"))
    if not same_run(saved_config, resolved, field_defaults(TrainConfig), run_dir):
        raise SidepairError(
            f"{saved}: this run was made with other settings than the experiment's config now asks "
            "for; use another --out, or restore the config"
        )
    last = run_dir / "checkpoint_last.pt"
    if not last.exists():
        return False
    try:
        ckpt = load_checkpoint(last)
    except SidepairError:
        return False  # a damaged checkpoint: the run resumes, falling back to the best one
    epochs = int(ckpt["epoch"])
    done = epochs >= int(resolved["epochs"]) or bool(ckpt.get("stopped", False))
    # A finished run writes its convergence (run.json) and curves after its last checkpoint, and an
    # older sidepair wrote the log after it too: a run killed before them is resumed, which finds it
    # finished, trains nothing and writes them (else the report would call it unconverged).
    written = (
        len(read_history(run_dir)) == epochs
        and read_run_info(run_dir).get("epochs_run") == epochs
        and (run_dir / "learning_curves.png").exists()
    )
    return done and written and (run_dir / "checkpoint_best.pt").exists()


def evaluation_finished(run_dir: Path, split: str, which: str, resample: str) -> bool:
    """Whether ``eval_<split>/metrics.json`` was written from the run's current checkpoint, as asked."""
    metrics = run_dir / f"eval_{split}" / "metrics.json"
    if not metrics.exists():
        return False
    try:
        summary = json.loads(metrics.read_text(encoding="utf-8"))
        ckpt = load_checkpoint(run_dir / f"checkpoint_{which}.pt")
    except (ValueError, OSError, SidepairError):
        return False
    return (
        summary.get("checkpoint") == which
        and summary.get("checkpoint_epoch") == int(ckpt["epoch"])
        and summary.get("resample", "labels") == resample
    )


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job on ``job["device"]``; marks its folder while it runs. Errors come back as text.

    Returns:
        ``name`` and ``device``, with ``history`` (pretraining) or ``dice`` (segmentation), or ``error``.
    """
    run_dir = Path(job["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ERROR_MARK).unlink(missing_ok=True)
    mark = {"pid": os.getpid(), "host": socket.gethostname(), "device": job["device"], "started": time.time()}
    write_json(run_dir / JOB_MARK, mark)
    # The error mark is written before the running mark goes: a folder is never left looking interrupted.
    try:
        result = _run(job, run_dir)
    except SidepairError as exc:
        result = {"name": job["name"], "error": str(exc)}
        write_text(run_dir / ERROR_MARK, result["error"] + "\n")
    except BaseException as exc:
        write_text(run_dir / ERROR_MARK, f"{type(exc).__name__}: {exc}\n")
        raise
    finally:
        (run_dir / JOB_MARK).unlink(missing_ok=True)
    return {**result, "device": job["device"]}


def _run(job: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    label = f"[{job['name']}] " if job["parallel"] else ""
    options = {
        "resume": True,
        "progress": job["progress"],
        "label": label,
        "bar": not job["parallel"],
        "performance": Performance(**job.get("performance", {})),
    }
    device = job["device"]
    if job["kind"] == "pretrain":
        config = PretrainConfig.model_validate({**job["config"], "device": device})
        return {"name": job["name"], "history": run_pretrain(config, run_dir, **options)}
    if not training_finished(run_dir, job["config"]):
        run_train(TrainConfig.model_validate({**job["config"], "device": device}), run_dir, **options)
    if not evaluation_finished(run_dir, job["split"], job["checkpoint"], job["resample"]):
        which, resample = job["checkpoint"], job["resample"]
        evaluate_run(run_dir, job["split"], which, device, progress=False, resample=resample)
    summary = json.loads((run_dir / f"eval_{job['split']}" / "metrics.json").read_text(encoding="utf-8"))
    return {"name": job["name"], "dice": number(summary["metrics"]["kidney_dice"]["mean"])}


def job_state(run_dir: Path, finished: bool) -> tuple[JobState, str]:
    """A run folder's state and a detail (the error's last line, the device and host it runs on).

    Args:
        run_dir: The run folder.
        finished: Whether its training and evaluation are complete (the caller knows the settings).
    """
    if finished:
        return "finished", ""
    error = run_dir / ERROR_MARK
    if error.exists():
        lines = [line for line in error.read_text(encoding="utf-8").splitlines() if line.strip()]
        return "failed", lines[-1] if lines else ""
    mark = run_dir / JOB_MARK
    if mark.exists():
        try:
            info = json.loads(mark.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
        where = f"on {info.get('device', '?')} at {info.get('host', '?')}"
        if info.get("host") != socket.gethostname() or _alive(int(info.get("pid", -1))):
            return "running", where  # another host's job cannot be checked from here: taken as running
        return "interrupted", f"killed {where}; a rerun resumes it"
    if run_dir.exists() and any(run_dir.glob("checkpoint_*.pt")):
        return "interrupted", "a rerun resumes it"
    return "waiting", ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True

"""Where an experiment's jobs run: here, in worker processes spread over devices, or as submitit jobs.

The local engine keeps one worker per device slot (``ExperimentConfig.device_slots``: ``jobs`` workers on
``device``, or ``runs_per_device`` workers on each of ``devices``). Each worker takes one slot when it
starts and runs every job it is given on that device. Workers die with the experiment (Linux), so a
killed experiment leaves no run writing behind it. The experiment keeps the order of its stages: every
pretraining is finished before a fine-tune that transfers from it starts.

The submitit engine submits one job per run, to SLURM or to submitit's local executor, and waits for
them. A job is checkpointable: one that reaches its time limit or is pre-empted is requeued by submitit,
and resumes from its run folder. A job that failed is resubmitted by the next run of the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from sidepair.errors import ConfigError, SidepairError
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.jobs import run_job

_SLOT: list[str] = []  # the device of this worker process, taken once when it starts


def _init_worker(parent: int, threads: int, slots: Any) -> None:
    """Tie a worker to the experiment (it is killed with it), give it ``threads`` threads and a device."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
    torch.set_num_threads(threads)
    _SLOT.append(slots.get_nowait())


def _in_worker(job: dict[str, Any]) -> dict[str, Any]:
    return run_job({**job, "device": _SLOT[0]})


class LocalEngine:
    """Runs jobs here (one slot) or in one worker process per device slot, reporting each as it finishes.

    Args:
        slots: The device of each run trained at the same time.
        threads: Torch threads per worker (default: CPU cores / workers).
    """

    def __init__(self, slots: list[str], threads: int | None = None) -> None:
        self.slots = list(slots)
        cores = os.cpu_count() or 1
        self.threads = threads or max(1, cores // len(self.slots))
        self.pool: ProcessPoolExecutor | None = None
        if len(self.slots) > 1:
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            for slot in self.slots:
                queue.put(slot)
            self.pool = ProcessPoolExecutor(
                len(self.slots),
                mp_context=context,
                initializer=_init_worker,
                initargs=(os.getpid(), self.threads, queue),
            )

    def run(self, jobs: list[dict[str, Any]], on_done: Callable[[dict[str, Any]], None]) -> None:
        """Run ``jobs``; call ``on_done(result)`` for each; stop at the first error and raise it."""
        if self.pool is None:
            for job in jobs:
                result = run_job({**job, "device": self.slots[0]})
                if "error" in result:
                    raise SidepairError(f"run {result['name']}: {result['error']}")
                on_done(result)
            return
        pending: set[Future] = {self.pool.submit(_in_worker, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                if "error" in result:
                    for other in pending:
                        other.cancel()
                    raise SidepairError(f"run {result['name']}: {result['error']}")
                on_done(result)

    def close(self) -> None:
        """Stop the workers (after the jobs they run)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def require_submitit() -> Any:
    """The submitit module.

    Raises:
        ConfigError: It is not installed; the message names the extra that installs it.
    """
    try:
        import submitit  # optional extra: only the slurm executors need it
    except ImportError:
        raise ConfigError(
            "executor slurm needs submitit, which is not installed: pip install 'sidepair[slurm]'"
        ) from None
    return submitit


class _Job:
    """One run as a submitit job: a requeued job (time limit, pre-emption) resumes from its folder."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        torch.set_num_threads(self.threads)
        return run_job(job)

    def checkpoint(self, job: dict[str, Any]) -> Any:
        """What submitit requeues when the job is stopped: the same job (the run folder is its state)."""
        return require_submitit().helpers.DelayedSubmission(self, job)


def slurm_parameters(config: ExperimentConfig) -> dict[str, Any]:
    """What each job asks of the cluster, as submitit's ``update_parameters`` takes it."""
    slurm = config.slurm
    parameters: dict[str, Any] = {
        "name": f"sidepair-{config.name}",
        "timeout_min": slurm.time_min,
        "gpus_per_node": slurm.gpus_per_job,
        "cpus_per_task": slurm.cpus_per_job,
        "mem_gb": slurm.mem_gb,
    }
    if slurm.partition is not None:
        parameters["slurm_partition"] = slurm.partition
    return parameters


class SubmititEngine:
    """Runs each job as a submitit job, on SLURM or on this machine, and waits for all of them.

    Args:
        config: The experiment (its ``executor``, ``slurm`` settings and ``device``).
        folder: Where submitit keeps each job's pickles and logs.
        poll_s: Seconds between looks at the jobs.
    """

    def __init__(self, config: ExperimentConfig, folder: Path, poll_s: float = 2.0) -> None:
        submitit = require_submitit()
        cluster = "local" if config.executor == "submitit-local" else "slurm"
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        except RuntimeError as exc:  # submitit finds no srun: not on a SLURM cluster
            raise SidepairError(
                f"executor slurm: {exc} (run on a SLURM login node, or try the grid here with "
                "--executor submitit-local)"
            ) from None
        self.executor.update_parameters(**slurm_parameters(config))
        self.threads = config.slurm.cpus_per_job
        self.device = config.device
        self.poll_s = poll_s

    def run(self, jobs: list[dict[str, Any]], on_done: Callable[[dict[str, Any]], None]) -> None:
        """Submit ``jobs``, call ``on_done(result)`` as each finishes; raise after all if any failed."""
        handles = [
            (job, self.executor.submit(_Job(self.threads), {**job, "device": self.device})) for job in jobs
        ]
        failures: list[str] = []
        while handles:
            waiting = []
            for job, handle in handles:
                if not handle.done():
                    waiting.append((job, handle))
                    continue
                try:
                    result = handle.result()
                except Exception as exc:  # submitit's FailedJobError and kin: the job's own error inside
                    lines = [line for line in str(exc).splitlines() if line.strip()]
                    result = {"name": job["name"], "error": lines[-1] if lines else type(exc).__name__}
                if "error" in result:
                    failures.append(f"run {result['name']}: {result['error']}")
                else:
                    on_done(result)
            handles = waiting
            if handles:
                time.sleep(self.poll_s)
        if failures:
            more = f" (and {len(failures) - 1} more; rerun to resubmit them)" if len(failures) > 1 else ""
            raise SidepairError(failures[0] + more)

    def close(self) -> None:
        """Nothing to stop: every job has ended when ``run`` returns."""


def engine_for(config: ExperimentConfig, out: Path) -> LocalEngine | SubmititEngine:
    """The engine ``config.executor`` names."""
    if config.executor == "local":
        return LocalEngine(config.device_slots(), config.threads_per_job)
    return SubmititEngine(config, out / "submitit")

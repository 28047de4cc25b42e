"""The life of a training run, the same for every pretext task and for segmentation.

A run folder holds ``config.yaml`` (what the run is; a resume must match it), ``run.json`` (its
circumstances and the task's own facts), the checkpoints, ``metrics.jsonl`` and ``tensorboard/`` (written
by the loop each epoch), and once training ends the task's closing fields in ``run.json`` and
``learning_curves.png``. Those are written last: a run whose last checkpoint is there but they are not
was killed while finishing, and a resume finishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, Unpack

from sidepair.config import Performance
from sidepair.data.store import Store
from sidepair.devices import resolve_device
from sidepair.training.curves import plot_history
from sidepair.training.distributed import check_batch, dist_info, is_main_process
from sidepair.training.loop import LoopSettings, fit
from sidepair.training.pretrain_config import PretrainConfig
from sidepair.training.runinfo import update_run_info, write_run_config, write_run_info
from sidepair.training.segment_config import TrainConfig
from sidepair.training.task import Task

RunConfig = PretrainConfig | TrainConfig


class RunOptions(TypedDict, total=False):
    """How a run is run, besides what it is (its config).

    Attributes:
        resume: Continue an interrupted run (a finished one is left as it is).
        progress: Progress bars and per-epoch lines.
        stop_after: Stop after this many batches (tests of interruption); the run is then not finished.
        label: Prefix of the progress lines.
        bar: Per-batch progress bar (with ``progress``).
        performance: Speed options (recorded in run.json; not part of the run's config).
    """

    resume: bool
    progress: bool
    stop_after: int | None
    label: str
    bar: bool
    performance: Performance | None


def loop_settings(config: RunConfig, task: Task, performance: Performance) -> LoopSettings:
    """The loop's settings for a run of ``config``: its budget, optimiser and schedule, seed and device."""
    return LoopSettings(
        epochs=config.epochs,
        optim=config,  # a run config is its own optimiser settings (it inherits them)
        monitor=task.monitor,
        smoothing=task.smoothing,
        steps_per_epoch=config.steps_per_epoch,
        seed=config.seed,
        device=config.device,
        performance=performance,
    )


def run_task(
    config: RunConfig, out: str | Path, make_task: Callable[[Any, Store], Task], **options: Unpack[RunOptions]
) -> list[dict[str, Any]]:
    """Run one training run from its resolved config to its finished folder.

    Args:
        config: The resolved run config.
        out: Run folder.
        make_task: Builds the task from the config and the open store (checks come before any write).
        **options: See :class:`RunOptions`.

    Returns:
        The per-epoch history.
    """
    out = Path(out)
    performance = options.get("performance") or Performance()
    progress, label, bar = options.get("progress", True), options.get("label", ""), options.get("bar", True)
    resume, stop_after = options.get("resume", False), options.get("stop_after")
    check_batch(config.batch_size, dist_info())  # under torchrun: refused before anything is written
    store = Store(config.store)
    task = make_task(config, store)
    write_run_config(out, config, resume)
    write_run_info(
        out,
        task.kind,
        store,
        config.seed,
        **task.run_info(),
        device=str(resolve_device(config.device)),
        performance=performance.model_dump(),
    )
    announce = task.announce()
    if progress and is_main_process() and announce:
        print(f"{label}{announce}")
    settings = loop_settings(config, task, performance)
    history = fit(
        task, out, settings, resume=resume, progress=progress, stop_after=stop_after, label=label, bar=bar
    )
    if history and stop_after is None and is_main_process():
        closing = task.finish(out, history, config.device, performance)
        if closing:
            update_run_info(out, **closing)
        title = f"{task.title()}, data: {store.describe()}"
        plot_history(history, task.curves, out / "learning_curves.png", title)
    return history

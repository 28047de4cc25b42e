"""Pretraining: side-pair (the method) or a generic pretext task, on the same encoder, data and budget.

``run_pretrain`` builds the task a config names (``task: side-pair | restoration | contrastive-views``)
and trains it with the shared loop. The run folder holds ``config.yaml``, ``run.json``,
``checkpoint_last.pt`` / ``checkpoint_best.pt`` (whose ``encoder_config`` and the ``encoder.*``
weights are what the segmentation U-Net loads), ``metrics.jsonl``, ``tensorboard/`` and
``learning_curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sidepair.config import Performance
from sidepair.data.store import Store
from sidepair.training.curves import plot_history
from sidepair.training.distributed import check_batch, dist_info, is_main_process
from sidepair.training.loop import LoopSettings, fit
from sidepair.training.pretext import SidePairTask, build_task
from sidepair.training.pretrain_config import PretrainConfig, label_subset, resolve_config
from sidepair.training.runinfo import write_run_config, write_run_info

__all__ = ["PretrainConfig", "SidePairTask", "label_subset", "resolve_config", "run_pretrain"]

TITLES = {"side-pair": "side-pair", "restoration": "restoration", "contrastive-views": "contrastive views"}


def run_pretrain(
    config: PretrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    label: str = "",
    bar: bool = True,
    performance: Performance | None = None,
) -> list[dict[str, Any]]:
    """Pretrain and write the run folder.

    Args:
        config: Resolved config.
        out: Run folder.
        resume: Continue an interrupted run.
        progress: Progress bars and per-epoch lines.
        stop_after: Stop after this many batches (tests of interruption).
        label: Prefix of the progress lines.
        bar: Per-batch progress bar (with ``progress``).
        performance: Speed options (recorded in run.json; not part of the run's config).

    Returns:
        The per-epoch history.
    """
    out = Path(out)
    performance = performance or Performance()
    check_batch(config.batch_size, dist_info())  # under torchrun: refused before anything is written
    store = Store(config.store)
    task = build_task(config, store)
    write_run_config(out, config, resume)
    write_run_info(
        out,
        "pretrain",
        store,
        config.seed,
        task=config.task,
        mirror=config.mirror,
        sections={"train": len(task.train_sampler.units), "val": len(task.val_sampler.units)},
        validation=task.val_source,
        val_cases=sorted({case for case, _ in task.val_sampler.units}),
        preprocess=store.settings.model_dump(mode="json"),
        labels_read=task.labels_read,
        encoder_tensors=len(task.model.encoder.state_dict()),
        performance=performance.model_dump(),
    )
    settings = LoopSettings(
        epochs=config.epochs,
        lr=config.lr,
        monitor=task.monitor,
        seed=config.seed,
        device=config.device,
        performance=performance,
    )
    history = fit(
        task, out, settings, resume=resume, progress=progress, stop_after=stop_after, label=label, bar=bar
    )
    if history and stop_after is None and is_main_process():
        title = f"{TITLES[config.task]} pretraining, {config.sections} {config.dims}D"
        title += f" {config.loss}" if config.task == "side-pair" else ""
        title += ", mirrored" if config.mirror else ""
        plot_history(history, task.curves, out / "learning_curves.png", f"{title}, data: {store.describe()}")
    return history

"""The training loop shared by ``pretrain`` and ``train``.

A task supplies the model, its batches, a training step and a validation; the loop owns the rest:
device, speed options (bf16 autocast, compile, layout; see ``performance``), DDP under torchrun (see
``distributed``), the optimiser and its schedule (``optim``), ``checkpoint_last.pt`` and
``checkpoint_best.pt`` after every epoch, ``--resume``, the per-epoch metrics log, TensorBoard and a
progress bar. Randomness is re-seeded from ``(seed, epoch)`` at each epoch, so a resumed run ends
where an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from sidepair.config import Performance
from sidepair.devices import resolve_device
from sidepair.errors import SidepairError
from sidepair.evaluation.statistics import smoothed
from sidepair.models.checkpoint import BEST, LAST, PREV, Checkpoint, load_resume_checkpoint, save_checkpoint
from sidepair.training import distributed as dd
from sidepair.training.optim import OptimSettings, build_optimizer, build_scheduler
from sidepair.training.performance import StepModule, apply_backend_flags, autocast
from sidepair.training.runlog import RunLogger, write_history
from sidepair.version import __version__


class Task(Protocol):
    """What the loop needs from pretraining or segmentation.

    A task may also have ``on_epoch_start(epoch)`` (e.g. to release a frozen encoder) and
    ``should_stop(history) -> bool`` (a plateau ends the run before its last epoch).
    """

    kind: str
    model: nn.Module
    checkpoint_type: type[Checkpoint]

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """Batches of one epoch (deterministic for the epoch)."""

    def train_step(self, batch: Any, device: torch.device) -> torch.Tensor:
        """Loss of one batch (inside autocast)."""

    def validate(self, device: torch.device) -> dict[str, float]:
        """Validation metrics of the current model."""

    def checkpoint_fields(self) -> dict[str, Any]:
        """The task's own checkpoint fields (config, encoder description, store settings ...)."""


@dataclass
class LoopSettings:
    """Optimisation and bookkeeping settings of one run.

    Attributes:
        epochs: Number of epochs.
        lr: Initial (peak) learning rate; ``optim`` overrides it when given.
        weight_decay: Weight decay; ``optim`` overrides it when given.
        monitor: Validation metric choosing the best checkpoint and driving a plateau schedule.
        smoothing: With > 0, the monitor is read through an exponential moving average of its per-epoch
            values (logged as ``<monitor>_ema``), as nnU-Net reads its pseudo-Dice: one lucky epoch of a
            noisy validation does not choose the checkpoint.
        optim: Optimiser and schedule; None gives Adam at ``lr`` with ReduceLROnPlateau.
        steps_per_epoch: Optimiser steps of one epoch (the budget of a step-wise schedule is
            ``epochs * steps_per_epoch``).
        seed: Run seed.
        device: ``auto``, ``cpu`` or ``cuda``.
        performance: Speed options (autocast, memory layout, compile, cuDNN benchmark).
    """

    epochs: int
    lr: float
    weight_decay: float = 0.0
    monitor: str = "val_acc"
    smoothing: float = 0.0
    optim: OptimSettings | None = None
    steps_per_epoch: int = 1
    seed: int = 0
    device: str = "auto"
    performance: Performance = field(default_factory=Performance)

    def optim_settings(self) -> OptimSettings:
        """The optimiser and schedule this run uses."""
        return self.optim or OptimSettings(lr=self.lr, weight_decay=self.weight_decay)

    @property
    def selected(self) -> str:
        """The metric that chooses the best checkpoint: the monitor, or its moving average."""
        return f"{self.monitor}_ema" if self.smoothing > 0 else self.monitor


def fit(
    task: Task,
    run_dir: Path,
    settings: LoopSettings,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    label: str = "",
    bar: bool = True,
) -> list[dict[str, Any]]:
    """Train ``task`` for ``settings.epochs`` epochs, or continue a run with ``resume``.

    Args:
        task: The task.
        run_dir: Run folder (checkpoints, metrics.jsonl, tensorboard/).
        settings: Loop settings.
        resume: Continue from ``checkpoint_last.pt`` (a bad one falls back to the previous, then the
            best, with a warning).
        progress: Show a progress bar on a terminal.
        stop_after: Stop after this many batches of the first epoch run (for tests of interruption).
        label: Prefix of the progress lines (which run this is, when several run at once).
        bar: With ``progress``, also a per-batch bar (off where several processes share a terminal).

    Returns:
        The history: one dict per epoch.

    Raises:
        SidepairError: If the run folder already holds checkpoints and ``resume`` is not set.
    """
    device = resolve_device(settings.device)
    info = dd.setup(device)
    device = dd.rank_device(device, info)
    progress = progress and info.main
    model = task.model.to(device)
    optim = settings.optim_settings()
    optimizer = build_optimizer(model.parameters(), optim)
    scheduler = build_scheduler(optimizer, optim, settings.epochs * settings.steps_per_epoch)
    history: list[dict[str, Any]] = []
    best, start = -math.inf, 0
    state = load_resume_checkpoint(run_dir) if resume else None
    if state is None and any((run_dir / name).exists() for name in (LAST, PREV, BEST)):
        raise SidepairError(
            f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out"
        )
    if state is not None:
        if state.kind != task.kind:
            raise SidepairError(f"{run_dir}: holds a {state.kind} run, not a {task.kind} run")
        model.load_state_dict(state.network_weights)
        optimizer.load_state_dict(state.optimizer_state)
        scheduler.load_state_dict(state.scheduler_state)
        history, best, start = list(state.history), float(state.best_metric), int(state.epoch)
        if info.main:
            # The log may be an epoch ahead of the checkpoint (killed between the two writes): it
            # follows the checkpoint, whose epochs are the ones that count.
            write_history(run_dir, history)
        if state.stopped:  # it ended on a plateau: finished
            return history
    dd.barrier(info)  # every rank has checked the folder before rank 0 writes into it
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(run_dir, start) if info.main else None
    perf = settings.performance
    apply_backend_flags(perf, device)
    steps = StepModule(model, perf, device, distributed=info.enabled)
    try:
        for epoch in range(start, settings.epochs):
            torch.manual_seed(settings.seed * 100_003 + epoch)
            if hasattr(task, "on_epoch_start"):
                task.on_epoch_start(epoch)
            model.train()
            t0 = time.perf_counter()
            losses = []
            batches = task.train_batches(epoch)
            if info.enabled:
                batches = dd.shard_loader(batches, info)
            task.model = steps.get()
            bar = tqdm(
                batches,
                desc=f"{label}{task.kind} epoch {epoch + 1}/{settings.epochs}",
                unit="batch",
                leave=False,
                disable=None if progress and bar else True,
            )
            for i, batch in enumerate(bar):
                optimizer.zero_grad(set_to_none=True)
                with autocast(perf, device):
                    loss = task.train_step(batch, device)
                loss.backward()
                optimizer.step()
                if optim.per_step:
                    scheduler.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if stop_after is not None and i + 1 >= stop_after:
                    return history
            task.model = model
            model.eval()
            # Every rank validates its share (the task gathers the per-case results); rank 0's numbers
            # go to all, so that rounding can never make the ranks' schedules differ.
            with torch.no_grad(), autocast(perf, device):
                metrics = {f"val_{k}": float(v) for k, v in task.validate(device).items()}
            metrics = dd.broadcast_metrics(metrics if info.main else None, info)
            if settings.monitor not in metrics:
                raise SidepairError(f"validation gave no {settings.monitor!r}; it gave {sorted(metrics)}")
            if settings.smoothing > 0:
                curve = [float(h[settings.monitor]) for h in history] + [float(metrics[settings.monitor])]
                metrics[settings.selected] = smoothed(curve, settings.smoothing)[-1]
            value = float(metrics[settings.selected])
            if not optim.per_step:
                scheduler.step(value if math.isfinite(value) else -math.inf)
            row = {
                "epoch": epoch + 1,
                "train_loss": dd.mean_over_ranks(losses, info),
                "lr": optimizer.param_groups[0]["lr"],
                "time_s": time.perf_counter() - t0,
                **metrics,
            }
            history.append(row)
            improved = math.isfinite(value) and value > best
            best = value if improved else best
            # Decided on every rank from the same (broadcast) history, so all ranks stop together.
            stop = hasattr(task, "should_stop") and task.should_stop(history) and epoch + 1 < settings.epochs
            if info.main:
                checkpoint = task.checkpoint_type(
                    network_weights=model.state_dict(),
                    optimizer_state=optimizer.state_dict(),
                    scheduler_state=scheduler.state_dict(),
                    epoch=epoch + 1,
                    best_metric=best,
                    monitor=settings.selected,
                    history=history,
                    seed=settings.seed,
                    sidepair_version=__version__,
                    stopped=stop,
                    **task.checkpoint_fields(),
                )
                # The log and the best checkpoint before the last one: a kill between these writes then
                # repeats this epoch on resume. The other order could leave a finished last checkpoint
                # whose best checkpoint or log row was never written, and nothing would write them.
                logger.log(history)
                if improved:
                    save_checkpoint(dataclasses.replace(checkpoint, best_epoch=epoch + 1), run_dir / BEST)
                save_checkpoint(checkpoint, run_dir / LAST, keep_previous=True)
                if progress:
                    shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
                    tqdm.write(
                        f"{label}{task.kind} epoch {epoch + 1}/{settings.epochs}: "
                        f"loss {row['train_loss']:.4f}, {shown}" + (" (plateau: stopped)" if stop else "")
                    )
            if stop:
                break
    finally:
        task.model = model
        if logger is not None:
            logger.close()
    # Not in ``finally``: after an error on one rank a collective call would wait forever for the
    # others; torchrun ends them when this process exits.
    # The DDP wrapper goes first, while the process group is still registered: its reducer then lets go
    # of the group without destroying it. Destroyed from the reducer's finaliser instead, the gloo group
    # joins its threads with the GIL held while one of them waits for the GIL to free a finished
    # barrier's tensor: a hang at exit, seen once in two suite runs (pytorch/pytorch#56297).
    del steps
    if info.enabled:
        gc.collect()  # DDP's hooks hold the wrapper in reference cycles
    dd.barrier(info)
    dd.cleanup(info)
    return history

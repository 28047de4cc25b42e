"""The training loop shared by ``pretrain`` and ``train``.

A task (``task.Task``) supplies the model, its batches, a training step and a validation; the loop owns
the rest:
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from sidepair.config import OptimiserSettings, Performance
from sidepair.devices import resolve_device
from sidepair.errors import SidepairError
from sidepair.evaluation.statistics import smoothed
from sidepair.models.checkpoint import BEST, LAST, PREV, load_resume_checkpoint, save_checkpoint
from sidepair.training import distributed as dd
from sidepair.training.optim import build_optimizer, build_scheduler
from sidepair.training.performance import StepModule, apply_backend_flags, autocast
from sidepair.training.runlog import RunLogger, write_history
from sidepair.training.task import Task
from sidepair.version import __version__


@dataclass
class LoopSettings:
    """Optimisation and bookkeeping settings of one run.

    Attributes:
        epochs: Number of epochs.
        optim: Optimiser and schedule.
        monitor: Validation metric choosing the best checkpoint and driving a plateau schedule.
        smoothing: With > 0, the monitor is read through an exponential moving average of its per-epoch
            values (logged as ``<monitor>_ema``), as nnU-Net reads its pseudo-Dice: one lucky epoch of a
            noisy validation does not choose the checkpoint.
        steps_per_epoch: Optimiser steps of one epoch (the budget of a step-wise schedule is
            ``epochs * steps_per_epoch``).
        seed: Run seed.
        device: ``auto``, ``cpu`` or ``cuda``.
        performance: Speed options (autocast, memory layout, compile, cuDNN benchmark).
    """

    epochs: int
    optim: OptimiserSettings = field(default_factory=OptimiserSettings)
    monitor: str = "val_acc"
    smoothing: float = 0.0
    steps_per_epoch: int = 1
    seed: int = 0
    device: str = "auto"
    performance: Performance = field(default_factory=Performance)

    @property
    def selected(self) -> str:
        """The metric that chooses the best checkpoint: the monitor, or its moving average."""
        return f"{self.monitor}_ema" if self.smoothing > 0 else self.monitor


class _Training:
    """One run's optimisation state on its device: model, optimiser, schedule, history, best metric."""

    def __init__(self, task: Task, run_dir: Path, settings: LoopSettings, device: torch.device, info: Any):
        self.task, self.run_dir, self.settings, self.device, self.info = task, run_dir, settings, device, info
        self.model = task.model.to(device)
        self.optimizer = build_optimizer(self.model.parameters(), settings.optim)
        self.scheduler = build_scheduler(
            self.optimizer, settings.optim, settings.epochs * settings.steps_per_epoch
        )
        self.history: list[dict[str, Any]] = []
        self.best, self.start = -math.inf, 0
        self.improved = False  # whether the last recorded epoch raised the best metric
        self.steps: StepModule | None = None

    def restore(self, resume: bool) -> bool:
        """Load the last checkpoint with ``resume``; True when that run had already ended on a plateau.

        Raises:
            SidepairError: The folder holds a run and ``resume`` is not set, or a run of another kind.
        """
        run_dir, task = self.run_dir, self.task
        state = load_resume_checkpoint(run_dir) if resume else None
        if state is None and any((run_dir / name).exists() for name in (LAST, PREV, BEST)):
            raise SidepairError(
                f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out"
            )
        if state is None:
            return False
        if state.kind != task.kind:
            raise SidepairError(f"{run_dir}: holds a {state.kind} run, not a {task.kind} run")
        self.model.load_state_dict(state.network_weights)
        self.optimizer.load_state_dict(state.optimizer_state)
        self.scheduler.load_state_dict(state.scheduler_state)
        self.history, self.best, self.start = list(state.history), float(state.best_metric), int(state.epoch)
        if self.info.main:
            # The log may be an epoch ahead of the checkpoint (killed between the two writes): it follows
            # the checkpoint, whose epochs are the ones that count.
            write_history(run_dir, self.history)
        return bool(state.stopped)

    def train_epoch(
        self, epoch: int, net: nn.Module, bar: tqdm, stop_after: int | None
    ) -> list[float] | None:
        """One epoch's optimiser steps; the batch losses, or None when ``stop_after`` interrupted it."""
        losses = []
        for i, batch in enumerate(bar):
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.settings.performance, self.device):
                loss = self.task.train_step(net, batch, self.device)
            loss.backward()
            self.optimizer.step()
            if self.settings.optim.per_step:
                self.scheduler.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if stop_after is not None and i + 1 >= stop_after:
                return None
        return losses

    def validate(self) -> dict[str, float]:
        """The validation metrics (``val_*``), the same on every rank, with the monitor's moving average."""
        settings = self.settings
        self.model.eval()
        # Every rank validates its share (the task gathers the per-case results); rank 0's numbers go to
        # all, so that rounding can never make the ranks' schedules differ.
        with torch.no_grad(), autocast(settings.performance, self.device):
            metrics = {f"val_{k}": float(v) for k, v in self.task.validate(self.device).items()}
        metrics = dd.broadcast_metrics(metrics if self.info.main else None, self.info)
        if settings.monitor not in metrics:
            raise SidepairError(f"validation gave no {settings.monitor!r}; it gave {sorted(metrics)}")
        if settings.smoothing > 0:
            curve = [float(h[settings.monitor]) for h in self.history] + [float(metrics[settings.monitor])]
            metrics[settings.selected] = smoothed(curve, settings.smoothing)[-1]
        return metrics

    def record(self, epoch: int, losses: list[float], metrics: dict[str, float], seconds: float) -> bool:
        """Add the epoch to the history, step a plateau schedule; True when the task stops here."""
        value = float(metrics[self.settings.selected])
        if not self.settings.optim.per_step:
            self.scheduler.step(value if math.isfinite(value) else -math.inf)
        self.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": dd.mean_over_ranks(losses, self.info),
                "lr": self.optimizer.param_groups[0]["lr"],
                "time_s": seconds,
                **metrics,
            }
        )
        self.improved = math.isfinite(value) and value > self.best
        self.best = value if self.improved else self.best
        # Decided on every rank from the same (broadcast) history, so all ranks stop together.
        return self.task.should_stop(self.history) and epoch + 1 < self.settings.epochs

    def save(self, epoch: int, stop: bool, logger: RunLogger) -> None:
        """The log row, the best checkpoint (if it improved) and the last checkpoint, in that order."""
        settings = self.settings
        checkpoint = self.task.checkpoint_type(
            network_weights=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(),
            scheduler_state=self.scheduler.state_dict(),
            epoch=epoch + 1,
            best_metric=self.best,
            monitor=settings.selected,
            history=self.history,
            seed=settings.seed,
            sidepair_version=__version__,
            stopped=stop,
            **self.task.checkpoint_fields(),
        )
        # The log and the best checkpoint before the last one: a kill between these writes then repeats
        # this epoch on resume. The other order could leave a finished last checkpoint whose best
        # checkpoint or log row was never written, and nothing would write them.
        logger.log(self.history)
        if self.improved:
            save_checkpoint(dataclasses.replace(checkpoint, best_epoch=epoch + 1), self.run_dir / BEST)
        save_checkpoint(checkpoint, self.run_dir / LAST, keep_previous=True)

    def release(self) -> None:
        """Drop the step module and leave the process group, after the last epoch on every rank.

        Not in a ``finally``: after an error on one rank a collective call would wait forever for the
        others; torchrun ends them when this process exits. The DDP wrapper goes first, while the process
        group is still registered: its reducer then lets go of the group without destroying it. Destroyed
        from the reducer's finaliser instead, the gloo group joins its threads with the GIL held while one
        of them waits for the GIL to free a finished barrier's tensor: a hang at exit, seen once in two
        suite runs (pytorch/pytorch#56297).
        """
        self.steps = None
        if self.info.enabled:
            gc.collect()  # DDP's hooks hold the wrapper in reference cycles
        dd.barrier(self.info)
        dd.cleanup(self.info)


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
    run = _Training(task, run_dir, settings, device, info)
    if run.restore(resume):  # it ended on a plateau: finished
        return run.history
    dd.barrier(info)  # every rank has checked the folder before rank 0 writes into it
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(run_dir, run.start) if info.main else None
    apply_backend_flags(settings.performance, device)
    run.steps = StepModule(run.model, settings.performance, device, distributed=info.enabled)
    try:
        for epoch in range(run.start, settings.epochs):
            torch.manual_seed(settings.seed * 100_003 + epoch)
            task.on_epoch_start(epoch)
            run.model.train()
            t0 = time.perf_counter()
            batches = task.train_batches(epoch)
            if info.enabled:
                batches = dd.shard_loader(batches, info)
            where = f"{label}{task.kind} epoch {epoch + 1}/{settings.epochs}"
            shown = None if progress and bar else True
            batch_bar = tqdm(batches, desc=where, unit="batch", leave=False, disable=shown)
            losses = run.train_epoch(epoch, run.steps.get(), batch_bar, stop_after)
            if losses is None:
                return run.history
            stop = run.record(epoch, losses, run.validate(), time.perf_counter() - t0)
            if logger is not None:
                run.save(epoch, stop, logger)
                if progress:
                    row = run.history[-1]
                    scores = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
                    plateau = " (plateau: stopped)" if stop else ""
                    tqdm.write(f"{where}: loss {row['train_loss']:.4f}, {scores}{plateau}")
            if stop:
                break
    finally:
        if logger is not None:
            logger.close()
    run.release()
    return run.history

"""Per-epoch metrics: a JSONL file (one row per epoch) and TensorBoard events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sidepair.atomic import dumps, write_text


class RunLogger:
    """Per-epoch log: ``metrics.jsonl`` and TensorBoard scalars under ``tensorboard/``.

    The JSONL file is rewritten whole from the history, so a resumed run has one row per epoch.

    Args:
        run_dir: The run folder.
        start_epoch: Epochs the checkpoint resumed from holds (0 for a new run); TensorBoard events a
            killed run wrote after them (steps above ``start_epoch``; epoch ``n`` is step ``n``) are
            purged, also those of a first epoch logged before its checkpoint was written.
    """

    def __init__(self, run_dir: Path, start_epoch: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow to import; only a writing rank needs it

        self.run_dir = run_dir
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)

    def log(self, history: list[dict[str, Any]]) -> None:
        """Record the newest row of ``history`` and rewrite the JSONL file."""
        row = history[-1]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key.replace("_", "/", 1), value, row["epoch"])
        self.writer.flush()
        write_history(self.run_dir, history)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        self.writer.close()


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Write ``metrics.jsonl`` whole (atomically): one row per epoch of ``history``."""
    write_text(run_dir / "metrics.jsonl", "".join(dumps(r) + "\n" for r in history))

"""Checkpoints: dictionaries of tensors and plain data (nnU-Net v2 style), written atomically.

They load with ``torch.load(weights_only=True)``: nothing in them is a pickled object.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from sidepair.atomic import atomic_path
from sidepair.errors import SidepairError

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` via a temporary file, fsynced, then renamed."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises:
        SidepairError: If the file is missing, truncated or not a sidepair checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise SidepairError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise SidepairError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    if not isinstance(payload, dict) or "network_weights" not in payload or "kind" not in payload:
        raise SidepairError(f"{path}: not a sidepair checkpoint")
    return payload


def load_resume_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint to resume from: the last one, or the best one (with a warning) if the last is bad."""
    last, best = run_dir / LAST, run_dir / BEST
    if not last.exists() and not best.exists():
        return None
    try:
        return load_checkpoint(last)
    except SidepairError as exc:
        if not best.exists():
            raise
        warnings.warn(f"{exc}; resuming from {best.name}", stacklevel=2)
        return load_checkpoint(best)

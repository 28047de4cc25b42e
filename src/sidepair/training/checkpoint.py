"""Checkpoints: dictionaries of tensors and plain data (nnU-Net v2 style), written atomically.

They load with ``torch.load(weights_only=True)``: nothing in them is a pickled object. Each file
carries the SHA-256 of its records in the zip comment, so a corrupted checkpoint (a flipped bit in a
tensor, which ``torch.load`` would not notice) is refused, never loaded. The last checkpoint's
predecessor is kept as ``checkpoint_prev.pt``: a resume falls back to it, then to the best one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from sidepair.atomic import atomic_path
from sidepair.errors import SidepairError

LAST, BEST, PREV = "checkpoint_last.pt", "checkpoint_best.pt", "checkpoint_prev.pt"
_TAG = b"sidepair-sha256:"


def _records_digest(path: Path) -> tuple[str, bytes]:
    """SHA-256 of the zip's records (everything before the central directory) and the zip comment."""
    with zipfile.ZipFile(path) as archive:
        start, comment = archive.start_dir, archive.comment
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        remaining = start
        while remaining:
            chunk = handle.read(min(remaining, 1 << 22))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest(), comment


def save_checkpoint(payload: dict[str, Any], path: str | Path, keep_previous: bool = False) -> None:
    """Write ``payload`` to ``path`` with its digest, via a temporary file, fsynced, then renamed.

    Args:
        payload: Tensors and plain data.
        path: Target file.
        keep_previous: First move an existing ``path`` to ``checkpoint_prev.pt`` beside it.
    """
    path = Path(path)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
        digest, _ = _records_digest(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.comment = _TAG + digest.encode()
        if keep_previous and path.exists():
            os.replace(path, path.with_name(PREV))


def verify_checkpoint(path: str | Path) -> None:
    """Refuse a checkpoint whose records do not match the digest it carries.

    Raises:
        SidepairError: Truncated, not a zip, or corrupted (naming the file).
    """
    path = Path(path)
    try:
        digest, comment = _records_digest(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SidepairError(f"{path}: truncated or unreadable checkpoint ({type(exc).__name__})") from None
    if comment.startswith(_TAG) and comment[len(_TAG) :].decode(errors="replace") != digest:
        raise SidepairError(
            f"{path}: corrupted checkpoint (its SHA-256 does not match the one it was saved with)"
        )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify and load a checkpoint with ``weights_only=True``.

    Raises:
        SidepairError: If the file is missing, truncated, corrupted or not a sidepair checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise SidepairError(f"{path}: checkpoint not found")
    verify_checkpoint(path)
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
    """The checkpoint to resume from: the last one; if it is bad, the previous one, then the best one.

    A fallback is announced with a warning naming the bad file. None when the folder holds none.
    """
    candidates = [run_dir / name for name in (LAST, PREV, BEST)]
    present = [p for p in candidates if p.exists()]
    if not present:
        return None
    problems = []
    for path in present:
        try:
            payload = load_checkpoint(path)
        except SidepairError as exc:
            problems.append(str(exc))
            continue
        if problems:
            warnings.warn(f"{'; '.join(problems)}; resuming from {path.name}", stacklevel=2)
        return payload
    raise SidepairError("; ".join(problems) + "; no usable checkpoint to resume from")

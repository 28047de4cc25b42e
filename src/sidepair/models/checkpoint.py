"""Checkpoints: a model on disk, as a dictionary of tensors and plain data (nnU-Net v2 style).

:class:`Checkpoint` and its two kinds (:class:`PretrainCheckpoint`, :class:`SegmentationCheckpoint`)
are the typed view every reader uses; :func:`read_checkpoint` checks a file's fields and names what is
missing. Files are written atomically and load with ``torch.load(weights_only=True)``: nothing in
them is a pickled object. Each file
carries the SHA-256 of its records in the zip comment, so a corrupted checkpoint (a flipped bit in a
tensor, which ``torch.load`` would not notice) is refused, never loaded. The last checkpoint's
predecessor is kept as ``checkpoint_prev.pt``: a resume falls back to it, then to the best one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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


@dataclass
class Checkpoint:
    """What every checkpoint holds.

    Attributes:
        kind: ``pretrain`` or ``segmentation``.
        network_weights: The whole network's state dict.
        epoch: Epochs done.
        best_metric: Best value of ``monitor`` so far.
        monitor: Validation metric that chose the best checkpoint.
        history: One dict per epoch (the metrics log).
        seed: Run seed.
        sidepair_version: Version that wrote it.
        config: The run's resolved config, as plain data.
        encoder_config: Arguments that rebuild the encoder.
        store_fingerprint: Fingerprint of the store it was trained on.
        preprocess: That store's preprocessing settings, as plain data (None in checkpoints written
            before it was recorded).
        optimizer_state: Adam's state (for a resume).
        scheduler_state: The LR schedule's state.
        best_epoch: The epoch of the best checkpoint (set in ``checkpoint_best.pt``).
        stopped: Whether the run stopped before its last epoch (a plateau); it is then finished.
    """

    kind: ClassVar[str] = ""
    network_weights: dict[str, torch.Tensor]
    epoch: int
    best_metric: float
    monitor: str
    history: list[dict[str, Any]]
    seed: int
    sidepair_version: str
    config: dict[str, Any]
    encoder_config: dict[str, Any]
    store_fingerprint: str
    preprocess: dict[str, Any] | None = None
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    best_epoch: int | None = None
    stopped: bool = False

    def payload(self) -> dict[str, Any]:
        """The plain dictionary written to disk (no copy of the tensors)."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def encoder_weights(self) -> dict[str, torch.Tensor]:
        """The encoder tensors, with the ``encoder.`` prefix removed."""
        return {k[len("encoder.") :]: v for k, v in self.network_weights.items() if k.startswith("encoder.")}


@dataclass
class PretrainCheckpoint(Checkpoint):
    """A pretraining run's checkpoint: the siamese network, whose ``encoder.*`` the U-Net loads.

    Attributes:
        labels_read: The case ids whose labels the pretraining read, as ``train`` (masks that cut its
            training sections) and ``selection`` (masks of its validation sections); empty for sections
            cut without labels. None in checkpoints written before it was recorded.
    """

    kind: ClassVar[str] = "pretrain"
    labels_read: dict[str, list[str]] | None = None


@dataclass
class SegmentationCheckpoint(Checkpoint):
    """A segmentation run's checkpoint: everything prediction needs besides the scan.

    Attributes:
        out_channels: Output classes, background included.
        labels: ``kidney``, ``kidney+tumour`` or ``sides``.
        train_cases: The labelled cases it trained on.
        transferred: How many encoder tensors came from a pretraining run.
    """

    kind: ClassVar[str] = "segmentation"
    out_channels: int = 2
    labels: str = "kidney"
    train_cases: list[str] = field(default_factory=list)
    transferred: str | None = None

    @property
    def dims(self) -> int:
        """2 or 3."""
        return int(self.config["dims"])

    @property
    def patch_size(self) -> tuple[int, ...]:
        """The training patch (the sliding window of 3D inference)."""
        return tuple(int(v) for v in self.config["patch_size"])

    @property
    def batch_size(self) -> int:
        """The training batch size (slices or windows per inference pass)."""
        return int(self.config["batch_size"])


KINDS: dict[str, type[Checkpoint]] = {c.kind: c for c in (PretrainCheckpoint, SegmentationCheckpoint)}
C = TypeVar("C", bound=Checkpoint)


def checkpoint_from(payload: Mapping[str, Any], path: str | Path) -> Checkpoint:
    """The typed checkpoint of a loaded payload.

    Raises:
        SidepairError: An unknown kind, or a field missing (a checkpoint from an incompatible version).
    """
    kind = str(payload.get("kind"))
    if kind not in KINDS:
        raise SidepairError(f"{path}: not a sidepair checkpoint (kind {kind!r})")
    cls = KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in payload]
    if missing:
        verb = "pretrain" if kind == "pretrain" else "train"
        raise SidepairError(
            f"{path}: a {kind} checkpoint without {missing[0]!r} (written by an incompatible sidepair); "
            f"rerun `sidepair {verb}`"
        )
    return cls(**{k: v for k, v in payload.items() if k in names})


def read_checkpoint(
    path: str | Path,
    kind: type[C] = Checkpoint,  # type: ignore[assignment]
    map_location: str | torch.device = "cpu",
) -> C:
    """Verify, load and type a checkpoint; with ``kind``, refuse a checkpoint of another kind.

    Raises:
        SidepairError: Missing, damaged, of another kind, or lacking a field (naming the file).
    """
    checkpoint = checkpoint_from(load_checkpoint(path, map_location), path)
    if kind is not Checkpoint and not isinstance(checkpoint, kind):
        wanted = "a segmentation model" if kind is SegmentationCheckpoint else "a pretraining run"
        raise SidepairError(f"{path}: a {checkpoint.kind} checkpoint, not {wanted}")
    return checkpoint  # type: ignore[return-value]


def save_checkpoint(
    checkpoint: Checkpoint | Mapping[str, Any], path: str | Path, keep_previous: bool = False
) -> None:
    """Write a checkpoint to ``path`` with its digest, via a temporary file, fsynced, then renamed.

    Args:
        checkpoint: The checkpoint (or its plain payload).
        path: Target file.
        keep_previous: First move an existing ``path`` to ``checkpoint_prev.pt`` beside it.
    """
    payload = checkpoint.payload() if isinstance(checkpoint, Checkpoint) else dict(checkpoint)
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
    """Verify and load a checkpoint file's plain payload with ``weights_only=True``.

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


def load_resume_checkpoint(run_dir: Path) -> Checkpoint | None:
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
            checkpoint = read_checkpoint(path)
        except SidepairError as exc:
            problems.append(str(exc))
            continue
        if problems:
            warnings.warn(f"{'; '.join(problems)}; resuming from {path.name}", stacklevel=2)
        return checkpoint
    raise SidepairError("; ".join(problems) + "; no usable checkpoint to resume from")

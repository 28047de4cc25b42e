"""Writes that never leave a half-written file or folder behind.

Everything that lasts is written under a temporary name in the same folder, flushed, then renamed
into place; a rename within one file system is atomic.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sidepair.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)

# Errors of the output location rather than of the program: said as such, naming the path.
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def output_error(exc: OSError, target: str | Path) -> Exception:
    """An :class:`OutputError` for ``exc`` if it is a write-location problem, else ``exc`` itself."""
    if exc.errno in WRITE_ERRNOS:
        return OutputError(f"{target}: cannot write ({exc.strerror or os.strerror(exc.errno or 0)})")
    return exc


@contextlib.contextmanager
def _writes_to(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise output_error(exc, target) from None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target`` and rename it onto ``target`` on success.

    Args:
        target: The final file path.
        suffix: Suffix for the temporary name, for writers that infer the format from it
            (e.g. ``.nii.gz``).

    Yields:
        A path to write to. On an exception it is removed and ``target`` is untouched.
    """
    target = Path(target)
    with _writes_to(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
        os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a finished file gets the usual permissions
    try:
        with _writes_to(target):
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target`` and rename it onto ``target`` on success.

    An existing ``target`` is replaced only once the new folder is complete.

    Args:
        target: The final folder path.

    Yields:
        A fresh empty folder. On an exception it is removed and ``target`` is untouched.
    """
    target = Path(target)
    with _writes_to(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp  # the body's own errors pass unchanged: it may read inputs as well as write here
        with _writes_to(target):
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def strict(payload: Any) -> Any:
    """``payload`` with every NaN or infinite float replaced by None: strict JSON has no NaN token."""
    if isinstance(payload, float):
        return payload if math.isfinite(payload) else None
    if isinstance(payload, dict):
        return {k: strict(v) for k, v in payload.items()}
    if isinstance(payload, list | tuple):
        return [strict(v) for v in payload]
    return payload


def dumps(payload: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``payload`` (NaN and infinities become ``null``)."""
    return json.dumps(strict(payload), indent=indent, allow_nan=False)


def number(value: Any) -> float:
    """A JSON number back as a float: ``null`` (a NaN when written) becomes NaN."""
    return math.nan if value is None else float(value)


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented strict JSON (NaN as ``null``), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(payload, indent=2) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

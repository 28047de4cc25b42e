"""Where a run computes: ``auto`` picks CUDA when present."""

from __future__ import annotations

import torch

from sidepair.errors import SidepairError


def resolve_device(name: str) -> torch.device:
    """The device named ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        SidepairError: CUDA asked for where there is none, or a CUDA device this machine lacks.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SidepairError(f"--device {name} asked for, but no CUDA device is available")
    device = torch.device(name)
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise SidepairError(f"--device {name}: no such device ({count} CUDA devices here)")
    return device

"""Where a run computes: ``auto`` picks CUDA when present."""

from __future__ import annotations

import torch

from sidepair.errors import SidepairError


def resolve_device(name: str) -> torch.device:
    """The device named ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        SidepairError: CUDA asked for where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SidepairError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)

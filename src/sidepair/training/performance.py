"""The speed options of :class:`~sidepair.config.Performance` applied to a step: autocast, layout, compile."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sidepair.config import Performance
from sidepair.training.distributed import wrap


def autocast_dtype(performance: Performance, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``performance`` on ``device``, or ``None`` for fp32."""
    if performance.precision == "bf16" or (performance.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(performance: Performance, device: torch.device) -> torch.autocast:
    """The autocast context for a step on ``device`` (disabled for fp32)."""
    dtype = autocast_dtype(performance, device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def apply_backend_flags(performance: Performance, device: torch.device) -> None:
    """Set the cuDNN benchmark flag (CUDA only)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = performance.cudnn_benchmark


def memory_format(model: nn.Module) -> torch.memory_format:
    """channels_last for a 2D network, channels_last_3d for a 3D one (from its first convolution)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return torch.channels_last
        if isinstance(m, nn.Conv3d):
            return torch.channels_last_3d
    return torch.contiguous_format


class InputLayout(nn.Module):
    """Calls the network with its image inputs in ``fmt`` (other arguments pass as they are)."""

    def __init__(self, module: nn.Module, fmt: torch.memory_format) -> None:
        super().__init__()
        self.module = module
        self.fmt = fmt
        self.ndim = 4 if fmt == torch.channels_last else 5

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The network's output, its image inputs converted first."""
        args = tuple(
            a.contiguous(memory_format=self.fmt) if torch.is_tensor(a) and a.dim() == self.ndim else a
            for a in args
        )
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


class StepModule:
    """The module training steps call: the network, laid out, DDP-wrapped and compiled as asked.

    DDP must be rebuilt when the set of trainable parameters changes (an encoder frozen, then
    released); the compiled module is kept otherwise, so compilation happens once per such set.
    """

    def __init__(
        self, model: nn.Module, performance: Performance, device: torch.device, distributed: bool
    ) -> None:
        self.model = model
        self.performance = performance
        self.device = device
        self.distributed = distributed
        self._key: tuple[bool, ...] | None = None
        self._module: nn.Module = model
        self._base: nn.Module = model
        if performance.channels_last:
            fmt = memory_format(model)
            model.to(memory_format=fmt)
            self._base = InputLayout(model, fmt)

    def get(self) -> nn.Module:
        """The step module for the current trainable parameters."""
        key = tuple(p.requires_grad for p in self.model.parameters())
        if key != self._key:
            module = self._base
            if self.distributed:
                module = wrap(module, self.device)
            if self.performance.compile:
                module = torch.compile(module)
            self._key, self._module = key, module
        return self._module

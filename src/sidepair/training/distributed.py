"""Several processes with PyTorch DDP, as started by ``torchrun --nproc_per_node N -m sidepair ...``.

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; with ``WORLD_SIZE > 1`` the training loop
joins a process group (NCCL on GPUs, gloo on CPUs), wraps the network in DistributedDataParallel and
gives each rank its own slice of every global batch. Only rank 0 writes run folders, checkpoints and
logs; losses are averaged over ranks; each rank validates its share of the validation cases or pairs, the
per-case results are gathered and every rank computes the metrics from all of them (rank 0's are then
broadcast, so every rank's learning-rate schedule and best-checkpoint decision are the same).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather
from torch.utils.data import DataLoader, Sampler

from sidepair.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes, and its device index."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether several processes train together."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0


def dist_info() -> DistInfo:
    """The process's place from torchrun's environment (a single process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def is_main_process() -> bool:
    """True in a single process and on rank 0."""
    return dist_info().main


def setup(device: torch.device) -> DistInfo:
    """Join the process group when started by torchrun with several processes.

    Returns:
        This process's :class:`DistInfo`.
    """
    info = dist_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def rank_device(device: torch.device, info: DistInfo) -> torch.device:
    """One GPU per rank (``cuda:LOCAL_RANK``); CPU stays CPU."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def check_batch(batch_size: int, info: DistInfo) -> int:
    """The per-rank batch size for a global ``batch_size``.

    Raises:
        ConfigError: If the global batch does not split evenly over the ranks.
    """
    if batch_size % info.world:
        raise ConfigError(
            f"batch size {batch_size} does not split over {info.world} processes; use a multiple of it"
        )
    return batch_size // info.world


class RankSlices(Sampler[int]):
    """Indices of this rank's slice of every global batch, in order.

    With global batch ``B`` over ``W`` ranks, global batch ``k`` holds items ``kB .. kB+B-1``; rank ``r``
    takes ``kB + r*B/W .. kB + (r+1)*B/W - 1``. Together the ranks see exactly the items of a
    single-process run with batch ``B``, each item once. A last, incomplete global batch is left out:
    ranks with unequal batches would weigh items unequally, and a rank with none would hang the others.
    """

    def __init__(self, n_items: int, batch_size: int, info: DistInfo) -> None:
        self.per_rank = check_batch(batch_size, info)
        self.n_items, self.batch_size, self.info = n_items, batch_size, info
        self.left_out = n_items % batch_size

    def _indices(self) -> list[int]:
        out = []
        for start in range(0, self.n_items - self.left_out, self.batch_size):
            lo = start + self.info.rank * self.per_rank
            out += list(range(lo, lo + self.per_rank))
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def gather_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The global batch on every rank, for a loss that is no mean over samples (batch Dice).

    Every rank then computes the single-process loss of the whole global batch. The gather of a tensor
    that needs gradients is differentiable: its backward sums the ranks' gradients into each rank's own
    part (W times the single-process gradient), and DDP's average over the W ranks undoes the factor,
    which is nnU-Net's way with batch Dice under DDP. Outside DDP the tensors come back as they are.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return tensors
    out = []
    for t in tensors:
        if t.requires_grad:
            out.append(torch.cat(all_gather(t)))
        else:
            parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, t.contiguous())
            out.append(torch.cat(parts))
    return tuple(out)


def shard(items: Sequence[T]) -> list[T]:
    """The share of a list for this rank: every W-th item from its rank (the whole list outside DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(items)
    return list(items[dist.get_rank() :: dist.get_world_size()])


def gather_lists(values: list[T]) -> list[T]:
    """Every rank's list, joined in rank order (the list itself outside DDP)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    parts: list[list[T] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part or []]


def mean_over_ranks(values: Sequence[float], info: DistInfo) -> float:
    """The mean of every rank's values (a plain mean in a single process)."""
    total = torch.tensor([float(sum(values)), float(len(values))], dtype=torch.float64)
    if info.enabled:
        dist.all_reduce(total)
    return float(total[0] / max(total[1], 1.0))


def broadcast_metrics(metrics: dict[str, float] | None, info: DistInfo) -> dict[str, float]:
    """Rank 0's validation metrics on every rank."""
    if not info.enabled:
        return metrics or {}
    box = [metrics]
    dist.broadcast_object_list(box, src=0)
    return box[0] or {}


def barrier(info: DistInfo) -> None:
    """Wait for every rank (nothing in a single process)."""
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


class _Wrapped(torch.nn.parallel.DistributedDataParallel):
    """DDP that still answers the network's own methods (e.g. the siamese ``same_logit``)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DDP; built per epoch, after the task has frozen or released its encoder."""
    ids = [device.index] if device.type == "cuda" else None
    # Frozen parameters are left out when the wrapper is built (each epoch), so every parameter
    # DDP tracks gets a gradient in each step.
    return _Wrapped(model, device_ids=ids)


def shard_loader(loader: DataLoader, info: DistInfo) -> DataLoader:
    """The same DataLoader, giving this rank its slice of every global batch."""
    sampler = RankSlices(len(loader.dataset), loader.batch_size, info)
    if sampler.left_out and info.main:
        warnings.warn(
            f"{sampler.left_out} of the epoch's {len(loader.dataset)} items are left out under DDP "
            f"(not a whole global batch of {loader.batch_size}); use a multiple of it to keep them",
            stacklevel=2,
        )
    return DataLoader(
        loader.dataset,
        batch_size=sampler.per_rank,
        sampler=sampler,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        collate_fn=loader.collate_fn,
        persistent_workers=False,
    )

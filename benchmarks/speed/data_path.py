"""The data path of segmentation training: store loader against tensors in memory and a plain MONAI pipeline.

On the same phantom cases and the same network, loss and optimiser (the preset's U-Net, DiceCE, optimiser),
side by side in one run, repeated and interleaved (the machine is shared and noisy; medians reported),
without augmentation or mirroring in any pipeline:

- ``in memory``: the epoch's batches read beforehand; only the training steps are timed;
- ``store loader``: sidepair's own path, timed as training runs it: a DataLoader over the prepared store,
  each patch read from the memory-mapped arrays (only the crop is read), with 0 and 2 workers;
- ``MONAI NIfTI``: a plain MONAI pipeline that loads and transforms the NIfTI files every epoch
  (LoadImaged, EnsureChannelFirstd, Orientationd RAS, Spacingd to the preset's spacing, the HU window,
  z-score, RandCropByPosNegLabeld with 4 patches per loaded case, as the MONAI tutorials do), the same
  number of patches per epoch, with 0 and 2 workers;
- ``MONAI CacheDataset``: the same transforms, the deterministic ones cached in memory once (built before
  the timing; the build time and the cache's size are reported), only the random crop per epoch;
- ``MONAI PersistentDataset``: the same, cached on disk (warm: filled by one pass before the timing).

Every MONAI pipeline draws its cases with replacement, as many loads per epoch as patches / 4. Memory
beside each: what it holds besides the network (the cache in RAM, the cache on disk, or the store on
disk, which training memory-maps and reads only where it crops).

Targets: store loader / in memory <= 1.1; the fastest MONAI pipeline / store loader >= 2.

Usage: python benchmarks/speed/data_path.py [--preset fast-2d] [--cases 8] [--shape 160 160 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _common import report
from sidepair.config import get_preset
from sidepair.data.formats import open_dataset
from sidepair.data.phantom import generate_phantom
from sidepair.data.prepare import prepare
from sidepair.data.store import Store
from sidepair.training.segment_config import resolve_train_config
from sidepair.training.segment_task import SegmentationTask


def monai_pipeline(data: Path, case_ids: list[str], preset: str, patch: tuple[int, ...]):
    """The MONAI tutorials' pipeline over the NIfTI files: items, transforms, patches per load."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        Lambdad,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        RandCropByPosNegLabeld,
        ScaleIntensityRanged,
        Spacingd,
        SqueezeDimd,
        Transposed,
    )

    p = get_preset(preset).preprocess
    z, y, x = p.spacing_zyx
    per_case = 4
    dims = len(patch)
    # RAS arrays are (x, y, z); a 2D patch is one axial slice, (y, x) like the store's.
    size = (patch[1], patch[0], 1) if dims == 2 else (patch[2], patch[1], patch[0])
    steps = [
        LoadImaged(keys=["image", "label"]),
        EnsureChannelFirstd(keys=["image", "label"]),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(x, y, z), mode=("bilinear", "nearest")),
        ScaleIntensityRanged(
            keys="image",
            a_min=p.window[0],
            a_max=p.window[1],
            b_min=p.window[0],
            b_max=p.window[1],
            clip=True,
        ),
        NormalizeIntensityd(keys="image"),
        Lambdad(keys="label", func=lambda t: (t > 0).long()),
        RandCropByPosNegLabeld(
            keys=["image", "label"],
            label_key="label",
            spatial_size=size,
            pos=0.6,
            neg=0.4,
            num_samples=per_case,
        ),
    ]
    if dims == 2:
        steps += [
            SqueezeDimd(keys=["image", "label"], dim=-1),
            Transposed(keys=["image", "label"], indices=(0, 2, 1)),
        ]
    else:
        steps += [Transposed(keys=["image", "label"], indices=(0, 3, 2, 1))]
    items = [
        {"image": str(data / c / "imaging.nii.gz"), "label": str(data / c / "segmentation.nii.gz")}
        for c in case_ids
    ]
    return items, Compose(steps), per_case


def cache_bytes(dataset) -> int:
    """Bytes of the tensors a CacheDataset holds."""
    total = 0
    for item in dataset._cache:
        for value in item.values() if isinstance(item, dict) else []:
            total += int(getattr(value, "nbytes", 0))
    return total


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def run_epoch(
    task: SegmentationTask, batches, opt: torch.optim.Optimizer, device: torch.device
) -> tuple[float, int]:
    """Train over ``batches``; seconds and steps."""
    t0, n = time.perf_counter(), 0
    for batch in batches:
        if isinstance(batch, dict):
            batch = (batch["image"].as_tensor().float(), batch["label"].as_tensor().long())
        opt.zero_grad(set_to_none=True)
        loss = task.train_step(task.model, batch, device)
        loss.backward()
        opt.step()
        n += 1
    return time.perf_counter() - t0, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast-2d")
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=[160, 160, 64])
    parser.add_argument("--samples", type=int, default=256, help="Patches per epoch.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset, list_data_collate
    from torch.utils.data import RandomSampler

    work = args.work or Path(tempfile.mkdtemp(prefix="sidepair-datapath-"))
    data, store_dir = work / "phantom", work / "store"
    if not data.exists():
        generate_phantom(data, cases=args.cases, seed=0, shape=tuple(args.shape))
    if not store_dir.exists():
        prepare(open_dataset(data), store_dir, get_preset(args.preset).preprocess)
    store = Store(store_dir)
    device = torch.device("cpu")
    # The MONAI pipelines below neither augment nor mirror: the store loader is timed without them too, so
    # that the rows compare reading patches, not the recipe's augmentation.
    config = resolve_train_config(
        args.preset, store_dir, device="cpu", samples_per_epoch=args.samples, augment=False, mirror=False
    )
    task = SegmentationTask(config, store)
    opt = torch.optim.Adam(task.model.parameters(), lr=config.lr)
    task.model.train()
    items, transforms, per_case = monai_pipeline(data, task.train_ids, args.preset, tuple(config.patch_size))
    cases_per_batch = config.batch_size // per_case
    t0 = time.perf_counter()
    cached = CacheDataset(items, transforms, cache_rate=1.0, num_workers=0, progress=False)
    cache_build_s = time.perf_counter() - t0
    persistent_dir = work / "persistent_cache"
    persistent = PersistentDataset(items, transforms, cache_dir=persistent_dir)
    t0 = time.perf_counter()
    for i in range(len(persistent)):  # warm the disk cache
        persistent[i]
    persistent_build_s = time.perf_counter() - t0
    datasets = {
        "MONAI NIfTI": Dataset(items, transforms),
        "MONAI CacheDataset": cached,
        "MONAI PersistentDataset": persistent,
    }
    memory = {
        "MONAI NIfTI": "none",
        "MONAI CacheDataset": f"{cache_bytes(cached) / 2**20:.0f} MiB RAM",
        "MONAI PersistentDataset": f"{folder_bytes(persistent_dir) / 2**20:.0f} MiB disk",
        "store loader": f"{folder_bytes(store_dir) / 2**20:.0f} MiB disk (memory-mapped)",
    }
    loads = args.samples // per_case  # the same patches per epoch
    timings: dict[str, list[float]] = {}
    steps: dict[str, int] = {}

    def record(name: str, seconds: float, n: int) -> None:
        timings.setdefault(name, []).append(seconds)
        steps[name] = n

    run_epoch(task, list(task.train_batches(0))[:2], opt, device)  # warm-up
    for r in range(args.repeats):
        epoch = r + 1
        in_memory = list(task.train_batches(epoch))
        record("in memory", *run_epoch(task, in_memory, opt, device))
        for workers in (0, 2):
            task.config = config.model_copy(update={"workers": workers})
            record(
                f"store loader, {workers} workers", *run_epoch(task, task.train_batches(epoch), opt, device)
            )
            for name, dataset in datasets.items():
                sampler = RandomSampler(
                    dataset,
                    replacement=True,
                    num_samples=loads,
                    generator=torch.Generator().manual_seed(epoch),
                )
                loader = DataLoader(
                    dataset,
                    batch_size=cases_per_batch,
                    sampler=sampler,
                    num_workers=workers,
                    collate_fn=list_data_collate,
                )
                record(f"{name}, {workers} workers", *run_epoch(task, loader, opt, device))
        task.config = config
        print(
            f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in timings.items())
        )
    base = statistics.median(timings["in memory"])
    rows: list[dict[str, Any]] = []
    for name, values in timings.items():
        med = statistics.median(values)
        workers = name.rsplit(",", 1)[-1].strip() if "," in name else ""
        loader_same_workers = timings.get(f"store loader, {workers}") if workers else None
        rows.append(
            {
                "pipeline": name,
                "epoch_s": round(med, 2),
                "step_s": round(med / steps[name], 4),
                "steps": steps[name],
                "vs_in_memory": round(med / base, 3),
                "vs_store_loader": round(med / statistics.median(loader_same_workers), 2)
                if loader_same_workers
                else "",
                "memory": memory.get(name.split(",")[0], ""),
            }
        )
    extra = {
        "data": f"phantom ({args.cases} cases of {tuple(args.shape)} voxels, "
        f"{len(task.train_ids)} training cases)",
        "preset": args.preset,
        "patches_per_epoch": args.samples,
        "batch_size": config.batch_size,
        "patch_size": list(config.patch_size),
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "cache_build_s": round(cache_build_s, 1),
        "persistent_warm_s": round(persistent_build_s, 1),
        "store_bytes_per_case": int(
            np.mean(
                [sum(f.stat().st_size for f in (store_dir / "cases" / c).glob("*.npy")) for c in store.cases]
            )
        ),
    }
    report("data_path", rows, extra)
    print(f"data: {extra['data']}; medians of {args.repeats} interleaved repeats")


if __name__ == "__main__":
    main()

"""What a side model reads: held-out sections plain, mirrored, and with their side organs blanked.

Three views of the same held-out pairs tell organ reading from handedness reading:

- **plain**: the pair accuracy (and the side head's accuracy) the training loop logs;
- **mirrored** (the mirror score): every second section mirrored left-right, keeping its patient's side.
  Its organs are unchanged, its handedness reversed; a handedness reader falls to about 0;
- **occluded**: the liver and the spleen blanked in both sections (filled with the section's median body
  intensity, one voxel beyond their outline). An organ reader falls toward chance. Only pairs whose two
  sections both hold some occluded organ count, and the plain accuracy of those same pairs is given
  beside it (levels without liver or spleen say nothing about occlusion).

Organ maps come from the files beside each case's scan: a phantom case's ``organs.nii.gz`` (codes
:data:`~sidepair.data.phantom.ORGANS`) or TotalSegmentator-layout ``segmentations/<organ>.nii.gz`` (the
``ircadb`` patients have ``liver`` and ``spleen``). They are brought onto the store grid through world
coordinates, nearest neighbour, so any orientation and spacing the readers take works.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from sidepair.data.pairs import sample_pairs
from sidepair.data.phantom import ORGANS
from sidepair.data.preprocess import nearest_onto
from sidepair.data.sections import VAL_EPOCH, Section, SectionSampler, read_crop
from sidepair.data.store import Store
from sidepair.errors import SidepairError
from sidepair.evaluation.proxy import pair_metrics
from sidepair.models.checkpoint import BEST, PretrainCheckpoint, read_checkpoint
from sidepair.models.siamese import Siamese

OCCLUDED = ("liver", "spleen")
MIN_ORGAN_FRACTION = 0.02  # of a section's body voxels: below it, the section holds no occluded organ


def organ_files(image: str | Path, organs: tuple[str, ...] = OCCLUDED) -> list[tuple[Path, int | None]]:
    """The organ maps beside a scan: ``(file, code)``, code None for a binary per-organ mask.

    Args:
        image: The scan file (symbolic links are followed to the real folder).
        organs: Organ names to find.

    Returns:
        The maps found (empty when the scan has none).
    """
    folder = Path(image).resolve().parent
    phantom = folder / "organs.nii.gz"
    if phantom.is_file():
        return [(phantom, ORGANS[o]) for o in organs if o in ORGANS]
    return [(folder / "segmentations" / f"{o}.nii.gz", None) for o in organs
            if (folder / "segmentations" / f"{o}.nii.gz").is_file()]  # fmt: skip


def organ_mask_on_store(store: Store, case_id: str, organs: tuple[str, ...] = OCCLUDED) -> np.ndarray | None:
    """The union of a store case's organ maps on its store grid ``(z, y, x)``; None without maps.

    Raises:
        SidepairError: An organ map that cannot be read, naming it.
    """
    entry = store.cases[case_id]
    files = organ_files(entry.sources[0].path, organs)
    if not files:
        return None
    out = np.zeros(tuple(entry.shape), dtype=bool)
    store_affine = np.asarray(entry.affine, dtype=float)  # (z, y, x) index -> RAS world
    for path, code in files:
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:  # nibabel raises several types for a bad file
            raise SidepairError(f"{path}: unreadable organ map ({exc})") from None
        while data.ndim > 3 and data.shape[-1] == 1:
            data = data[..., 0]
        mask = (data == code) if code is not None else (data > 0)
        out |= nearest_onto(mask.astype(np.uint8), img.affine, store_affine, out.shape).astype(bool)
    return out


def occlude(crop: np.ndarray, organ: np.ndarray, background: float) -> np.ndarray:
    """Blank ``organ`` voxels (dilated by one voxel in-plane) with the crop's median body intensity."""
    spread = np.zeros((1,) * (organ.ndim - 2) + (3, 3), dtype=bool)
    spread[..., 1, :] = spread[..., :, 1] = True
    blank = ndimage.binary_dilation(organ, structure=spread)
    body = (crop > background + 1e-4) & ~blank
    fill = float(np.median(crop[body])) if body.any() else background
    return np.where(blank, fill, crop).astype(np.float32)


def load_side_pair(path: str | Path) -> tuple[Siamese, dict[str, Any]]:
    """A side-pair run folder or checkpoint: its network (eval mode) and run config.

    Raises:
        SidepairError: Not a side-pair pretraining.
    """
    path = Path(path)
    path = path / BEST if path.is_dir() else path
    if not path.exists():
        raise SidepairError(f"{path}: checkpoint not found")
    ckpt = read_checkpoint(path, PretrainCheckpoint)
    task = ckpt.config.get("task", "side-pair")
    if task != "side-pair":
        raise SidepairError(f"{path}: a {task} pretraining run; the probe needs a side-pair model")
    return Siamese.from_checkpoint(ckpt).eval(), dict(ckpt.config)


@torch.no_grad()
def probe(
    model: str | Path,
    store: str | Path | Store,
    cases: list[str] | None = None,
    n_pairs: int = 256,
    seed: int = 0,
    organs: tuple[str, ...] = OCCLUDED,
) -> dict[str, Any]:
    """Plain, mirrored and organ-occluded accuracy of a side-pair model on a store's held-out cases.

    Args:
        model: Side-pair run folder or checkpoint.
        store: A store prepared with the model's preset (the sections are cut as in its pretraining).
        cases: Cases to draw pairs from (default: the store's validation split, else all cases).
        n_pairs: Pairs to draw (balanced same/different, as validation draws them).
        seed: Draw seed.
        organs: Organs to blank.

    Returns:
        ``acc``/``auc`` (plain), ``mirror_acc``/``mirror_auc``, ``organ_pairs`` (pairs whose sections both
        hold an occluded organ), ``organ_plain_acc`` and ``occluded_acc`` on those, and with a side head
        ``side_acc``, ``side_mirror_acc``, ``side_organ_plain_acc`` and ``side_occluded_acc`` (sections),
        plus ``cases_with_organs``. NaN where nothing was there to measure.
    """
    network, config = load_side_pair(model)
    store = store if isinstance(store, Store) else Store(store)
    cases = cases or store.split("val") or sorted(store.cases)
    if config["sections"] != "half":
        cases = [c for c in cases if store.cases[c].labelled]
    size = tuple(config["section_size"])
    sampler = SectionSampler(store, cases, config["sections"], int(config["dims"]), size)
    pairs = sample_pairs(sampler, n_pairs, seed, VAL_EPOCH)
    drawn = sorted({p.a.case_id for p in pairs} | {p.b.case_id for p in pairs})
    masks = {c: organ_mask_on_store(store, c, organs) for c in drawn}
    first = [_views(sampler, masks, p.a) for p in pairs]
    second = [_views(sampler, masks, p.b) for p in pairs]
    x1, o1 = (torch.from_numpy(np.stack([v[k] for v in first])) for k in (0, 1))
    x2, o2 = (torch.from_numpy(np.stack([v[k] for v in second])) for k in (0, 1))
    organ_section = np.array([v[2] for v in first] + [v[2] for v in second])
    organ_pair = organ_section[: len(pairs)] & organ_section[len(pairs) :]
    same = np.array([p.same for p in pairs])

    def flip(x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=(sampler.lateral_dim,))

    e1, e2, e2m, oe1, oe2 = (_embed(network, x) for x in (x1, x2, flip(x2), o1, o2))
    threshold = float(config.get("threshold", 0.75))
    plain, mirrored = (
        _pair_metrics(network, e1, e2, same, threshold),
        _pair_metrics(network, e1, e2m, same, threshold),
    )
    out: dict[str, Any] = {
        "acc": plain["acc"],
        "auc": plain["auc"],
        "mirror_acc": mirrored["acc"],
        "mirror_auc": mirrored["auc"],
        "pairs": len(pairs),
        "organ_pairs": int(organ_pair.sum()),
        "organ_plain_acc": _pair_metrics(network, e1, e2, same, threshold, organ_pair)["acc"],
        "occluded_acc": _pair_metrics(network, oe1, oe2, same, threshold, organ_pair)["acc"],
        "cases": len(masks),
        "cases_with_organs": sum(m is not None for m in masks.values()),
        "organs": list(organs),
        "sections": config["sections"],
    }
    if network.side_classifier is not None:
        right = np.array([float(s.side == "right") for s in [p.a for p in pairs] + [p.b for p in pairs]])
        e1m = _embed(network, flip(x1))

        def side_acc(a: torch.Tensor, b: torch.Tensor, keep: np.ndarray | None = None) -> float:
            return _side_accuracy(network, torch.cat([a, b]), right, keep)

        out.update(
            side_acc=side_acc(e1, e2),
            side_mirror_acc=side_acc(e1m, e2m),
            side_organ_plain_acc=side_acc(e1, e2, organ_section),
            side_occluded_acc=side_acc(oe1, oe2, organ_section),
            organ_sections=int(organ_section.sum()),
        )
    return out


def _views(
    sampler: SectionSampler, masks: dict[str, np.ndarray | None], section: Section
) -> tuple[np.ndarray, np.ndarray, bool]:
    """A section plain and with its organs occluded, and whether it holds an occluded organ."""
    store = sampler.store
    crop = sampler.read(section)
    mask = masks[section.case_id]
    if mask is None:
        return crop, crop, False
    organ = read_crop(mask, section.start, section.size, 0) > 0.5
    organ = organ[0:1] if sampler.dims == 2 else organ[None]
    if sampler.mode == "masked":  # only the kidney is shown: organ voxels are blank already
        organ &= crop != 0
    background = store.background_value(section.case_id)
    body = crop > background + 1e-4
    present = organ.sum() >= MIN_ORGAN_FRACTION * max(int(body.sum()), 1)
    return crop, occlude(crop, organ, background), bool(present)


def _embed(network: Siamese, x: torch.Tensor) -> torch.Tensor:
    """Embeddings of ``x``, 64 sections at a time."""
    return torch.cat([network.embed(x[i : i + 64]) for i in range(0, len(x), 64)])


def _pair_metrics(
    network: Siamese,
    a: torch.Tensor,
    b: torch.Tensor,
    same: np.ndarray,
    threshold: float,
    keep: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy and AUC of the pair head on the pairs ``(a, b)`` (those ``keep`` marks); NaN on none."""
    if network.head == "contrastive":
        scores = {"distance": torch.linalg.vector_norm(a - b, dim=1).numpy()}
    else:
        scores = {"prob_same": torch.sigmoid(network.same_logit(a, b)).numpy()}
    if keep is not None:
        if not keep.any():
            return {"acc": math.nan, "auc": math.nan}
        scores = {k: v[keep] for k, v in scores.items()}
    return pair_metrics(same if keep is None else same[keep], threshold=threshold, **scores)


def _side_accuracy(
    network: Siamese, embeddings: torch.Tensor, right: np.ndarray, keep: np.ndarray | None = None
) -> float:
    """Share of sections (those ``keep`` marks) whose side the side head calls right; NaN on none."""
    hit = (network.side_logit(embeddings) > 0).float().numpy() == right
    if keep is None:
        return float(hit.mean())
    return float(hit[keep].mean()) if keep.any() else math.nan

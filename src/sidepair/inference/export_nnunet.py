"""``sidepair export --format nnunet``: a side-pair encoder as nnU-Net's ``-pretrained_weights`` file.

nnU-Net's ``load_pretrained_weights`` asserts that every key of its network but the segmentation heads is
in the file with the same shape. So the file holds the whole network, built by nnU-Net from the same plans
and configuration: the encoder's tensors are the pretrained ones (all of them, strictly), the decoder
keeps nnU-Net's own initialisation. It is a dictionary with ``network_weights``, as nnU-Net's checkpoints
are, plus a ``sidepair`` record of where the encoder came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sidepair.atomic import atomic_path
from sidepair.errors import SidepairError
from sidepair.models.checkpoint import BEST, PretrainCheckpoint, read_checkpoint
from sidepair.models.nnunet import build_nnunet
from sidepair.models.unet import transfer_encoder
from sidepair.nnunet_plans import is_nnunet, nnunet_encoder_config, read_plans

# What decides the encoder's tensors and the data it was fed: differences here refuse the export.
COMPARED = ("configuration", "network_class_name", "arch_kwargs", "spatial_dims")


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first place (a dotted path) where two JSON-like values differ; None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path} ({json.dumps(a, default=str)} against {json.dumps(b, default=str)})"


def _segmentation_heads(plans: Path) -> int:
    """nnU-Net's number of segmentation outputs: the labels in the ``dataset.json`` beside the plans."""
    dataset_json = plans.parent / "dataset.json"
    try:
        labels = json.loads(dataset_json.read_text(encoding="utf-8"))["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise SidepairError(f"{dataset_json}: cannot read its labels ({exc})") from None
    return len(labels)


def export_nnunet(
    model: str | Path, plans: str | Path, configuration: str, out: str | Path
) -> dict[str, Any]:
    """Write nnU-Net's network with a side-pair pretrained encoder, for ``-pretrained_weights``.

    Args:
        model: Side-pair pretraining run folder or checkpoint (``--architecture nnunet``).
        plans: The plans nnU-Net will train with (must be those of the pretraining).
        configuration: The configuration nnU-Net will train.
        out: The file to write.

    Returns:
        The file, its size, the encoder tensors transferred and the network's tensor count.

    Raises:
        SidepairError: Pretrained with another architecture, plans or configuration that differ from the
            pretraining's (naming the setting), or a tensor whose name or shape differs (naming it).
    """
    path = Path(model) / BEST if Path(model).is_dir() else Path(model)
    if not path.exists():
        raise SidepairError(f"{path}: pretraining checkpoint not found")
    ckpt = read_checkpoint(path, PretrainCheckpoint)
    pretrained = ckpt.encoder_config
    if not is_nnunet(pretrained):
        raise SidepairError(
            f"{path}: pretrained with the monai architecture, not nnU-Net's; pretrain with "
            "--architecture nnunet --plans PLANS --configuration C"
        )
    plans = Path(plans)
    target = nnunet_encoder_config(plans, configuration)
    for key in COMPARED:
        found = first_difference(pretrained.get(key), target.get(key), key)
        if found:
            raise SidepairError(f"{plans}: {found} differs from the pretraining's ({path})")
    if pretrained.get("plans_sha") != target["plans_sha"]:
        raise SidepairError(
            f"{plans}: not the plans the pretraining used (content hash {target['plans_sha']} against "
            f"{pretrained.get('plans_sha')}); its preprocessing may differ"
        )
    read_plans(plans)
    network = build_nnunet(target, _segmentation_heads(plans), deep_supervision=True)
    transferred = transfer_encoder(network.encoder, ckpt.encoder_weights(), str(path), "nnU-Net's")
    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    payload = {
        "network_weights": state,
        "sidepair": {
            "pretraining": str(path.resolve()),
            "plans": str(plans.resolve()),
            "configuration": configuration,
            "encoder_tensors": transferred,
            "task": ckpt.config.get("task", "side-pair"),
            "sections": ckpt.config.get("sections"),
        },
    }
    out = Path(out)
    with atomic_path(out, suffix=".pth") as tmp:
        torch.save(payload, tmp)
    return {
        "file": str(out),
        "bytes": out.stat().st_size,
        "encoder_tensors": transferred,
        "network_tensors": len(state),
    }

"""The Python API: the command line's main verbs as functions, and the pretrained encoder as a module.

Each function does what its verb does, with the same settings and the same files written::

    import sidepair

    store = sidepair.prepare("kits19/data", "store", preset="fast-2d")
    ssl = sidepair.pretrain(store, "runs/ssl", sections="half")
    run = sidepair.train(store, "runs/ft", init=ssl / "checkpoint_best.pt", label_fraction=0.1)
    print(sidepair.evaluate(run)["metrics"]["kidney_dice"]["mean"])
    encoder = sidepair.load_encoder(ssl)  # a torch.nn.Module for one's own network

``sidepair.predict`` and ``sidepair.check_sides`` live beside the code they call
(:mod:`sidepair.inference.predictor`, :mod:`sidepair.qc`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from torch import nn

from sidepair.choices import DEFAULT_RESAMPLE, FormatName, Resample, SideCheckMode
from sidepair.config import Performance, get_label_map, get_preset, validated
from sidepair.data.formats import open_dataset
from sidepair.data.nnunet_grid import with_nnunet
from sidepair.data.prepare import prepare as prepare_store
from sidepair.evaluation.evaluate import evaluate_run
from sidepair.models.backends import build_encoder
from sidepair.models.checkpoint import read_checkpoint
from sidepair.models.unet import transfer_encoder
from sidepair.nnunet_plans import check_plans_pair
from sidepair.qc.alarm import scan_alarm
from sidepair.training.pretrain import run_pretrain
from sidepair.training.pretrain_config import resolve_config
from sidepair.training.segment import run_train
from sidepair.training.segment_config import resolve_train_config


def prepare(
    data: str | Path | list[str | Path],
    out: str | Path,
    preset: str = "kits19-paper",
    *,
    fmt: Literal["auto"] | FormatName = "auto",
    label_map: str | None = None,
    spacing: tuple[float, float, float] | None = None,
    antialias: bool = False,
    split_seed: int = 0,
    slice_options: dict[str, Any] | None = None,
    accept_negatives: bool = False,
    plans: str | Path | None = None,
    configuration: str | None = None,
    side_check: SideCheckMode = "warn",
    progress: bool = True,
) -> Path:
    """Orient, resample, window and normalise datasets into a store (``sidepair prepare``).

    Args:
        data: A dataset folder, or several to combine (e.g. unlabelled scans beside a labelled set).
        out: Store folder to write, or to finish.
        preset: Preset giving the spacing and the HU window.
        fmt: Dataset layout (``auto`` detects it).
        label_map: Label map name (``kits19``, ``kits23``, ``sides-multilabel``, ``totalseg``) or a YAML file.
        spacing: The preset's spacing replaced, Z Y X in mm (0 keeps an axis).
        antialias: Smooth each image before downsampling it (``PreprocessSettings.antialias``).
        split_seed: Seed of the train/val/test split.
        slice_options: PNG slice folders: ``convention``, ``intensity`` (slope, intercept), ``spacing``.
        accept_negatives: Keep labelled 3D scans without kidney as negatives.
        plans: nnU-Net plans: preprocess as nnU-Net does for ``configuration``.
        configuration: With ``plans``: the nnU-Net configuration.
        side_check: ``warn``, ``error`` or ``off``: the shipped side model's check of each scan.
        progress: Show a progress bar.

    Returns:
        The store folder.

    Raises:
        UsageError: ``plans`` without ``configuration`` or the reverse.
        SidepairError: A dataset, label map or preset that cannot be used, naming it.
    """
    settings = get_preset(preset).preprocess
    if spacing is not None:
        settings = settings.model_copy(update={"spacing_zyx": tuple(s if s > 0 else None for s in spacing)})
    if antialias:
        settings = settings.model_copy(update={"antialias": True})
    check_plans_pair(plans, configuration)
    if plans is not None and configuration is not None:
        settings = with_nnunet(settings, Path(plans), configuration)
    labels = get_label_map(label_map) if label_map is not None else None
    options = {"convention": "radiological", "intensity": None, "spacing": None, **(slice_options or {})}
    folders = data if isinstance(data, list) else [data]
    datasets = [open_dataset(folder, fmt, labels, slice_options=options) for folder in folders]
    return prepare_store(
        datasets,
        out,
        settings,
        split_seed=split_seed,
        progress=progress,
        format_options=options,
        preset=preset,
        accept_negatives=accept_negatives,
        scan_check=scan_alarm(side_check),
    )


def pretrain(
    store: str | Path,
    out: str | Path,
    preset: str | None = None,
    *,
    resume: bool = False,
    performance: dict[str, Any] | None = None,
    progress: bool = True,
    **settings: Any,
) -> Path:
    """Self-supervised pretraining of the encoder (``sidepair pretrain``).

    Args:
        store: Store written by :func:`prepare`.
        out: Run folder.
        preset: Defaults for every setting (None: the preset the store was made with).
        resume: Continue an interrupted run.
        performance: Speed options (:class:`~sidepair.config.Performance` fields).
        progress: Show progress bars.
        **settings: Fields of :class:`~sidepair.training.pretrain_config.PretrainConfig`, e.g.
            ``sections="half"``, ``epochs=8``, ``task="side-pair"``.

    Returns:
        The run folder (``checkpoint_best.pt``, ``metrics.jsonl``, ``run.json`` ...).
    """
    return _run(resolve_config, run_pretrain, store, out, preset, resume, performance, progress, settings)


def train(
    store: str | Path,
    out: str | Path,
    preset: str | None = None,
    *,
    resume: bool = False,
    performance: dict[str, Any] | None = None,
    progress: bool = True,
    **settings: Any,
) -> Path:
    """Segmentation training from scratch or from a pretrained encoder (``sidepair train``).

    Args:
        store: Store written by :func:`prepare`.
        out: Run folder.
        preset: Defaults for every setting (None: the preset the store was made with).
        resume: Continue an interrupted run.
        performance: Speed options (:class:`~sidepair.config.Performance` fields).
        progress: Show progress bars.
        **settings: Fields of :class:`~sidepair.training.segment_config.TrainConfig`, e.g.
            ``init="runs/ssl/checkpoint_best.pt"``, ``label_fraction=0.1``, ``steps=1500``, ``seed=1``.

    Returns:
        The run folder.
    """
    return _run(resolve_train_config, run_train, store, out, preset, resume, performance, progress, settings)


def _run(
    resolve: Callable[..., Any],
    run: Callable[..., Any],
    store: str | Path,
    out: str | Path,
    preset: str | None,
    resume: bool,
    performance: dict[str, Any] | None,
    progress: bool,
    settings: dict[str, Any],
) -> Path:
    """Resolve a run's settings from the preset and the overrides, then run it (pretraining or training)."""
    config = resolve(preset, store, **settings)
    speed = validated(Performance, performance or {}, "performance")
    run(config, out, resume=resume, progress=progress, bar=progress, performance=speed)
    return Path(out)


def evaluate(
    run: str | Path,
    split: Literal["train", "val", "test"] = "test",
    checkpoint: Literal["best", "last"] = "best",
    device: str = "auto",
    resample: Resample = DEFAULT_RESAMPLE,
) -> dict[str, Any]:
    """Per-case Dice, HD95 and NSD of a run in each scan's own geometry (``sidepair evaluate``).

    Writes ``RUN/eval_<split>/`` (predictions, ``metrics.json``, ``per_case.csv``, ``cases.png``).

    Args:
        run: Segmentation run folder.
        split: The store's split to score.
        checkpoint: ``best`` or ``last``.
        device: ``auto`` (CUDA where there is one), ``cpu`` or ``cuda``.
        resample: Back to each scan's grid: ``probabilities`` then argmax (nnU-Net's way), or ``labels``.

    Returns:
        The summary of ``metrics.json``: ``metrics[name]`` holds ``mean``, ``sd``, ``median`` and ``n``.
    """
    return evaluate_run(run, split, checkpoint, device, progress=False, resample=resample)


def load_encoder(source: str | Path, checkpoint: Literal["best", "last"] = "best") -> nn.Module:
    """The pretrained (or fine-tuned) encoder of a run, with its weights, ready for one's own network.

    Input convention: a float tensor ``(N, 1, Y, X)`` for a 2D encoder or ``(N, 1, Z, Y, X)`` for a 3D one,
    on the store's grid (RAS+, axes z, y, x) and preprocessed as the store was: resampled to the spacing,
    HU clipped to the window and normalised as ``encoder.preprocess`` says (the store's settings). Each
    spatial size must be a multiple of ``encoder.total_stride()``. sidepair's encoder returns
    ``(skips, bottleneck)``: the features of every stage but the last, shallow to deep, and the deepest;
    nnU-Net's (``architecture: nnunet``) returns every stage's features as a list.

    Args:
        source: A pretraining or segmentation run folder, or one of its checkpoint files.
        checkpoint: With a run folder: ``best`` or ``last``.

    Returns:
        The encoder in eval mode, on the CPU, with ``encoder_config`` (what rebuilds it) and ``preprocess``
        (the store's :class:`~sidepair.config.PreprocessSettings` as a dict, or None when not recorded).

    Raises:
        SidepairError: Not a checkpoint, damaged, or its tensors do not fit (naming the file).
    """
    path = Path(source)
    if path.is_dir():
        path = path / f"checkpoint_{checkpoint}.pt"
    ckpt = read_checkpoint(path)
    encoder = build_encoder(ckpt.encoder_config)
    transfer_encoder(encoder, ckpt.encoder_weights(), str(path), "the encoder's")
    encoder.encoder_config = dict(ckpt.encoder_config)
    encoder.preprocess = ckpt.preprocess
    return encoder.eval()

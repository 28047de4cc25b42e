"""The ``sidepair`` command line: verbs in the order of work, each a thin call into the package.

The hyperparameter options of ``pretrain`` and ``train`` (and the speed options) are derived from the
settings' declarations (:mod:`sidepair.config`), so a setting is declared once and appears here with its
description and choices. Errors are printed as one line (``sidepair <verb>: error: ...``) without a
traceback (``--debug`` shows it): exit code 2 for a wrong command line (click's usage errors, a bad
option value, options that do not go together), 1 for bad input files, configs, stores or checkpoints.

Only light modules are imported here; each verb's implementation is imported when it runs, through
:func:`sidepair.lazy.load`, so ``--help`` and usage errors answer without torch, MONAI or matplotlib.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
import typer
from pydantic import BaseModel

from sidepair.atomic import WRITE_ERRNOS
from sidepair.choices import (
    DEFAULT_RESAMPLE,
    DEFAULT_SIDE_THRESHOLD,
    DEFAULT_SLICE_THRESHOLD,
    AnatomyChoice,
    ExportFormat,
    FormatName,
    OutputLabels,
    PhantomLayout,
    Resample,
    SideCheckMode,
)
from sidepair.config import (
    PRESETS,
    ArchitectureSettings,
    Performance,
    PretrainSettings,
    SegmentSettings,
    validated,
)
from sidepair.data.store import Store
from sidepair.errors import ConfigError, DataWarning, SidepairError, UsageError
from sidepair.experiment.config import ExperimentConfig, load_experiment_config
from sidepair.lazy import load
from sidepair.nnunet_plans import check_plans_pair
from sidepair.training.pretrain_config import PretrainConfig, resolve_config
from sidepair.training.segment_config import TrainConfig, resolve_train_config
from sidepair.version import __version__

app = typer.Typer(
    name="sidepair",
    help="Kidney segmentation in CT with a side-pair self-supervised encoder (arXiv:2101.05456).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

PresetChoice = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
FormatChoice = Literal[("auto", *get_args(FormatName))]  # type: ignore[valid-type]
Split = Literal["train", "val", "test"]
Which = Literal["best", "last"]

SideCheckOpt = Annotated[
    SideCheckMode,
    typer.Option(
        help="Laterality check of each scan with the shipped side model: warn (a one-line warning naming a "
        "scan that looks flipped left-right), error (stop there), or off."
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sidepair {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """``--debug`` is read by :func:`main` from the arguments themselves, before the verb runs."""


def _cli_type(annotation: Any) -> Any:
    """The option type of a settings field: tuples become repeatable options, Optional is unwrapped."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _cli_type(args[0])
    if origin is tuple:
        item = get_args(annotation)[0]
        if get_origin(item) is Literal:  # typer lists choices of an Enum, not of a Literal
            item = enum.Enum("Choice", {str(v): str(v) for v in get_args(item)}, type=str)
        return list[item]  # type: ignore[valid-type]
    return annotation


def derived_options(**groups: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one option per field of each settings model to a command; pass the given ones as dicts.

    The command receives, per group name, a dict of the options the user gave (unset options are left
    out, so the preset's or the model's default applies). Fields the command declares itself, and fields
    marked ``cli: False``, are skipped.

    Args:
        **groups: Group name -> settings model, e.g. ``overrides=PretrainConfig``.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in groups]
        taken = {p.name for p in own}
        added: dict[str, str] = {}
        params = list(own)
        for group, model in groups.items():
            for name, info in model.model_fields.items():
                extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
                if name in taken or extra.get("cli") is False:
                    continue
                kind = _cli_type(info.annotation)
                flag = "--" + name.replace("_", "-")
                decls = [f"{flag}/--no-{name.replace('_', '-')}"] if kind is bool else [flag]
                # Parentheses, not brackets: rich would read "[default: ...]" as markup.
                default = "" if info.default is None else f" (default: {_shown(info.default)})"
                if model in (PretrainConfig, TrainConfig) and name in PRESET_FIELDS:
                    default = " (default: the preset's)"
                option = typer.Option(*decls, help=f"{info.description or ''}{default}", show_default=False)
                annotation = Annotated[kind | None, option]
                params.append(
                    inspect.Parameter(
                        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None
                    )
                )
                added[name] = group
                taken.add(name)

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            given: dict[str, dict[str, Any]] = {g: {} for g in groups}
            for name, group in added.items():
                value = kwargs.pop(name)
                if value is not None:
                    if isinstance(value, list):
                        value = tuple(v.value if isinstance(v, enum.Enum) else v for v in value)
                    given[group][name] = value
            return fn(**kwargs, **given)

        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


# Settings whose default comes from the preset (the rest have their own default).
PRESET_FIELDS = {
    *ArchitectureSettings.model_fields,
    *PretrainSettings.model_fields,
    *SegmentSettings.model_fields,
}


@contextlib.contextmanager
def options_checked() -> Iterator[None]:
    """Settings from the command line that validation refuses are usage errors (exit 2), not input errors."""
    try:
        yield
    except UsageError:
        raise
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _shown(value: Any) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, tuple | list) else str(value)


@app.command()
def phantom(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (KiTS layout).")],
    cases: Annotated[int, typer.Option(help="Number of cases.")] = 20,
    seed: Annotated[int, typer.Option(help="Dataset seed; the same seed gives the same files.")] = 0,
    shape: Annotated[
        tuple[int, int, int], typer.Option(help="Grid size X Y Z in voxels (RAS: left-right, AP, slices).")
    ] = (256, 256, 100),
    masks_from: Annotated[
        Path | None,
        typer.Option(help="Folder of real label maps (e.g. KiTS19 segmentations) for kidney shapes."),
    ] = None,
    montage: Annotated[bool, typer.Option(help="Also write montage.png of the first cases.")] = True,
    layout: Annotated[
        PhantomLayout,
        typer.Option(
            help="kits: case folders of NIfTI; slices: a folder of PNG slices; nnunet: nnU-Net v2 raw "
            "(imagesTr, labelsTr, dataset.json; --out named DatasetNNN_Name)."
        ),
    ] = "kits",
    slices_per_case: Annotated[int, typer.Option(help="With --layout slices: slices per case.")] = 4,
    anatomy: Annotated[
        AnatomyChoice,
        typer.Option(
            help="fixed: one organ template (the demo's); varied: organ sizes, positions and contrast phase "
            "(unenhanced too) drawn per case, for side models; trunk: varied, with the chest's and the "
            "pelvis's levels above and below (for check-sides)."
        ),
    ] = "fixed",
) -> None:
    """Write synthetic abdominal CT cases with kidney labels: KiTS case folders, slices, or nnU-Net raw."""
    if layout == "slices":
        specs = load("sidepair.data.phantom:write_slices")(
            out, cases, seed, shape, slices_per_case, progress=True, anatomy=anatomy
        )
        typer.echo(f"wrote {len(specs)} phantom cases as slices to {out}")
        return
    if layout == "nnunet":
        specs = load("sidepair.data.phantom_nnunet:write_nnunet")(
            out, cases, seed, shape, progress=True, anatomy=anatomy
        )
        typer.echo(f"wrote {len(specs)} phantom cases in nnU-Net raw layout to {out}")
        return
    specs = load("sidepair.data.phantom:generate_phantom")(
        out, cases, seed, shape, masks_from, progress=True, anatomy=anatomy
    )
    typer.echo(f"wrote {len(specs)} phantom cases to {out}")
    if montage:
        png = load("sidepair.data.montage:montage_from_folder")(
            out, out / "montage.png", max_cases=min(6, len(specs))
        )
        typer.echo(f"montage: {png}")


@app.command()
def prepare(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Dataset folder; repeat to combine several.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Store folder to write (or finish).")],
    fmt: Annotated[FormatChoice, typer.Option("--format", help="Dataset layout; auto detects it.")] = "auto",
    preset: Annotated[
        PresetChoice, typer.Option(help="Preset giving spacing and HU window.")
    ] = "kits19-paper",
    label_map: Annotated[
        str | None,
        typer.Option(help="Label map name (kits19, kits23, sides-multilabel, totalseg) or a YAML file."),
    ] = None,
    spacing: Annotated[
        tuple[float, float, float] | None,
        typer.Option(help="Override the preset's spacing Z Y X (mm); 0 keeps an axis."),
    ] = None,
    antialias: Annotated[
        bool,
        typer.Option(
            "--antialias",
            help="Smooth each image before downsampling it (a Gaussian, as MONAI's Resize anti_aliasing).",
        ),
    ] = False,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/val/test split.")] = 0,
    convention: Annotated[
        Literal["radiological", "neurological"],
        typer.Option(
            help="Slice folders: the PNGs' left-right convention when slices.json gives no axis codes."
        ),
    ] = "radiological",
    intensity: Annotated[
        tuple[float, float] | None,
        typer.Option(help="Slice folders: SLOPE INTERCEPT turning pixel values into HU (default 1 0)."),
    ] = None,
    pixel_spacing: Annotated[
        float | None,
        typer.Option(
            help="Slice folders: the PNGs' pixel spacing (mm) where slices.json gives none (else 1 mm, "
            "with a warning)."
        ),
    ] = None,
    accept_negatives: Annotated[
        bool,
        typer.Option(
            "--accept-negatives",
            help="Keep labelled 3D scans without kidney as negatives (slices without kidney always are).",
        ),
    ] = False,
    side_check: SideCheckOpt = "warn",
    plans: Annotated[
        Path | None,
        typer.Option(
            help="nnU-Net plans (nnUNetPlans.json): preprocess as nnU-Net does for --configuration, for "
            "pretraining with --architecture nnunet (needs the [nnunet] extra)."
        ),
    ] = None,
    configuration: Annotated[
        str | None, typer.Option(help="With --plans: the nnU-Net configuration (2d, 3d_fullres ...).")
    ] = None,
) -> None:
    """Orient, resample, window and normalise a dataset into a memory-mapped store."""
    check_plans_pair(plans, configuration)  # before the implementation loads: a usage error is fast
    store = load("sidepair.api:prepare")(
        list(data),
        out,
        preset,
        fmt=fmt,
        label_map=label_map,
        spacing=spacing,
        antialias=antialias,
        split_seed=split_seed,
        slice_options={"convention": convention, "intensity": intensity, "spacing": pixel_spacing},
        accept_negatives=accept_negatives,
        plans=plans,
        configuration=configuration,
        side_check=side_check,
    )
    prepared = Store(store)
    typer.echo(store_summary(prepared, "+".join(r.format for r in prepared.header.datasets)))


def store_summary(store: Store, formats: str) -> str:
    """One line: how many cases, labelled or not, negatives, and the split."""
    cases = list(store.cases.values())
    unlabelled = sum(not c.labelled for c in cases)
    negatives = sum(c.negative for c in cases)
    vanished = sum(c.vanished for c in cases)
    return (
        f"store {store.path}: {len(cases)} cases ({formats} format, {unlabelled} unlabelled, {negatives} "
        f"negatives without kidney on the grid, {vanished} of them vanished there), train "
        f"{len(store.split('train'))} / val {len(store.split('val'))} / test {len(store.split('test'))}"
    )


ExportChoice = Literal[ExportFormat, "nnunet"]

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Store written by `sidepair prepare`.")]
RunOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder.")]
PresetOpt = Annotated[
    PresetChoice | None,
    typer.Option(help="Defaults for every setting (default: the preset the store was made with)."),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")]


@app.command()
@derived_options(overrides=PretrainConfig, performance=Performance)
def pretrain(
    store: StoreOpt,
    out: RunOpt,
    preset: PresetOpt = None,
    resume: ResumeOpt = False,
    overrides: dict[str, Any] | None = None,
    performance: dict[str, Any] | None = None,
) -> None:
    """Self-supervised pretraining of the encoder: side-pair (the siamese network) or a generic pretext."""
    with options_checked():
        config = resolve_config(preset, store, **(overrides or {}))
        speed = validated(Performance, performance or {}, "performance")
    history = load("sidepair.training.pretrain:run_pretrain")(config, out, resume=resume, performance=speed)
    if history and load("sidepair.training.distributed:is_main_process")():
        last = history[-1]
        shown = {
            "side-pair": f"held-out pair accuracy {last.get('val_acc', float('nan')):.3f}, "
            f"AUC {last.get('val_auc', float('nan')):.3f}",
            "restoration": f"held-out restoration error {last.get('val_error', float('nan')):.4f}, "
            f"share of the corruption undone {last.get('val_gain', float('nan')):.3f}",
            "contrastive-views": f"held-out view retrieval top-1 {last.get('val_top1', float('nan')):.3f}",
        }[config.task]
        typer.echo(f"pretrain {out}: {config.task}, {last['epoch']} epochs, {shown}")


@app.command()
@derived_options(overrides=TrainConfig, performance=Performance)
def train(
    store: StoreOpt,
    out: RunOpt,
    preset: PresetOpt = None,
    resume: ResumeOpt = False,
    overrides: dict[str, Any] | None = None,
    performance: dict[str, Any] | None = None,
) -> None:
    """U-Net segmentation training, from scratch or with the side-pair pretrained encoder."""
    with options_checked():
        config = resolve_train_config(preset, store, **(overrides or {}))
        speed = validated(Performance, performance or {}, "performance")
    history = load("sidepair.training.segment:run_train")(config, out, resume=resume, performance=speed)
    if history and load("sidepair.training.distributed:is_main_process")():
        best = max(history, key=lambda r: r["val_dice"])
        typer.echo(
            f"train {out}: {history[-1]['epoch']} epochs, best validation Dice {best['val_dice']:.3f} "
            f"(epoch {best['epoch']})"
        )


ResampleOpt = Annotated[
    Resample,
    typer.Option(help="Back to the scan's grid: nearest labels, or probabilities then argmax (nnU-Net)."),
]


@app.command()
def evaluate(
    run: Annotated[Path | None, typer.Option("--run", "-r", help="Segmentation run folder.")] = None,
    split: Annotated[Split, typer.Option(help="Split to score.")] = "test",
    checkpoint: Annotated[Which, typer.Option(help="Checkpoint to score.")] = "best",
    predictions: Annotated[
        Path | None, typer.Option(help="Instead of --run: a folder of <case_id>.nii.gz predictions to score.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="With --predictions: the dataset holding the references.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    resample: ResampleOpt = DEFAULT_RESAMPLE,
) -> None:
    """Per-case Dice, HD95 and NSD in each scan's own geometry: metrics.json, per_case.csv, cases.png."""
    if (run is None) == (predictions is None):
        raise UsageError("give either --run, or --predictions with --data")
    if predictions is not None:
        if data is None:
            raise UsageError("--predictions needs --data (the dataset with the reference labels)")
        summary = load("sidepair.evaluation.evaluate:evaluate_predictions")(predictions, data)
        where = predictions
    else:
        assert run is not None
        summary = load("sidepair.evaluation.evaluate:evaluate_run")(
            run, split, checkpoint, device, resample=resample
        )
        where = run / f"eval_{split}"
    m = summary["metrics"]["kidney_dice"]
    typer.echo(
        f"evaluate: {summary['cases']} cases, kidney Dice {m['mean']:.3f} ± {m['sd']:.3f} "
        f"(median {m['median']:.3f}); {summary['data']}; written to {where}"
    )


@app.command()
def predict(
    input_: Annotated[
        Path, typer.Option("--input", "-i", help="NIfTI file, folder of NIfTI files, or DICOM series folder.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .nii.gz file or folder.")],
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="Segmentation run folder, checkpoint, or exported .onnx/.ts."),
    ],
    labels: Annotated[
        OutputLabels, typer.Option(help="sides (1 right, 2 left), kidney (1) or kidney+tumour (1, 2).")
    ] = "sides",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int | None, typer.Option(help="Slices (2D) or windows (3D) per pass.")] = None,
    checkpoint: Annotated[Which, typer.Option(help="With a run folder: the checkpoint.")] = "best",
    series: Annotated[
        str | None, typer.Option(help="DICOM series UID, when the folder holds several.")
    ] = None,
    largest_component: Annotated[
        bool, typer.Option("--largest-component", help="Keep only the largest component per side.")
    ] = False,
    resample: ResampleOpt = DEFAULT_RESAMPLE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    side_check: SideCheckOpt = "warn",
) -> None:
    """Kidney masks for new scans, in each scan's own shape and affine, with a JSON of volumes beside."""
    # Bad input is refused before the model is loaded.
    load("sidepair.inference.predictor:plan_inputs")(input_, output, series)
    predictor = load("sidepair.inference.predictor:Predictor").load(
        model, device, checkpoint, resample=resample
    )
    predictor.batch_size = batch_size
    records = load("sidepair.inference.predictor:predict_paths")(
        input_,
        output,
        predictor,
        labels,
        overwrite=overwrite,
        largest_component=largest_component,
        series=series,
        scan_check=load("sidepair.qc.alarm:scan_alarm")(side_check),
    )
    for r in records:
        vol = ", ".join(f"{k} {v:.1f} mL" for k, v in r["volume_ml"].items())
        typer.echo(f"{r['output']}: {vol}")


ExperimentArg = Annotated[
    str | None,
    typer.Argument(
        help="Experiment YAML, or a bundled config: demo, controls, kits19-2d, kits19-paper-3d, real-2d."
    ),
]
DevicesOpt = Annotated[
    str | None,
    typer.Option(
        help="Spread the runs over these devices, comma-separated (cuda:0,cuda:1); replaces --jobs and "
        "--device."
    ),
]
RunsPerDeviceOpt = Annotated[
    int | None, typer.Option(help="With --devices: runs at the same time on each device (default 1).")
]
PlanOpt = Annotated[
    bool,
    typer.Option(
        "--plan",
        help="Print the grid, its optimiser steps and the estimated wall time here and on a GPU (from a "
        "few timed steps); train and write nothing.",
    ),
]
ExecutorOpt = Annotated[
    Literal["local", "slurm", "submitit-local"] | None,
    typer.Option(
        help="local (this machine), slurm (one submitit job per run; the [slurm] extra) or "
        "submitit-local (those jobs as processes here). Default: the config's."
    ),
]
PartitionOpt = Annotated[str | None, typer.Option(help="With --executor slurm: the partition.")]
TimeMinOpt = Annotated[
    int | None, typer.Option(help="With --executor slurm: time limit per job, minutes (requeued after).")
]
GpusPerJobOpt = Annotated[int | None, typer.Option(help="With --executor slurm: GPUs per job.")]
CpusPerJobOpt = Annotated[int | None, typer.Option(help="With --executor slurm: CPU cores per job.")]
MemGbOpt = Annotated[float | None, typer.Option(help="With --executor slurm: memory per job, GB.")]
StatusOpt = Annotated[
    Path | None,
    typer.Option(
        "--status",
        help="Print the state of every run of the experiment in this folder (waiting, running, "
        "interrupted, failed with its error's last line, finished); train nothing.",
    ),
]


@app.command()
def experiment(
    ctx: typer.Context,
    config: ExperimentArg = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Experiment folder (rerun to resume); not with --plan.")
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", "-d", help="Dataset folder replacing the config's data.paths (repeat)."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Runs at the same time (default: the config's).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (default: the config's).")] = None,
    devices: DevicesOpt = None,
    runs_per_device: RunsPerDeviceOpt = None,
    plan: PlanOpt = False,
    executor: ExecutorOpt = None,
    partition: PartitionOpt = None,
    time_min: TimeMinOpt = None,
    gpus_per_job: GpusPerJobOpt = None,
    cpus_per_job: CpusPerJobOpt = None,
    mem_gb: MemGbOpt = None,
    status: StatusOpt = None,
) -> None:
    """The whole comparison, SSL against scratch, and its report: prepare, pretrain, train, evaluate."""
    if status is not None:
        if config is not None or out is not None:
            raise UsageError("--status DIR reads the experiment folder alone; give no CONFIG or --out")
        found, states = load("sidepair.experiment.status:experiment_status")(status)
        typer.echo(load("sidepair.experiment.status:format_status")(status, found, states))
        return
    if config is None:  # optional only beside --status: otherwise click's own usage message
        raise click.UsageError("Missing argument 'CONFIG' (or give --status DIR).", ctx)
    if runs_per_device is not None and devices is None:
        raise UsageError("--runs-per-device goes with --devices")
    cluster = {"partition": partition, "time_min": time_min, "gpus_per_job": gpus_per_job}
    cluster |= {"cpus_per_job": cpus_per_job, "mem_gb": mem_gb}
    cluster = {k: v for k, v in cluster.items() if v is not None}
    if cluster and executor not in ("slurm", "submitit-local"):
        named = ", ".join(f"--{k.replace('_', '-')}" for k in cluster)
        raise UsageError(f"{named}: an option of the slurm executor; give --executor slurm")
    resolved = load_experiment_config(config, [str(d) for d in data] if data else None)
    given = {
        "jobs": jobs,
        "device": device,
        "devices": [d.strip() for d in devices.split(",")] if devices is not None else None,
        "runs_per_device": runs_per_device,
        "executor": executor,
        "slurm": {**resolved.slurm.model_dump(), **cluster} if cluster else None,
    }
    updates = {k: v for k, v in given.items() if v is not None}
    if updates:
        with options_checked():
            resolved = validated(ExperimentConfig, {**resolved.model_dump(), **updates}, "experiment")
    if plan:
        estimate = load("sidepair.experiment.estimate:estimate")(resolved)
        typer.echo(load("sidepair.experiment.estimate:format_plan")(estimate))
        return
    if out is None:
        raise UsageError("experiment needs --out (the experiment folder), or --plan")
    report = load("sidepair.experiment.runner:run_experiment")(resolved, out)
    typer.echo(f"report: {report}")


@app.command()
def export(
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            "-m",
            help="Segmentation run folder or checkpoint (nnunet: a side-pair pretraining run).",
        ),
    ],
    fmt: Annotated[
        ExportChoice,
        typer.Option(
            "--format",
            "-f",
            help="onnx or torchscript (a model predict runs alone), or nnunet (nnU-Net's network with the "
            "pretrained encoder, for nnUNetv2_train -pretrained_weights).",
        ),
    ] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default RUN/model.onnx or RUN/model.ts).")
    ] = None,
    checkpoint: Annotated[Which, typer.Option(help="Checkpoint to export.")] = "best",
    plans: Annotated[
        Path | None, typer.Option(help="With --format nnunet: the plans nnU-Net trains with.")
    ] = None,
    configuration: Annotated[
        str | None, typer.Option(help="With --format nnunet: the configuration nnU-Net trains.")
    ] = None,
) -> None:
    """Export a trained model to one ONNX or TorchScript file, or a pretrained encoder for nnU-Net."""
    if fmt == "nnunet":
        if plans is None or configuration is None or out is None:
            raise UsageError("--format nnunet needs --plans, --configuration and --out")
        done = load("sidepair.inference.export_nnunet:export_nnunet")(model, plans, configuration, out)
        typer.echo(
            f"export: {done['file']} ({done['bytes'] / 1e6:.1f} MB), nnU-Net's network with "
            f"{done['encoder_tensors']}/{done['encoder_tensors']} encoder tensors transferred; "
            f"nnUNetv2_train DATASET {configuration} FOLD -pretrained_weights {done['file']}"
        )
        return
    result = load("sidepair.inference.export:export_model")(model, fmt, out, checkpoint)
    typer.echo(
        f"export: {result['file']} ({result['bytes'] / 1e6:.1f} MB); max abs logit difference against "
        f"PyTorch {result['max_abs_diff']:.2e}"
    )


@app.command("check-sides")
def check_sides(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="NIfTI files, folders of them, DICOM series folders, slice folders (images/*.png) or PNGs.",
            show_default=False,
        ),
    ],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            help="Side-pair run or checkpoint with a side head; repeat to read several together "
            "(their logits averaged; default: the shipped model).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="CSV report to write; a JSON with every level beside it."),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(min=0.5, max=0.999, help="ok at or above this probability, flipped at or below 1 - it."),
    ] = DEFAULT_SIDE_THRESHOLD,
    pixel_spacing: Annotated[
        float | None,
        typer.Option(
            min=0.05,
            max=20.0,
            help="Pixel spacing (mm) of PNG slices no slices.json gives it for (else a 400 mm field of "
            "view, with a warning).",
        ),
    ] = None,
    convention: Annotated[
        Literal["radiological", "neurological"],
        typer.Option(help="PNG slices' left-right convention where slices.json gives no axis codes."),
    ] = "radiological",
    intensity: Annotated[
        tuple[float, float] | None,
        typer.Option(help="PNG slices: SLOPE INTERCEPT turning pixel values into HU (default 1 0)."),
    ] = None,
    slice_threshold: Annotated[
        float,
        typer.Option(min=0.5, max=0.999, help="The threshold of a single slice (one level of evidence)."),
    ] = DEFAULT_SLICE_THRESHOLD,
    group_by: Annotated[
        str | None,
        typer.Option(
            metavar="REGEX",
            help="Judge scans together whose file names give the same first capture group (or match), "
            "e.g. '^([^_]+)_'; default: slices.json's case, DICOM series UIDs.",
        ),
    ] = None,
    find_window: Annotated[
        bool,
        typer.Option(
            "--find-window/--no-find-window",
            help="Read scans whose values are not HU (exports through an unknown display window) through "
            "the window found from their fat and soft tissue; --no-find-window withholds them.",
        ),
    ] = True,
) -> None:
    """Check that each scan's left-right is believable (laterality QC). Exit 0: all ok; 3: any not ok."""
    load("sidepair.qc.groups:group_pattern")(group_by)  # a bad pattern is refused before anything loads
    # Bad input is refused before the model is loaded.
    load("sidepair.qc.scans:plan_scans")(list(inputs))
    checks = load("sidepair.qc.check:check_paths")(
        list(inputs),
        load("sidepair.qc.side_model:SideModel").load(model or None),
        threshold,
        pixel_spacing=pixel_spacing,
        convention=convention,
        intensity=intensity or (1.0, 0.0),
        slice_threshold=slice_threshold,
        group_by=group_by,
        find_windows=find_window,
    )
    for line in load("sidepair.qc.report:table")(checks):
        typer.echo(line)
    typer.echo(load("sidepair.qc.report:summary_line")(checks))
    if out is not None:
        csv_path, json_path = load("sidepair.qc.report:write_report")(checks, out)
        typer.echo(f"report: {csv_path}, {json_path}")
    if any(c.verdict != "ok" for c in load("sidepair.qc.check:final_verdicts")(checks)):
        raise typer.Exit(3)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (rerun to resume).")] = Path(
        "runs/demo"
    ),
    jobs: Annotated[int | None, typer.Option(help="Runs at the same time (default 2).")] = None,
) -> None:
    """The whole comparison on the built-in phantom (the bundled demo.yaml), then where the report is."""
    t0 = time.perf_counter()
    config = load_experiment_config("demo")
    if jobs is not None:
        config = config.model_copy(update={"jobs": jobs})
    report = load("sidepair.experiment.runner:run_experiment")(config, out)
    typer.echo(f"demo finished in {time.perf_counter() - t0:.0f} s; these are phantom results.")
    typer.echo(f"report: {report}")
    typer.echo(f"figures: {report.parent / 'figures'}; one row per run: {report.parent / 'results.csv'}")


USAGE = 2  # exit code of a wrong command line, as click's own usage errors


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning project errors into one-line messages."""
    args = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    verb = next((a for a in args if not a.startswith("-")), "")
    default_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, DataWarning):
            typer.echo(f"sidepair {verb}: warning: {_one_line(str(message))}", err=True)
        else:
            default_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        _run(argv, verb, debug)
    finally:
        warnings.showwarning = default_show  # the hook is the command's, not the caller's


def _run(argv: list[str] | None, verb: str, debug: bool) -> None:
    """Run the app; project errors become one line and an exit code (2 for a wrong command line)."""
    try:
        code = app(args=argv, prog_name="sidepair", standalone_mode=False)
        # Without standalone mode click returns an Exit's code (check-sides' 3) instead of exiting.
        if isinstance(code, int) and code:
            sys.exit(code)
    except SidepairError as exc:
        if debug:
            raise
        typer.echo(f"sidepair {verb}: error: {_one_line(str(exc))}", err=True)
        sys.exit(USAGE if isinstance(exc, UsageError) else 1)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("sidepair: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors, write-location errors, bugs
        # typer 0.29 vendors click, so its exceptions are known by their shape, not by `import click`.
        kind = type(exc).__name__
        if kind == "BadParameter" and callable(getattr(exc, "format_message", None)):
            # A value outside an option's choices or type: one line, like every other bad setting.
            typer.echo(f"sidepair {verb}: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(USAGE)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            # Folders made outside the atomic writers (run folders, the experiment's lock): one line too.
            typer.echo(f"sidepair {verb}: error: {exc.filename}: cannot write ({exc.strerror})", err=True)
            sys.exit(1)
        typer.echo(f"sidepair {verb}: internal error: {kind}: {exc} (rerun with --debug)", err=True)
        sys.exit(1)

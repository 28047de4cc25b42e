"""The ``sidepair`` command line: verbs in the order of work, each a thin call into the package.

Errors caused by input are printed as one line (``sidepair <verb>: error: ...``) with exit code 1 and
no traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sidepair import __version__
from sidepair.errors import SidepairError

app = typer.Typer(
    name="sidepair",
    help="Kidney segmentation in CT with a side-pair self-supervised encoder (arXiv:2101.05456).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state: dict[str, Any] = {"debug": False}


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
    _state["debug"] = debug


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
) -> None:
    """Write synthetic abdominal CT cases (KiTS layout) with kidney labels."""
    from sidepair.data.phantom import generate_phantom
    from sidepair.viz import montage_from_folder

    specs = generate_phantom(out, cases, seed, shape, masks_from, progress=True)
    typer.echo(f"wrote {len(specs)} phantom cases to {out}")
    if montage:
        png = montage_from_folder(out, out / "montage.png", max_cases=min(6, len(specs)))
        typer.echo(f"montage: {png}")


@app.command()
def prepare(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Dataset folder; repeat to combine several.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Store folder to write (or finish).")],
    fmt: Annotated[
        str, typer.Option("--format", help="auto, kits, nnunet, msd, totalseg, slices or dicom.")
    ] = "auto",
    preset: Annotated[str, typer.Option(help="Preset giving spacing and HU window.")] = "kits19-paper",
    label_map: Annotated[
        str | None,
        typer.Option(help="Label map name (kits19, kits23, sides-multilabel, totalseg) or a YAML file."),
    ] = None,
    spacing: Annotated[
        tuple[float, float, float] | None,
        typer.Option(help="Override the preset's spacing Z Y X (mm); 0 keeps an axis."),
    ] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/val/test split.")] = 0,
    convention: Annotated[
        str,
        typer.Option(
            help="Slice folders: radiological or neurological (when slices.json gives no axis codes)."
        ),
    ] = "radiological",
) -> None:
    """Orient, resample, window and normalise a dataset into a memory-mapped store."""
    from sidepair.config import get_label_map, get_preset, load_yaml
    from sidepair.data.formats import open_dataset
    from sidepair.data.store import prepare as run_prepare

    settings = get_preset(preset).preprocess
    if spacing is not None:
        settings = settings.model_copy(update={"spacing_zyx": tuple(s if s > 0 else None for s in spacing)})
    lm = None
    if label_map is not None:
        lm = get_label_map(load_yaml(label_map) if label_map.endswith((".yaml", ".yml")) else label_map)
    datasets = []
    for folder in data:
        options: dict[str, Any] = {}
        if fmt == "slices" or (fmt == "auto" and (folder / "images").is_dir()):
            options["convention"] = convention
        datasets.append(open_dataset(folder, fmt, lm, **options))
    store = run_prepare(
        datasets,
        out,
        settings,
        split_seed=split_seed,
        progress=True,
        format_options={"convention": convention},
    )
    from sidepair.data.store import Store

    s = Store(store)
    unlabelled = sum(not c["labelled"] for c in s.cases.values())
    names = "+".join(d.name for d in datasets)
    typer.echo(
        f"store {store}: {len(s)} cases ({names} format, {unlabelled} unlabelled), "
        f"train {len(s.split('train'))} / val {len(s.split('val'))} / test {len(s.split('test'))}"
    )


PrecisionOpt = Annotated[str, typer.Option(help="auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32.")]
ChannelsLastOpt = Annotated[
    bool, typer.Option("--channels-last", help="Channels-last memory layout for the network and its inputs.")
]
AugmentOpt = Annotated[
    bool | None,
    typer.Option(
        "--augment/--no-augment",
        help="On-the-fly MONAI augmentation (rotation, scaling, intensity; no flips). Default: the preset's.",
    ),
]
CompileOpt = Annotated[bool, typer.Option("--compile", help="torch.compile the training network.")]
CudnnOpt = Annotated[
    bool,
    typer.Option("--cudnn-benchmark/--no-cudnn-benchmark", help="cuDNN autotuning of convolutions (CUDA)."),
]


def performance_options(precision: str, channels_last: bool, compile_: bool, cudnn_benchmark: bool):
    """The :class:`~sidepair.training.performance.Performance` of the command-line flags."""
    from sidepair.config import validated
    from sidepair.training.performance import Performance

    flags = {"precision": precision, "channels_last": channels_last, "compile": compile_}
    return validated(Performance, {**flags, "cudnn_benchmark": cudnn_benchmark}, "performance")


@app.command()
def pretrain(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store written by `sidepair prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    preset: Annotated[str, typer.Option(help="Defaults: kits19-paper, fast-2d or demo.")] = "kits19-paper",
    sections: Annotated[str | None, typer.Option(help="masked (paper), bbox or half (no labels).")] = None,
    dims: Annotated[int | None, typer.Option(help="2 (axial slices) or 3 (volumes).")] = None,
    loss: Annotated[str | None, typer.Option(help="contrastive (paper) or bce.")] = None,
    section_size: Annotated[
        list[int] | None, typer.Option(help="Section size, one value per axis (repeat the option).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per batch.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    pairs_per_epoch: Annotated[int | None, typer.Option(help="Training pairs per epoch.")] = None,
    val_pairs: Annotated[int | None, typer.Option(help="Held-out validation pairs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed: model init, pairs and crops.")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    augment: AugmentOpt = None,
    precision: PrecisionOpt = "auto",
    channels_last: ChannelsLastOpt = False,
    compile_: CompileOpt = False,
    cudnn_benchmark: CudnnOpt = True,
) -> None:
    """Side-pair self-supervised pretraining of the encoder (the siamese network)."""
    from sidepair.pretrain import resolve_config, run_pretrain
    from sidepair.training.distributed import is_main_process

    config = resolve_config(
        preset,
        store,
        sections=sections,
        dims=dims,
        loss=loss,
        section_size=tuple(section_size) if section_size else None,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        pairs_per_epoch=pairs_per_epoch,
        val_pairs=val_pairs,
        augment=augment,
        seed=seed,
        workers=workers,
        device=device,
    )
    performance = performance_options(precision, channels_last, compile_, cudnn_benchmark)
    history = run_pretrain(config, out, resume=resume, performance=performance)
    if history and is_main_process():
        last = history[-1]
        typer.echo(
            f"pretrain {out}: {last['epoch']} epochs, held-out pair accuracy {last['val_acc']:.3f}, "
            f"AUC {last['val_auc']:.3f}"
        )


@app.command()
def train(
    store: Annotated[Path, typer.Option("--store", "-s", help="Store written by `sidepair prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    init: Annotated[
        str, typer.Option(help="scratch, or a pretraining checkpoint (checkpoint_best.pt).")
    ] = "scratch",
    preset: Annotated[str, typer.Option(help="Defaults: kits19-paper, fast-2d or demo.")] = "kits19-paper",
    freeze_encoder: Annotated[bool, typer.Option("--freeze-encoder", help="Keep the encoder fixed.")] = False,
    unfreeze_after: Annotated[
        int | None, typer.Option(help="With --freeze-encoder: unfreeze after E epochs.")
    ] = None,
    label_fraction: Annotated[float, typer.Option(help="Fraction of labelled training cases used.")] = 1.0,
    labels: Annotated[str, typer.Option(help="kidney, kidney+tumour or sides (right/left).")] = "kidney",
    loss: Annotated[str, typer.Option(help="dicece (MONAI DiceCE) or paper (0.2 CE + 0.8 Dice).")] = "dicece",
    patch_size: Annotated[
        list[int] | None, typer.Option(help="Patch size, one value per axis (repeat).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    samples_per_epoch: Annotated[int | None, typer.Option(help="Training patches per epoch.")] = None,
    seed: Annotated[int, typer.Option(help="Seed: init, label subset and patches.")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    augment: AugmentOpt = None,
    precision: PrecisionOpt = "auto",
    channels_last: ChannelsLastOpt = False,
    compile_: CompileOpt = False,
    cudnn_benchmark: CudnnOpt = True,
) -> None:
    """U-Net segmentation training, from scratch or with the side-pair pretrained encoder."""
    from sidepair.segmentation import resolve_train_config, run_train
    from sidepair.training.distributed import is_main_process

    config = resolve_train_config(
        preset,
        store,
        init=init,
        freeze_encoder=freeze_encoder,
        unfreeze_after=unfreeze_after,
        label_fraction=label_fraction,
        labels=labels,
        loss=loss,
        patch_size=tuple(patch_size) if patch_size else None,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        samples_per_epoch=samples_per_epoch,
        augment=augment,
        seed=seed,
        workers=workers,
        device=device,
    )
    performance = performance_options(precision, channels_last, compile_, cudnn_benchmark)
    history = run_train(config, out, resume=resume, performance=performance)
    if history and is_main_process():
        best = max(history, key=lambda r: r["val_dice"])
        typer.echo(
            f"train {out}: {history[-1]['epoch']} epochs, best validation Dice {best['val_dice']:.3f} "
            f"(epoch {best['epoch']})"
        )


@app.command()
def evaluate(
    run: Annotated[Path | None, typer.Option("--run", "-r", help="Segmentation run folder.")] = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    predictions: Annotated[
        Path | None, typer.Option(help="Instead of --run: a folder of <case_id>.nii.gz predictions to score.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="With --predictions: the dataset holding the references.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Per-case Dice, HD95 and NSD in each scan's own geometry: metrics.json, per_case.csv, cases.png."""
    from sidepair.errors import ConfigError
    from sidepair.evaluation.evaluate import evaluate_predictions, evaluate_run

    if (run is None) == (predictions is None):
        raise ConfigError("give either --run, or --predictions with --data")
    if predictions is not None:
        if data is None:
            raise ConfigError("--predictions needs --data (the dataset with the reference labels)")
        summary = evaluate_predictions(predictions, data)
        where = predictions
    else:
        summary = evaluate_run(run, split, checkpoint, device)  # type: ignore[arg-type]
        where = run / f"eval_{split}"  # type: ignore[operator]
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
        str, typer.Option(help="sides (1 right, 2 left), kidney (1) or kidney+tumour (1, 2).")
    ] = "sides",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "cpu",
    batch_size: Annotated[int | None, typer.Option(help="Slices (2D) or windows (3D) per pass.")] = None,
    checkpoint: Annotated[str, typer.Option(help="With a run folder: best or last.")] = "best",
    series: Annotated[
        str | None, typer.Option(help="DICOM series UID, when the folder holds several.")
    ] = None,
    largest_component: Annotated[
        bool, typer.Option("--largest-component", help="Keep only the largest component per side.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
) -> None:
    """Kidney masks for new scans, in each scan's own shape and affine, with a JSON of volumes beside."""
    from sidepair.errors import ConfigError
    from sidepair.prediction import Predictor, plan_inputs, predict_paths

    if labels not in ("sides", "kidney", "kidney+tumour"):
        raise ConfigError(f"--labels must be sides, kidney or kidney+tumour, got {labels!r}")
    plan_inputs(input_, output, series)  # bad input is refused before the model is loaded
    predictor = Predictor.load(model, device, checkpoint)
    predictor.batch_size = batch_size
    records = predict_paths(
        input_,
        output,
        predictor,
        labels,  # type: ignore[arg-type]
        overwrite=overwrite,
        largest_component=largest_component,
        series=series,
    )
    for r in records:
        vol = ", ".join(f"{k} {v:.1f} mL" for k, v in r["volume_ml"].items())
        typer.echo(f"{r['output']}: {vol}")


@app.command()
def experiment(
    config: Annotated[
        str, typer.Argument(help="Experiment YAML, or a bundled config: demo, kits19-2d, kits19-paper-3d.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Experiment folder (rerun to resume).")],
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", "-d", help="Dataset folder replacing the config's data.paths (repeat)."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Runs at the same time (default: the config's).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (default: the config's).")] = None,
) -> None:
    """The whole comparison, SSL against scratch, and its report: prepare, pretrain, train, evaluate."""
    from sidepair.experiment import load_experiment_config, run_experiment

    resolved = load_experiment_config(config, [str(d) for d in data] if data else None)
    updates = {k: v for k, v in {"jobs": jobs, "device": device}.items() if v is not None}
    if updates:
        from sidepair.config import validated
        from sidepair.experiment.config import ExperimentConfig

        resolved = validated(ExperimentConfig, {**resolved.model_dump(), **updates}, "experiment")
    report = run_experiment(resolved, out)
    typer.echo(f"report: {report}")


@app.command()
def export(
    model: Annotated[Path, typer.Option("--model", "-m", help="Segmentation run folder or checkpoint.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx or torchscript.")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default RUN/model.onnx or RUN/model.ts).")
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
) -> None:
    """Export a trained model to one ONNX or TorchScript file that `predict` can run alone."""
    from sidepair.export import export_model

    result = export_model(model, fmt, out, checkpoint)  # type: ignore[arg-type]
    typer.echo(
        f"export: {result['file']} ({result['bytes'] / 1e6:.1f} MB); max abs logit difference against "
        f"PyTorch {result['max_abs_diff']:.2e}"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (rerun to resume).")] = Path(
        "runs/demo"
    ),
    jobs: Annotated[int | None, typer.Option(help="Runs at the same time (default 2).")] = None,
) -> None:
    """The whole comparison on the built-in phantom (the bundled demo.yaml), then where the report is."""
    import time

    from sidepair.experiment import load_experiment_config, run_experiment

    t0 = time.perf_counter()
    config = load_experiment_config("demo")
    if jobs is not None:
        config = config.model_copy(update={"jobs": jobs})
    report = run_experiment(config, out)
    typer.echo(f"demo finished in {time.perf_counter() - t0:.0f} s; these are phantom results.")
    typer.echo(f"report: {report}")
    typer.echo(f"figures: {report.parent / 'figures'}; one row per run: {report.parent / 'results.csv'}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning project errors into one-line messages."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    verb = next((a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")), "")
    try:
        app(args=argv, prog_name="sidepair", standalone_mode=False)
    except SidepairError as exc:
        if debug:
            raise
        typer.echo(f"sidepair {verb}: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("sidepair: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors, write-location errors, bugs
        from sidepair.atomic import WRITE_ERRNOS

        # Usage errors (typer 0.29 vendors click, so no `import click`): click's own message and code.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            # Folders made outside the atomic writers (run folders, the experiment's lock): one line too.
            typer.echo(f"sidepair {verb}: error: {exc.filename}: cannot write ({exc.strerror})", err=True)
            sys.exit(1)
        typer.echo(
            f"sidepair {verb}: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True
        )
        sys.exit(1)

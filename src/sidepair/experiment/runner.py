"""Run an experiment: data, pretraining per proxy variant, the segmentation grid, evaluation, report.

Every stage is resumable. A finished run (its last checkpoint at the final epoch and loadable, its
config unchanged, its evaluation written from its best checkpoint) is skipped; an unfinished one
continues from its last checkpoint. Runs can train in parallel processes, on one device (``jobs``) or
spread over several (``devices``); see ``engines``. What one job does is ``jobs.run_job``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from sidepair.atomic import write_json, write_text
from sidepair.config import (
    PreprocessSettings,
    PretrainSettings,
    SegmentSettings,
    get_label_map,
    get_preset,
    set_fields,
)
from sidepair.data.formats import open_dataset
from sidepair.data.grid import store_settings
from sidepair.data.phantom import generate_phantom, write_slices
from sidepair.data.prepare import StoreSettings, dataset_record, prepare
from sidepair.data.store import Store
from sidepair.devices import resolve_device
from sidepair.errors import SidepairError, StoreError
from sidepair.experiment.config import ExperimentConfig
from sidepair.experiment.engines import LocalEngine, SubmititEngine, engine_for
from sidepair.experiment.jobs import evaluation_finished, job_state, training_finished
from sidepair.experiment.plan import REFERENCE, PretrainSpec, RunSpec, plan_pretraining, plan_runs
from sidepair.experiment.report import write_report
from sidepair.training.pretrain import resolve_config
from sidepair.training.segment_config import resolve_train_config

LOCK = ".experiment.lock"


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "w")  # noqa: SIM115 - held for the whole experiment
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SidepairError(f"{out}: another experiment is running in this folder") from None
        yield
    finally:
        handle.close()


class _State:
    """``DIR/experiment.json``: wall time per stage, summed over the invocations that did work."""

    def __init__(self, out: Path) -> None:
        self.path = out / "experiment.json"
        self.data: dict[str, Any] = {"stages": {}, "invocations": 0}
        if self.path.exists():
            with contextlib.suppress(ValueError, OSError):
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
        self.data["invocations"] = int(self.data.get("invocations", 0)) + 1

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        stages = self.data.setdefault("stages", {})
        stages[name] = float(stages.get(name, 0.0)) + time.perf_counter() - t0
        write_json(self.path, self.data)


def _store_settings(
    config: ExperimentConfig, architecture: dict[str, Any] | None = None
) -> PreprocessSettings:
    """The preprocessing of the experiment's store, worked out before any data is written.

    ``architecture`` (``architecture``, ``plans``, ``configuration``) replaces the experiment's: the
    reference arm's store is preprocessed as nnU-Net's plans say.

    Raises:
        ConfigError: nnU-Net not installed, or its plans file missing or not plans.
        DataError: A configuration the plans do not have.
    """
    arch = architecture or {
        "architecture": config.architecture,
        "plans": config.plans,
        "configuration": config.configuration,
    }
    settings = get_preset(config.preset).preprocess
    updates: dict[str, Any] = {}
    if config.prepare.spacing_zyx is not None:
        updates["spacing_zyx"] = config.prepare.spacing_zyx
    if config.prepare.window is not None:
        updates["window"] = config.prepare.window
    if config.prepare.antialias is not None:
        updates["antialias"] = config.prepare.antialias
    if updates:
        settings = type(settings).model_validate({**settings.model_dump(), **updates})
    return store_settings(settings, arch["architecture"], arch["plans"], arch["configuration"])


def _prepare_data(config: ExperimentConfig, out: Path, progress: bool, settings: PreprocessSettings) -> Path:
    """Generate the phantom if asked, then write (or finish) the store named by its fingerprint."""
    if config.data.phantom is not None:
        ph = config.data.phantom
        folder = out / "phantom"
        if not (folder / "phantom.json").exists() and ph.layout == "slices":
            write_slices(folder, ph.cases, ph.seed, ph.shape, ph.slices_per_case, progress=progress)
        elif not (folder / "phantom.json").exists():
            masks = Path(ph.masks_from) if ph.masks_from else None
            generate_phantom(folder, ph.cases, ph.seed, ph.shape, masks, progress=progress)
        roots, fmt = [folder], ph.layout
    else:
        roots, fmt = [Path(p) for p in config.data.paths], config.data.format
    label_map = get_label_map(config.data.label_map) if config.data.label_map is not None else None
    data = config.data
    options = {"convention": data.convention, "intensity": data.intensity, "spacing": data.pixel_spacing}
    datasets = [open_dataset(root, fmt, label_map, slice_options=options) for root in roots]
    split = config.prepare
    fingerprint = StoreSettings(
        settings,
        [dataset_record(d, options) for d in datasets],
        split.split_seed,
        split.val_fraction,
        split.test_fraction,
    ).fingerprint()
    return prepare(
        datasets,
        out / f"store_{fingerprint}",
        settings,
        split_seed=split.split_seed,
        val_fraction=split.val_fraction,
        test_fraction=split.test_fraction,
        progress=progress,
        format_options=options,
        preset=config.preset,
        accept_negatives=data.accept_negatives,
    )


def _pretrain_config(config: ExperimentConfig, store: Path, spec: PretrainSpec) -> dict[str, Any]:
    v = next(v for v in config.pretrain if v.name == spec.variant)
    hyper = {k: val for k, val in set_fields(v).items() if k in PretrainSettings.model_fields}
    resolved = resolve_config(
        config.preset,
        store,
        **hyper,
        **config.architecture_fields(),
        label_cases=spec.label_cases,
        seed=v.seed,
        device=config.device,
    )
    return json.loads(resolved.model_dump_json())


def _train_config(
    config: ExperimentConfig, store: Path, out: Path, run: RunSpec, reference_store: Path | None = None
) -> dict[str, Any]:
    grid = config.segmentation
    init = "scratch" if run.pretrain is None else str(out / "pretrain" / run.pretrain / "checkpoint_best.pt")
    hyper = {k: v for k, v in set_fields(grid).items() if k in SegmentSettings.model_fields}
    architecture = config.architecture_fields()
    if run.init == REFERENCE:
        if reference_store is None:
            raise SidepairError(f"{run.name}: the reference arm's store was not prepared")
        store, architecture = reference_store, config.reference_fields()
    resolved = resolve_train_config(
        config.preset,
        store,
        **hyper,
        **architecture,
        init=init,
        freeze_encoder=run.mode in ("frozen", "frozen-then-unfrozen"),
        unfreeze_after=grid.unfreeze_after if run.mode == "frozen-then-unfrozen" else None,
        label_fraction=run.fraction,
        seed=run.seed,
        device=config.device,
    )
    return json.loads(resolved.model_dump_json())


def run_experiment(config: ExperimentConfig, out: str | Path, progress: bool = True) -> Path:
    """Run (or finish) the experiment in ``out`` and write its report.

    Args:
        config: The validated experiment config.
        out: Experiment folder.
        progress: Progress bars and a line per finished run.

    Returns:
        The path of ``report.md``.

    Raises:
        SidepairError: Bad data, a run made with other settings, or another experiment in ``out``.
    """
    out = Path(out)
    for name in sorted(set(config.device_slots())):
        resolve_device(name)  # a device this machine lacks is refused before anything is written
    # Both stores' preprocessing (nnU-Net's plans read) before the phantom or a store is written.
    settings = _store_settings(config)
    reference = _store_settings(config, config.reference_fields()) if config.reference else None
    with _exclusive(out):
        state = _State(out)
        with state.stage("data"):
            store_path = _prepare_data(config, out, progress, settings)
            reference_store = _prepare_reference(config, out, progress, Store(store_path), reference)
        write_text(
            out / "experiment.yaml", yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False)
        )
        store = Store(store_path)
        if not store.labelled(config.evaluation.split):
            raise StoreError(f"{store_path}: no labelled cases in split {config.evaluation.split!r}")
        executor = engine_for(config, out)
        try:
            with state.stage("pretrain"):
                jobs = _pretrain_jobs(config, out, store, progress)
                executor.run(jobs, lambda r: print(f"{r['name']}: done") if progress else None)
            runs = plan_runs(config, store)
            todo = _segment_jobs(config, out, store, runs, progress, reference_store)
            with state.stage("segmentation"):
                _run_segmentation(executor, config, len(runs), todo, progress)
        finally:
            executor.close()
        with state.stage("report"):
            report = write_report(config, out, store, runs, state.data["stages"])
        write_json(state.path, state.data)
        return report


def _pretrain_jobs(config: ExperimentConfig, out: Path, store: Store, progress: bool) -> list[dict[str, Any]]:
    """One job per pretraining of the plan (a finished one resumes to nothing)."""
    return [
        {
            "kind": "pretrain",
            "name": f"pretrain-{spec.name}",
            "config": _pretrain_config(config, store.path, spec),
            "run_dir": str(_idle(out / "pretrain" / spec.name)),
            "performance": config.performance.model_dump(),
            "progress": progress,
            "parallel": _parallel(config),
        }
        for spec in plan_pretraining(config, store)
    ]


def _parallel(config: ExperimentConfig) -> bool:
    """Whether runs train beside each other (progress lines get the run's name, no per-batch bars)."""
    return config.executor != "local" or len(config.device_slots()) > 1


def _idle(run_dir: Path) -> Path:
    """``run_dir``, unless a job still runs in it (a job of an earlier command, on this host or another).

    Raises:
        SidepairError: Naming the folder, where and how to go on.
    """
    state, detail = job_state(run_dir, finished=False)
    if state == "running":
        raise SidepairError(
            f"{run_dir}: a job still runs in it ({detail}); wait for it to end, or delete its job.json if "
            "that job is gone"
        )
    return run_dir


def _prepare_reference(
    config: ExperimentConfig, out: Path, progress: bool, store: Store, settings: PreprocessSettings | None
) -> Path | None:
    """The reference arm's store (nnU-Net's preprocessing), checked to hold the same split as ``store``.

    Args:
        config: The experiment config.
        out: Experiment folder.
        progress: Progress bars.
        store: The experiment's own store.
        settings: The reference store's preprocessing (None: the experiment has no reference arm).

    Raises:
        StoreError: A case in another split, or missing: the arms would not be tested on the same cases.
    """
    if settings is None:
        return None
    path = _prepare_data(config, out, progress, settings)
    reference = Store(path)
    for split in ("train", "val", "test"):
        if sorted(reference.labelled(split)) != sorted(store.labelled(split)):
            raise StoreError(
                f"{path}: the reference arm's {split} split differs from {store.path}'s; the arms must "
                "read and be tested on the same cases"
            )
    return path


def _segment_jobs(
    config: ExperimentConfig,
    out: Path,
    store: Store,
    runs: list[Any],
    progress: bool,
    reference_store: Path | None = None,
) -> list[dict[str, Any]]:
    """One job per segmentation run not yet trained and evaluated."""
    split, which, resample = config.evaluation.split, config.evaluation.checkpoint, config.evaluation.resample
    todo = []
    for run in runs:
        run_dir = out / "runs" / run.name
        resolved = _train_config(config, store.path, out, run, reference_store)
        if training_finished(run_dir, resolved) and evaluation_finished(run_dir, split, which, resample):
            continue
        _idle(run_dir)
        todo.append(
            {
                "kind": "segment",
                "name": run.name,
                "config": resolved,
                "run_dir": str(run_dir),
                "split": split,
                "checkpoint": which,
                "resample": resample,
                "device": config.device,
                "performance": config.performance.model_dump(),
                "progress": progress,
                "parallel": _parallel(config),
            }
        )
    return todo


def _run_segmentation(
    executor: LocalEngine | SubmititEngine,
    config: ExperimentConfig,
    total: int,
    todo: list[dict[str, Any]],
    progress: bool,
) -> None:
    """Run the segmentation jobs, with a bar over all runs and a line per finished one."""
    done = total - len(todo)
    if progress:
        print(
            f"experiment {config.name}: {total} segmentation runs, {done} already finished, "
            f"{config.jobs} at a time"
        )
    bar = tqdm(
        total=total, initial=done, desc="experiment runs", unit="run", disable=None if progress else True
    )
    count = [done]

    def finished(result: dict[str, Any]) -> None:
        count[0] += 1
        bar.update(1)
        if progress:
            bar.write(
                f"[{count[0]}/{total}] {result['name']}: {config.evaluation.split} Dice {result['dice']:.3f}"
            )

    executor.run(todo, finished)
    bar.close()

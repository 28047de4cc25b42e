"""Shared fixtures: small phantoms, synthetic NIfTI writers and the real data folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from sidepair.data.phantom import generate_phantom

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SIDEPAIR_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (``../shared/data``); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SIDEPAIR_SHARED_DATA to run these tests)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight phantom cases of 96 x 96 x 48 voxels, seed 7."""
    out = tmp_path_factory.mktemp("phantom")
    generate_phantom(out, cases=8, seed=7, shape=(96, 96, 48))
    return out


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None, codes: bool = True) -> Path:
    """Write a NIfTI file; ``codes=False`` leaves qform/sform codes at 0 (a missing affine)."""
    affine = np.eye(4) if affine is None else affine
    if codes:
        img = nib.Nifti1Image(array, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    else:
        img = nib.Nifti1Image(array, None)  # nibabel then writes qform_code = sform_code = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def two_kidney_volume(
    shape=(48, 40, 32), spacing=(3.0, 3.0, 4.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RAS HU volume: a body ellipse and two spherical 'kidneys' (right at +x); image, label, affine."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing)
    idx = np.indices(shape).astype(float)
    world = [idx[a] * spacing[a] + affine[a, 3] for a in range(3)]
    body = (world[0] / 65) ** 2 + (world[1] / 50) ** 2 <= 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for cx in (35.0, -35.0):
        kidney = (world[0] - cx) ** 2 + world[1] ** 2 + world[2] ** 2 <= 15**2
        label[kidney] = 1
        image[kidney] = 150.0
    return image, label, affine


@pytest.fixture
def kits_case(tmp_path: Path):
    """Factory writing a KiTS-layout dataset with one synthetic case; returns the dataset folder."""

    def make(image=None, label=None, affine=None, label_affine=None, name="case_00000") -> Path:
        img, lab, aff = two_kidney_volume()
        image = img if image is None else image
        label = lab if label is None else label
        affine = aff if affine is None else affine
        root = tmp_path / "kits"
        write_nifti(
            root / name / "imaging.nii.gz",
            image.astype(np.int16) if image.dtype != np.float32 else image,
            affine,
        )
        if label is not False:
            write_nifti(
                root / name / "segmentation.nii.gz", label, affine if label_affine is None else label_affine
            )
        return root

    return make


def write_dicom_series(
    folder: Path,
    volume_zyx: np.ndarray,
    spacing=(1.0, 1.0, 2.0),
    origin=(0.0, 0.0, 0.0),
    series_uid: str = "1.2.826.0.1.3680043.2.1125.1.1",
) -> Path:
    """Write an int16 volume (z, y, x) as a CT DICOM series with SimpleITK (axial, LPS origin)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume_zyx.shape[0]):
        sl = sitk.GetImageFromArray(volume_zyx[k].astype(np.int16))
        sl.SetSpacing((spacing[0], spacing[1]))
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.9",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(str(v) for v in (origin[0], origin[1], origin[2] + k * spacing[2])),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": str(spacing[2]),
            "0028|1052": "0",
            "0028|1053": "1",
        }
        for key, value in tags.items():
            sl.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice_{series_uid[-3:]}_{k:03d}.dcm"))
        writer.Execute(sl)
    return folder


@pytest.fixture(scope="session")
def small_store(small_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small phantom prepared at 4 mm isotropic (train 5 / val 1 / test 2 cases)."""
    from sidepair.config import PreprocessSettings
    from sidepair.data.formats import open_dataset
    from sidepair.data.prepare import prepare

    out = tmp_path_factory.mktemp("small_store") / "store"
    return prepare(open_dataset(small_phantom), out, PreprocessSettings(spacing_zyx=(4.0, 4.0, 4.0)))


def tiny_pretrain_config(store: Path, **overrides):
    """A one-epoch masked pretraining config with a tiny encoder, on CPU."""
    from sidepair.training.pretrain import resolve_config

    settings = {
        "sections": "masked",
        "section_size": (24, 24),
        "epochs": 1,
        "pairs_per_epoch": 16,
        "val_pairs": 8,
        "batch_size": 8,
        "device": "cpu",
        "channels": (4, 8, 16),
        "strides": (1, 2, 2),
    }
    return resolve_config("fast-2d", store, **{**settings, **overrides})


@pytest.fixture(scope="session")
def pretrained(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch masked pretraining run on the small store (tiny encoder); its best checkpoint."""
    from sidepair.training.pretrain import run_pretrain

    out = tmp_path_factory.mktemp("pre") / "run"
    config = tiny_pretrain_config(small_store)
    run_pretrain(config, out, progress=False)
    return out / "checkpoint_best.pt"


def tiny_train_config(store: Path, **overrides):
    """A two-epoch 2D segmentation config with a tiny encoder, on CPU."""
    from sidepair.training.segment_config import resolve_train_config

    settings = {
        "patch_size": (32, 32),
        "epochs": 2,
        "batch_size": 8,
        "samples_per_epoch": 32,
        "device": "cpu",
        "channels": (4, 8, 16),
        "strides": (1, 2, 2),
    }
    return resolve_train_config("fast-2d", store, **{**settings, **overrides})


@pytest.fixture(scope="session")
def seg_run(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-epoch 2D segmentation run on the small store (tiny encoder), for prediction and export."""
    from sidepair.training.segment import run_train

    out = tmp_path_factory.mktemp("seg") / "run"
    config = tiny_train_config(small_store)
    run_train(config, out, progress=False)
    return out


# Command-line options of tiny CPU runs on the small store (tests of errors and interruptions).
TINY_TRAIN_ARGS = [
    "--preset",
    "fast-2d",
    "--epochs",
    "1",
    "--samples-per-epoch",
    "8",
    "--batch-size",
    "8",
    "--patch-size",
    "32",
    "--patch-size",
    "32",
    "--device",
    "cpu",
]
TINY_PRETRAIN_ARGS = [
    "--preset",
    "fast-2d",
    "--sections",
    "masked",
    "--section-size",
    "24",
    "--section-size",
    "24",
    "--epochs",
    "1",
    "--pairs-per-epoch",
    "8",
    "--val-pairs",
    "8",
    "--batch-size",
    "8",
    "--device",
    "cpu",
]


def _cli_child(args: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """In a child forked from the preloaded server: the caller's environment and folder, output to files,
    then the console entry point (its ``SystemExit`` becomes the child's exit code)."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own stdout
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["sidepair", *args]
    from sidepair.cli import main

    main(args)


_SERVER: list[Any] = []


# The CLI imports its verbs' implementations when a verb runs (sidepair.lazy); the server imports them
# up front, so that a forked child finds torch and MONAI loaded.
PRELOAD = [
    "sidepair.cli",
    "sidepair.api",
    "sidepair.data.montage",
    "sidepair.data.phantom",
    "sidepair.data.phantom_nnunet",
    "sidepair.experiment.estimate",
    "sidepair.experiment.runner",
    "sidepair.experiment.status",
    "sidepair.inference.export",
    "sidepair.inference.export_nnunet",
    "sidepair.qc.check",
    "sidepair.qc.report",
]


def _cli_context() -> Any:
    """A forkserver that has imported the CLI and its verbs (torch, MONAI) once: a child starts in
    milliseconds, not the ~9 s of a fresh interpreter's imports, and is still its own process (exit code,
    streams, state)."""
    import multiprocessing

    if not _SERVER:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _SERVER.append(ctx)
    return _SERVER[0]


def run_cli(
    *args: Any,
    fresh: bool = False,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``python -m sidepair ARGS`` in a child process, as a user runs it.

    Args:
        *args: The command line.
        fresh: A new interpreter (``python -m sidepair``); by default a child forked from a server that
            imported the CLI already (the same entry point, without the start-up imports).
        cwd: Its working folder (default: this one).
        env: Its whole environment (default: this process's).
        timeout: Seconds before the child is killed.
    """
    argv = [str(a) for a in args]
    environment = dict(os.environ if env is None else env)
    folder = str(cwd or os.getcwd())
    if fresh:
        return subprocess.run(
            [sys.executable, "-m", "sidepair", *argv],
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            cwd=folder,
            env=environment,
            timeout=timeout,
        )
    with tempfile.TemporaryDirectory(prefix="sidepair-cli-") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        child = _cli_context().Process(
            target=_cli_child, args=(argv, environment, folder, str(out), str(err))
        )
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["sidepair", *argv], timeout)
        code = int(child.exitcode or 0)
        return subprocess.CompletedProcess(["sidepair", *argv], code, _text(out), _text(err))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts (an experiment's results.csv or per_case.csv)."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def nnunet_command(name: str, *args: str, env: dict[str, str]) -> None:
    """Run one of nnU-Net's commands (installed beside this Python), failing with its output."""
    import subprocess
    import sys

    exe = Path(sys.executable).parent / name
    done = subprocess.run(
        [str(exe), *args], env={**os.environ, **env}, capture_output=True, encoding="utf-8", errors="replace"
    )
    assert done.returncode == 0, (
        f"{name} {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def nnunet_planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-case phantom in nnU-Net's raw layout, written IPL, fingerprinted, planned and preprocessed (2d)
    by nnU-Net's own commands. Skips without the [nnunet] extra."""
    pytest.importorskip("nnunetv2", reason="the [nnunet] extra is not installed")
    from sidepair.data.phantom_nnunet import write_nnunet

    root = tmp_path_factory.mktemp("nnunet")
    env = {name: str(root / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    raw = root / "nnUNet_raw" / "Dataset501_Phantom"
    write_nnunet(raw, cases=4, seed=5, shape=(64, 64, 32), axcodes="IPL")
    nnunet_command("nnUNetv2_extract_fingerprint", "-d", "501", "-np", "1", env=env)
    nnunet_command("nnUNetv2_plan_experiment", "-d", "501", env=env)
    nnunet_command("nnUNetv2_preprocess", "-d", "501", "-c", "2d", "-np", "1", env=env)
    pre = root / "nnUNet_preprocessed" / "Dataset501_Phantom"
    return {"raw": raw, "plans": pre / "nnUNetPlans.json", "preprocessed": pre / "nnUNetPlans_2d", **env}


@pytest.fixture(scope="session")
def nnunet_store(nnunet_planned: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`nnunet_planned`'s dataset prepared with nnU-Net's 2d preprocessing."""
    from sidepair.config import PreprocessSettings
    from sidepair.data.formats import open_dataset
    from sidepair.data.nnunet_grid import nnunet_settings
    from sidepair.data.prepare import prepare

    settings = PreprocessSettings(nnunet=nnunet_settings(nnunet_planned["plans"], "2d"), dtype="float32")
    return prepare(open_dataset(nnunet_planned["raw"]), tmp_path_factory.mktemp("nn") / "store", settings)


@pytest.fixture(scope="session")
def nnunet_run(
    nnunet_planned: dict[str, Path], nnunet_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A one-epoch side-pair pretraining of nnU-Net's 2d encoder on :func:`nnunet_store`."""
    out = tmp_path_factory.mktemp("nnpre") / "run"
    done = run_cli(
        "pretrain", "--store", nnunet_store, "--out", out, "--preset", "demo", "--architecture", "nnunet",
        "--plans", nnunet_planned["plans"], "--configuration", "2d", "--epochs", "1",
        "--pairs-per-epoch", "16", "--val-pairs", "8", "--batch-size", "8",
        "--section-size", "32", "--section-size", "32", "--mirror", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return out

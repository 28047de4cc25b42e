"""A full disk or an output folder that cannot be written: one line naming the path, exit 1, nothing left."""

import errno
import os
from pathlib import Path

import pytest

from sidepair import atomic
from sidepair.cli import main
from tests.conftest import TINY_TRAIN_ARGS, run_cli


def run_main(capsys, *args):
    with pytest.raises(SystemExit) as code:
        main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code.value.code, err


def leftovers(folder: Path):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_writing_a_prediction(seg_run, small_phantom, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    out = tmp_path / "out"
    code, err = run_main(
        capsys,
        "predict",
        "-i",
        small_phantom / "case_00000" / "imaging.nii.gz",
        "-o",
        out,
        "--model",
        seg_run,
    )
    assert code == 1 and len(err) == 1
    assert (
        err[0] == f"sidepair predict: error: {out / 'imaging.nii.gz'}: cannot write (No space left on device)"
    )
    assert leftovers(out) == []  # the temporary file is gone too


def test_full_disk_while_writing_a_checkpoint(small_store, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "save", no_space)
    run = tmp_path / "run"
    code, err = run_main(capsys, "train", "--store", small_store, "--out", run, *TINY_TRAIN_ARGS)
    assert code == 1 and len(err) == 1
    assert (
        err[0].startswith("sidepair train: error: ")
        and "checkpoint_best.pt: cannot write (No space left" in err[0]
    )
    assert not [p for p in leftovers(run) if p.endswith(".pt") or ".tmp" in p]


@pytest.fixture
def unwritable():
    """A folder that cannot be created even as root (sysfs), or skip."""
    target = Path("/sys/sidepair-unwritable")
    try:
        target.mkdir()
    except OSError as exc:
        if exc.errno in atomic.WRITE_ERRNOS:
            return target
    else:
        target.rmdir()
    pytest.skip("no location here that refuses writes")


@pytest.mark.parametrize("verb", ["phantom", "predict"])
def test_permission_denied_on_the_output_folder(unwritable, seg_run, small_phantom, verb):
    if verb == "phantom":
        args = ["phantom", "--out", str(unwritable), "--cases", "1", "--shape", "32", "32", "16"]
    else:
        args = [
            "predict",
            "-i",
            str(small_phantom / "case_00000" / "imaging.nii.gz"),
            "-o",
            str(unwritable / "m.nii.gz"),
            "--model",
            str(seg_run),
        ]
    result = run_cli(*args, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sidepair {verb}: error: {unwritable}") and "cannot write (" in lines[0]
    assert "Traceback" not in result.stderr

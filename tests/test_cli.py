"""The command line as a user meets it: verbs, help, exit codes and one-line errors."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from sidepair.cli import app
from sidepair.data.phantom import write_slices
from sidepair.data.store import Store
from sidepair.training.pretrain import resolve_config
from sidepair.training.segment import resolve_train_config
from tests.conftest import run_cli, two_kidney_volume, write_nifti

VERBS = ["phantom", "prepare", "pretrain", "train", "evaluate", "predict", "experiment", "demo", "export"]


def run(*args, cwd=None, env_columns=None, fresh=False):
    env = {**os.environ, "COLUMNS": str(env_columns)} if env_columns else None
    return run_cli(*args, cwd=cwd, env=env, fresh=fresh)


def test_help_lists_every_verb():
    result = run("--help")
    assert result.returncode == 0
    for verb in VERBS:
        assert verb in result.stdout
    runner = CliRunner()  # in this process: one start-up for every verb's help
    for verb in VERBS:
        shown = runner.invoke(app, [verb, "--help"])
        assert shown.exit_code == 0 and "Usage: " in shown.output, (verb, shown.output)


def test_phantom_and_prepare_end_to_end(tmp_path):
    data, store = tmp_path / "ph", tmp_path / "store"
    result = run("phantom", "--out", str(data), "--cases", "3", "--seed", "1", "--shape", "64", "64", "32")
    assert result.returncode == 0, result.stderr
    assert (data / "montage.png").stat().st_size > 10_000
    result = run("prepare", "--data", str(data), "--out", str(store), "--preset", "fast-2d")
    assert result.returncode == 0, result.stderr
    assert "3 cases (kits format, 0 unlabelled, 0 negatives" in result.stdout
    index = json.loads((store / "index.json").read_text(encoding="utf-8"))
    assert [c["spacing"] for c in index["cases"]] == [pytest.approx([3.0, 2.0, 2.0])] * 3
    # pretrain and train default to the preset the store was made with (here fast-2d's half sections).
    config = resolve_config(None, store, sections="half")
    assert (config.preset, config.section_size, config.dims) == ("fast-2d", (128, 128), 2)
    assert resolve_train_config(None, store).patch_size == (96, 96)
    # A second run with the same settings finishes at once; other settings are refused.
    assert run("prepare", "--data", str(data), "--out", str(store), "--preset", "fast-2d").returncode == 0
    other = run("prepare", "--data", str(data), "--out", str(store), "--preset", "kits19-paper")
    assert other.returncode == 1
    assert other.stderr.strip().count("\n") == 0
    assert "store was prepared with other settings" in other.stderr


def test_prepare_a_slice_folder_without_spacing_warns_or_takes_pixel_spacing(tmp_path):
    data = tmp_path / "slices"
    write_slices(data, cases=3, seed=1, shape=(64, 64, 32), slices_per_case=2)
    (data / "slices.json").unlink()  # a bare export: PNGs and masks, nothing of their geometry
    bare = run("prepare", "--data", data, "--out", tmp_path / "bare", "--preset", "fast-2d")
    assert bare.returncode == 0, bare.stderr
    warned = [line for line in bare.stderr.splitlines() if "pixel spacing" in line]
    assert warned == [
        f"sidepair prepare: warning: {data}: 6 of 6 PNG slices have no pixel spacing in a slices.json; "
        "assumed 1 mm (--pixel-spacing MM sets it); kidney sizes, surface distances and the store grid "
        "follow it"
    ]
    told = run(
        "prepare", "--data", data, "--out", tmp_path / "told", "--preset", "fast-2d", "--pixel-spacing", 0.7
    )
    assert told.returncode == 0, told.stderr
    assert "pixel spacing" not in told.stderr
    store = Store(tmp_path / "told")
    assert store.header.datasets[0].format_options["spacing"] == 0.7
    dataset, source = store.source_of(next(iter(store.cases)))  # reopened as prepared, to read its files
    affine = dataset.load(source).image.affine
    assert sorted(np.linalg.norm(affine[:3, :3], axis=0).round(6).tolist())[:2] == [0.7, 0.7]
    zero = run(
        "prepare", "--data", data, "--out", tmp_path / "zero", "--preset", "fast-2d", "--pixel-spacing", 0
    )
    assert zero.returncode == 1 and zero.stderr.strip().count("\n") == 0
    assert f"{data}: pixel spacing must be positive, got 0.0" in zero.stderr
    assert not (tmp_path / "zero").exists()


def _bad_dataset(tmp_path):
    image, label, affine = two_kidney_volume()
    label[0, 0, 0] = 9
    write_nifti(tmp_path / "bad" / "case_00000" / "imaging.nii.gz", image, affine)
    return write_nifti(tmp_path / "bad" / "case_00000" / "segmentation.nii.gz", label, affine)


def test_bad_input_one_line_no_traceback_nothing_written(tmp_path):
    seg = _bad_dataset(tmp_path)
    out = tmp_path / "store"
    result = run("prepare", "--data", str(tmp_path / "bad"), "--out", str(out))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sidepair prepare: error: ")
    assert str(seg) in lines[0] and "label values [9] are outside the label map" in lines[0]
    assert not out.exists()
    debug = run("--debug", "prepare", "--data", str(tmp_path / "bad"), "--out", str(out))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_unknown_format_and_preset(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("prepare", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "s"))
    assert result.returncode == 1 and "cannot tell the dataset format" in result.stderr
    result = run(
        "prepare", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "s"), "--preset", "nope"
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "Invalid value for '--preset'" in result.stderr and "'nope' is not one of" in result.stderr
    assert not (tmp_path / "s").exists()


def test_missing_data_folder(tmp_path):
    result = run("prepare", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s"))
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere'}: dataset folder not found" in result.stderr


def test_version():
    # In a new interpreter, as `python -m sidepair` (the other tests fork a server that imported it).
    result = run("--version", fresh=True)
    assert result.returncode == 0 and result.stdout.startswith("sidepair ")


def test_python_api_matches(tmp_path):
    from sidepair.data.phantom import generate_phantom

    specs = generate_phantom(tmp_path / "p", cases=1, seed=1, shape=(64, 64, 32))
    result = run(
        "phantom",
        "--out",
        str(tmp_path / "q"),
        "--cases",
        "1",
        "--seed",
        "1",
        "--shape",
        "64",
        "64",
        "32",
        "--no-montage",
    )
    assert result.returncode == 0
    import nibabel as nib

    a = np.asanyarray(nib.load(tmp_path / "p" / "case_00000" / "imaging.nii.gz").dataobj)
    b = np.asanyarray(nib.load(tmp_path / "q" / "case_00000" / "imaging.nii.gz").dataobj)
    np.testing.assert_array_equal(a, b)
    assert specs[0].case_id == "case_00000"


def test_pretrain_on_a_missing_store_is_one_line(tmp_path):
    result = run("pretrain", "--store", str(tmp_path / "nostore"), "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"sidepair pretrain: error: {tmp_path / 'nostore'}: not a sidepair store (no store.json); "
        "run `sidepair prepare`"
    )
    assert not (tmp_path / "run").exists()


def test_evaluate_needs_run_or_predictions(tmp_path):
    result = run("evaluate")
    assert result.returncode == 1 and "give either --run, or --predictions with --data" in result.stderr
    result = run("evaluate", "--run", str(tmp_path / "norun"))
    assert result.returncode == 1
    assert f"{tmp_path / 'norun' / 'checkpoint_best.pt'}: checkpoint not found" in result.stderr


def test_train_rejects_bad_fraction(tmp_path):
    argv = ["--store", str(tmp_path), "--out", str(tmp_path / "r"), "--preset", "fast-2d"]
    result = run("train", *argv, "--label-fraction", "1.5")
    assert result.returncode == 1
    assert "train: Value error, label_fraction must be in (0, 1], got 1.5" in result.stderr


@pytest.mark.parametrize("args", [["train", "--bogus"], ["predict", "-i", "x"], ["experiment"]])
def test_usage_errors_are_clicks_message_and_exit_2(args):
    result = run(*args)
    assert result.returncode == 2
    assert "Usage: sidepair" in result.stderr and "Error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_choices_are_listed_in_help_and_a_bad_one_is_one_line():
    runner = CliRunner()  # in this process: one start-up for every help text
    shown = {
        verb: runner.invoke(app, [verb, "--help"], env={"COLUMNS": "200"}).output
        for verb in ("pretrain", "train", "predict", "evaluate")
    }
    for choices in ("masked|bbox|half", "contrastive|bce", "kits19-paper|fast-2d|demo", "auto|bf16|fp32"):
        assert choices in shown["pretrain"], choices
    assert "kidney|kidney+tumour|sides" in shown["train"]
    assert "sides|kidney|kidney+tumour" in shown["predict"]
    assert "probabilities|labels" in shown["evaluate"]
    bad = run("pretrain", "--store", "s", "--out", "o", "--sections", "kidney")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("sidepair pretrain: error: Invalid value for '--sections'")
    assert "'kidney' is not one of 'masked', 'bbox', 'half'" in bad.stderr

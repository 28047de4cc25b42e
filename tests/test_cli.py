"""The command line as a user meets it: verbs, help, exit codes and one-line errors."""

import json
import os
import warnings

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sidepair.cli import app, main
from sidepair.data.formats import source_of
from sidepair.data.phantom import write_slices
from sidepair.data.store import Store
from sidepair.experiment.config import ExperimentConfig
from sidepair.training.pretrain_config import PretrainConfig, resolve_config
from sidepair.training.segment_config import TrainConfig, resolve_train_config
from tests.conftest import run_cli, two_kidney_volume, write_nifti

VERBS = [
    "phantom",
    "prepare",
    "pretrain",
    "train",
    "evaluate",
    "predict",
    "experiment",
    "demo",
    "export",
    "check-sides",
]


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
    dataset, source = source_of(store, next(iter(store.cases)))  # reopened as prepared, to read its files
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
    assert result.returncode == 2 and result.stderr.count("\n") == 1
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
    assert result.returncode == 2 and "give either --run, or --predictions with --data" in result.stderr
    result = run("evaluate", "--run", str(tmp_path / "norun"))
    assert result.returncode == 1
    assert f"{tmp_path / 'norun' / 'checkpoint_best.pt'}: checkpoint not found" in result.stderr


def test_train_rejects_bad_fraction(tmp_path):
    argv = ["--store", str(tmp_path), "--out", str(tmp_path / "r"), "--preset", "fast-2d"]
    result = run("train", *argv, "--label-fraction", "1.5")
    assert result.returncode == 2
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
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("sidepair pretrain: error: Invalid value for '--sections'")
    assert "'kidney' is not one of 'masked', 'bbox', 'half'" in bad.stderr


def test_every_verb_defaults_to_the_auto_device_and_has_help():
    command = typer.main.get_command(app)
    assert sorted(command.commands) == sorted(VERBS)  # type: ignore[attr-defined]
    devices = {}
    for verb, cmd in command.commands.items():  # type: ignore[attr-defined]
        assert cmd.help, verb
        for param in cmd.params:
            if param.name == "device":
                devices[verb] = param.default
    # experiment's None means "the config's", whose own default is auto.
    assert devices == {
        "pretrain": None,
        "train": None,
        "evaluate": "auto",
        "predict": "auto",
        "experiment": None,
    }
    assert ExperimentConfig.model_fields["device"].default == "auto"
    assert TrainConfig.model_fields["device"].default == "auto"
    assert PretrainConfig.model_fields["device"].default == "auto"


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["phantom", "--out", "o", "--cases", "many"], 2, "Invalid value for '--cases'"),
        (["prepare", "--data", "d", "--out", "o", "--preset", "nope"], 2, "Invalid value for '--preset'"),
        (["prepare", "--data", "d", "--out", "o", "--plans", "p.json"], 2, "--plans and --configuration go"),
        (["pretrain", "--store", "s", "--out", "o", "--preset", "demo", "--lr", "-1"], 2, "lr"),
        (
            ["train", "--store", "s", "--out", "o", "--preset", "demo", "--mirror", "--labels", "sides"],
            2,
            "mirror",
        ),
        (["evaluate", "--split", "all"], 2, "Invalid value for '--split'"),
        (
            ["predict", "-i", "x.nii.gz", "-o", "y", "-m", "m", "--labels", "left"],
            2,
            "Invalid value for '--labels'",
        ),
        (["experiment", "demo"], 2, "experiment needs --out"),
        (["export", "-m", "m", "--format", "nnunet"], 2, "--format nnunet needs --plans"),
        (["check-sides", "x.nii.gz", "--threshold", "0.2"], 2, "Invalid value for '--threshold'"),
        (["demo", "--jobs", "two"], 2, "Invalid value for '--jobs'"),
        (["prepare", "--data", "nowhere", "--out", "o"], 1, "nowhere: dataset folder not found"),
        (["predict", "-i", "nowhere.nii.gz", "-o", "y", "-m", "m"], 1, "nowhere.nii.gz"),
        (["experiment", "no_such.yaml", "--plan"], 1, "no_such.yaml"),
        (["check-sides", "nowhere.nii.gz"], 1, "nowhere.nii.gz"),
    ],
)
def test_exit_codes_are_two_for_a_wrong_command_line_and_one_for_bad_input(
    argv, code, text, tmp_path, capsys
):
    """One line either way, exit 2 or 1; in process (usage errors loading no torch: test_layout)."""
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                *argv[:1],
                *[str(tmp_path / a) if a in ("o", "y", "nowhere", "nowhere.nii.gz") else a for a in argv[1:]],
            ]
        )
    err = capsys.readouterr().err
    assert exit_.value.code == code, err
    assert text in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_main_leaves_the_warning_hook_as_it_found_it(capsys):
    before = warnings.showwarning
    with pytest.raises(SystemExit):
        main(["evaluate"])
    assert warnings.showwarning is before
    capsys.readouterr()

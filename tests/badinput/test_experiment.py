"""Bad input at `sidepair experiment`: configs, data, a changed config, a second experiment in the folder."""

import fcntl

import pytest
import yaml

from tests.badinput.helpers import assert_debug_shows_traceback, assert_refused

BASE = {
    "name": "t",
    "preset": "demo",
    "data": {"phantom": {"cases": 10}},
    "pretrain": [{"name": "masked", "sections": "masked"}],
}


def write(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "data,problem",
    [
        ("name: [unclosed", "invalid YAML"),
        ("- a list", "expected a mapping at the top level"),
        ({**BASE, "segmentation": {"fractions": [2.0]}}, "fractions must be in (0, 1]"),
        ({**BASE, "segmentation": {"inits": ["finetune"]}}, "must hold scratch"),
        ({**BASE, "jobs": 0}, "jobs"),
        ({**BASE, "unknown": 1}, "unknown"),
    ],
)
def test_invalid_configs(tmp_path, capsys, data, problem):
    path = write(tmp_path, data)
    out = tmp_path / "out"
    assert_refused(capsys, ["experiment", path, "--out", out], path.name, problem, out)


def test_missing_config_and_data(tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused(
        capsys,
        ["experiment", tmp_path / "nope.yaml", "--out", out],
        tmp_path / "nope.yaml",
        "file not found",
        out,
    )
    config = write(tmp_path, {**BASE, "data": {"paths": [str(tmp_path / "nowhere")]}})
    assert_refused(
        capsys, ["experiment", config, "--out", out], tmp_path / "nowhere", "dataset folder not found", out
    )
    assert_debug_shows_traceback(["experiment", config, "--out", out])


def test_a_second_experiment_in_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".experiment.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        config = write(tmp_path, BASE)
        assert_refused(
            capsys, ["experiment", config, "--out", out], out, "another experiment is running", out
        )


def test_a_reference_arm_without_its_plans_is_refused_before_any_data_is_written(tmp_path, capsys):
    plans = tmp_path / "missing" / "nnUNetPlans.json"
    config = write(tmp_path, {**BASE, "reference": {"plans": str(plans), "configuration": "2d"}})
    out = tmp_path / "out"
    # Before the phantom and the experiment's own store were written first, and left behind.
    assert_refused(capsys, ["experiment", config, "--out", out], plans, "not found", out)

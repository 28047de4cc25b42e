"""Bad input at `sidepair train`: init checkpoints, options, stores."""

import pytest

from tests.badinput.helpers import assert_debug_shows_traceback, assert_refused
from tests.conftest import TINY_TRAIN_ARGS

TINY = TINY_TRAIN_ARGS


def test_bad_init_checkpoints(small_store, pretrained, seg_run, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--store", small_store, "--out", out, *TINY]
    missing = tmp_path / "nope.pt"
    assert_refused(capsys, [*base, "--init", missing], missing, "checkpoint not found", out)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pretrained.read_bytes()[:2000])
    assert_refused(capsys, [*base, "--init", truncated], truncated, "checkpoint", out)
    corrupted = tmp_path / "corrupted.pt"
    data = bytearray(pretrained.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    assert_refused(capsys, [*base, "--init", corrupted], corrupted, "checkpoint", out)
    assert_refused(
        capsys,
        [*base, "--init", seg_run / "checkpoint_best.pt"],
        seg_run / "checkpoint_best.pt",
        "a segmentation checkpoint, not a pretraining run",
        out,
    )
    assert_debug_shows_traceback([*base, "--init", missing])


@pytest.mark.parametrize(
    "extra,problem",
    [
        (["--label-fraction", "0"], "label_fraction must be in (0, 1]"),
        (["--label-fraction", "1.5"], "label_fraction must be in (0, 1]"),
        (["--freeze-encoder"], "freeze_encoder needs a pretrained --init checkpoint"),
        (["--labels", "organs"], "labels"),
        (["--epochs", "0"], "train.epochs: Input should be greater than or equal to 1"),
    ],
)
def test_invalid_options(small_store, tmp_path, capsys, extra, problem):
    out = tmp_path / "run"
    argv = ["train", "--store", small_store, "--out", out, *TINY, *extra]
    assert_refused(capsys, argv, [], problem, out, code=2)  # a wrong command line


def test_2d_weights_into_a_3d_model(small_store, pretrained, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--store",
        small_store,
        "--out",
        out,
        "--preset",
        "kits19-paper",
        "--init",
        pretrained,
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]
    assert_refused(capsys, argv, pretrained, "2D encoder, but preset kits19-paper is 3D", out, code=2)

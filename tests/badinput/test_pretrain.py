"""Bad input at `sidepair pretrain`: stores, options and run folders."""

import pytest

from tests.badinput.helpers import assert_debug_shows_traceback, assert_refused, files_in
from tests.conftest import TINY_PRETRAIN_ARGS

TINY = TINY_PRETRAIN_ARGS


def test_missing_or_foreign_store(tmp_path, capsys):
    out = tmp_path / "run"
    assert_refused(
        capsys, ["pretrain", "--store", tmp_path / "nope", "--out", out, *TINY], tmp_path / "nope", "", out
    )
    (tmp_path / "folder").mkdir()
    assert_refused(
        capsys,
        ["pretrain", "--store", tmp_path / "folder", "--out", out, *TINY],
        tmp_path / "folder",
        "",
        out,
    )
    assert_debug_shows_traceback(["pretrain", "--store", tmp_path / "nope", "--out", out, *TINY])


@pytest.mark.parametrize(
    "option,value,problem",
    [
        ("--epochs", "0", "epochs"),
        ("--sections", "kidney", "sections"),
        ("--loss", "hinge", "loss"),
        ("--lr", "-1", "lr"),
        ("--dims", "3", "section_size (24, 24) must have 3 sizes for dims=3"),
    ],
)
def test_invalid_options_name_the_field(small_store, tmp_path, capsys, option, value, problem):
    out = tmp_path / "run"
    argv = ["pretrain", "--store", small_store, "--out", out, *TINY, option, value]
    assert_refused(capsys, argv, [], problem, out, code=2)  # a wrong command line


def test_existing_run_needs_resume_and_the_same_settings(small_store, tmp_path, capsys):
    from sidepair.cli import main

    out = tmp_path / "run"
    main(["pretrain", "--store", str(small_store), "--out", str(out), *TINY])
    before = set(files_in(out))
    stamps = {p: p.stat().st_mtime_ns for p in before}
    assert_refused(
        capsys,
        ["pretrain", "--store", small_store, "--out", out, *TINY],
        out,
        "already holds a run; pass --resume",
        out,
        before,
    )
    assert_refused(
        capsys,
        ["pretrain", "--store", small_store, "--out", out, *TINY, "--lr", "0.5", "--resume"],
        out / "config.yaml",
        "--resume with settings other than the run's own",
        out,
        before,
    )
    assert {p: p.stat().st_mtime_ns for p in before} == stamps

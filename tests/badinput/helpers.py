"""The contract for bad input, checked the same way at every boundary."""

from pathlib import Path

import pytest

from sidepair.cli import main


def files_in(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


def assert_refused(
    capsys, argv, names, problem, out: Path | None = None, before: set | None = None, code: int = 1
):
    """``sidepair ARGV`` exits ``code``, one line naming ``names`` and ``problem``; no traceback, no output.

    Args:
        capsys: pytest's capture fixture.
        argv: The command line after ``sidepair``.
        names: The path (or paths) the message must name.
        problem: Text the message must hold.
        out: The output folder to inspect.
        before: The files ``out`` held before (default: none, so ``out`` must not exist or be empty).
        code: The exit code: 1 for bad input, 2 for a wrong command line.
    """
    verb = argv[0]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exit_.value.code == code, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sidepair {verb}: error: "), lines[0]
    for name in [names] if isinstance(names, str | Path) else names:
        assert str(name) in lines[0], lines[0]
    assert problem in lines[0], lines[0]
    assert "Traceback" not in err
    if out is not None:
        left = {p for p in files_in(out) if not p.name.startswith(".experiment.lock")} - (before or set())
        assert not left, f"left behind: {sorted(map(str, left))}"
    return lines[0]


def assert_debug_shows_traceback(argv):
    """With ``--debug`` the same failure raises (so the traceback shows)."""
    from sidepair.errors import SidepairError

    with pytest.raises(SidepairError):
        main(["--debug", *[str(a) for a in argv]])

"""A run's evaluation: metrics.json is written last, as the mark that it finished."""

import json
import shutil

import pytest

from sidepair.choices import DEFAULT_RESAMPLE
from sidepair.evaluation import evaluate
from sidepair.experiment.runner import evaluation_finished


class Killed(Exception):
    pass


def test_an_evaluation_killed_before_its_summary_is_not_taken_as_finished(seg_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(seg_run, run)
    out = run / "eval_test"

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(evaluate, "render_overlay", die)  # the figure, drawn after the per-case rows
        with pytest.raises(Killed):
            evaluate.evaluate_run(run, "test", "last", device="cpu", progress=False)
    assert (out / "per_case.csv").exists() and not (out / "metrics.json").exists()
    assert not evaluation_finished(run, "test", "last", DEFAULT_RESAMPLE)
    summary = evaluate.evaluate_run(run, "test", "last", device="cpu", progress=False)
    assert evaluation_finished(run, "test", "last", DEFAULT_RESAMPLE)
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["cases"] == summary["cases"] == 2
    assert (out / "cases.png").stat().st_size > 10_000

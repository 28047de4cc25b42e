"""``sidepair experiment --status DIR``: the state of every run of an experiment, read from its folder.

Nothing is asked of a scheduler: a run's state is in its folder (see ``jobs``). A pretraining is finished
once its learning curves are written (they come last); a segmentation run once its training and its
evaluation are complete.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from sidepair.data.store import Store
from sidepair.errors import SidepairError
from sidepair.experiment.config import ExperimentConfig, load_experiment_config
from sidepair.experiment.jobs import JobState, evaluation_finished, job_state, training_finished
from sidepair.experiment.plan import plan_pretraining, plan_runs

STATES: tuple[JobState, ...] = ("finished", "running", "interrupted", "failed", "waiting")


@dataclass(frozen=True)
class RunStatus:
    """One run's state.

    Attributes:
        folder: The run folder, relative to the experiment folder.
        state: ``waiting``, ``running``, ``interrupted``, ``failed`` or ``finished``.
        detail: For a failed run the last line of its error; for a running one its device and host.
    """

    folder: str
    state: JobState
    detail: str = ""


def experiment_status(out: str | Path) -> tuple[ExperimentConfig, list[RunStatus]]:
    """The experiment in ``out`` and the state of each of its pretrainings and segmentation runs.

    Raises:
        SidepairError: ``out`` holds no experiment (no ``experiment.yaml``).
    """
    out = Path(out)
    saved = out / "experiment.yaml"
    if not saved.is_file():
        raise SidepairError(f"{out}: not an experiment folder (no experiment.yaml); run sidepair experiment")
    config = load_experiment_config(saved)
    stores = [
        Store(p.parent) for p in sorted(out.glob("store_*/index.json"), key=lambda p: p.stat().st_mtime)
    ]
    # The experiment's own store, not a reference arm's (nnU-Net's preprocessing beside sidepair's).
    own = [s for s in stores if (s.settings.nnunet is not None) == (config.architecture == "nnunet")]
    store = own[-1] if own else None
    status = []
    for spec in plan_pretraining(config, store):
        run_dir = out / "pretrain" / spec.name
        done = (run_dir / "checkpoint_last.pt").exists() and (run_dir / "learning_curves.png").exists()
        status.append(RunStatus(f"pretrain/{spec.name}", *job_state(run_dir, done)))
    evaluation = config.evaluation
    for run in plan_runs(config, store):
        run_dir = out / "runs" / run.name
        settings = run_dir / "config.yaml"
        done = False
        if settings.is_file():
            resolved = yaml.safe_load(settings.read_text(encoding="utf-8"))
            done = training_finished(run_dir, resolved) and evaluation_finished(
                run_dir, evaluation.split, evaluation.checkpoint, evaluation.resample
            )
        status.append(RunStatus(f"runs/{run.name}", *job_state(run_dir, done)))
    return config, status


def format_status(out: str | Path, config: ExperimentConfig, status: list[RunStatus]) -> str:
    """A line of counts, then one line per run (its folder, state and detail)."""
    counts = Counter(s.state for s in status)
    lines = [
        f"experiment {config.name} in {out}: {len(status)} runs; "
        + ", ".join(f"{counts[state]} {state}" for state in STATES),
    ]
    width = max((len(s.folder) for s in status), default=0)
    lines += [f"  {s.folder:<{width}}  {s.state:<11}  {s.detail}".rstrip() for s in status]
    if counts["finished"] == len(status):
        lines.append("every run finished; the report is report.md")
    return "\n".join(lines)

"""The tiny experiment that the experiment tests read: run once per session, in this process."""

import pytest
import yaml

from sidepair.experiment.config import load_experiment_config
from sidepair.experiment.runner import run_experiment

TINY = {
    "name": "tiny",
    "description": "tiny end-to-end check",
    "preset": "demo",
    "data": {"phantom": {"cases": 10, "seed": 3, "shape": [96, 96, 32]}},
    "pretrain": [{"name": "masked", "sections": "masked", "epochs": 2, "pairs_per_epoch": 64}],
    "segmentation": {
        "inits": ["scratch", "finetune"],
        "fractions": [0.5, 1.0],
        "seeds": [0, 1],
        "epochs": 2,
        "samples_per_epoch": 64,
        # The recipe before the strong baseline (issue #28), so that the golden per-case metrics still hold:
        # Adam with ReduceLROnPlateau, no augmentation, whole-volume validation read raw.
        "optimizer": "adam",
        "lr": 0.003,
        "schedule": "plateau",
        "weight_decay": 0.0,
        "foreground_fraction": 0.6,
        "augment": False,
        "mirror": False,
        "validation": "volumes",
        "smoothing": 0.0,
        "min_epochs": 0,
    },
    # The way back of the code before the one-prediction-path redesign, for the golden comparison below.
    "evaluation": {"resample": "labels"},
    "jobs": 1,
}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    config = load_experiment_config(path)
    out = root / "out"
    report = run_experiment(config, out, progress=False)
    return config, out, report

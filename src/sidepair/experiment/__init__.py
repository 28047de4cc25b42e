"""``sidepair experiment``: the whole comparison, SSL against scratch, from one YAML file."""

from sidepair.experiment.config import ExperimentConfig, load_experiment_config
from sidepair.experiment.runner import run_experiment

__all__ = ["ExperimentConfig", "load_experiment_config", "run_experiment"]

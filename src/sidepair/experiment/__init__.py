"""``sidepair experiment``: the whole comparison, SSL against scratch, from one YAML file.

The settings are in :mod:`sidepair.experiment.config`, the run in :mod:`sidepair.experiment.runner`.
"""

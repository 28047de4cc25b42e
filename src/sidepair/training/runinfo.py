"""Run bookkeeping shared by both training tasks: ``config.yaml`` and ``run.json`` of a run folder.

``config.yaml`` is the run's resolved config: what the run *is* (a resume must match it). ``run.json``
records the circumstances: versions, seed, the data, the store's fingerprint, speed options, and the
task's own facts (the cases whose labels it read, transfers, mismatches accepted).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel

from sidepair.atomic import write_json, write_text
from sidepair.data.store import Store, recorded_paths
from sidepair.errors import ConfigError
from sidepair.training.distributed import is_main_process
from sidepair.version import __version__


def write_run_config(out: Path, config: BaseModel, resume: bool) -> None:
    """Write ``out/config.yaml``; on ``resume`` first refuse settings other than the run's own.

    Raises:
        ConfigError: When resuming with different settings, or when ``out`` already holds a run and
            ``resume`` is not set.
    """
    resolved = json.loads(config.model_dump_json())
    saved = out / "config.yaml"
    if not resume and any(out.glob("checkpoint_*.pt")):
        # Checked before anything is written: the run's own config.yaml and run.json must stay its own.
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    if (
        resume
        and saved.exists()
        and not same_run(
            yaml.safe_load(saved.read_text(encoding="utf-8")), resolved, field_defaults(type(config)), out
        )
    ):
        raise ConfigError(
            f"{saved}: --resume with settings other than the run's own; rerun with the same options"
        )
    if is_main_process():  # under torchrun, rank 0 writes the run folder
        out.mkdir(parents=True, exist_ok=True)
        write_text(saved, yaml.safe_dump(resolved, sort_keys=False))


def same_run(
    saved: dict[str, Any],
    resolved: dict[str, Any],
    defaults: Mapping[str, Any] | None = None,
    run: Path | None = None,
) -> bool:
    """Whether two resolved configs describe the same run.

    The device is where a run computes, not what it is: a run resumed, or rerun by an experiment, on
    another device is the same run (``run.json`` records each device). A setting sidepair gained after a
    run was made is missing from its saved config; the run was made as that setting's default does, so a
    missing key counts as its default from ``defaults`` (and an older run resumes while the new setting
    keeps it). Settings that name a file or folder (``store``, ``init``, ``plans``) are the same when they
    name the same one, however they spell it and from whichever working folder.

    Args:
        saved: The run's ``config.yaml``.
        resolved: The config asked for now, as plain data.
        defaults: Each setting's default, as plain data (:func:`field_defaults`).
        run: The run folder, where a relative path the run recorded is also looked up from
            (:func:`~sidepair.data.store.recorded_paths`).
    """
    defaults = defaults or {}
    missing = object()
    names = (set(saved) | set(resolved)) - {"device"}
    return all(
        _same_setting(name, saved.get(name, defaults.get(name, missing)), resolved.get(name, missing), run)
        for name in names
    )


# Settings that name a file or folder: one folder may be named from another working folder or by its
# absolute path (an experiment resumed as ``/data/exp`` that was begun as ``exp``, or by a SLURM job).
PATH_SETTINGS = frozenset({"store", "init", "plans"})


def _same_setting(name: str, saved: Any, resolved: Any, run: Path | None) -> bool:
    if saved == resolved:
        return True
    if name not in PATH_SETTINGS or not isinstance(saved, str) or not isinstance(resolved, str):
        return False
    now = Path(resolved)
    if not now.exists():
        return Path(saved).resolve() == now.resolve()
    return any(os.path.samefile(p, now) for p in recorded_paths(saved, run or Path.cwd()))


def field_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The defaults of a settings model's fields, as plain data (what ``config.yaml`` would hold)."""
    return {
        name: json.loads(json.dumps(field.default))
        for name, field in model.model_fields.items()
        if not field.is_required() and field.default_factory is None
    }


def write_run_info(out: Path, kind: str, store: Store, seed: int, **extra: Any) -> None:
    """Write ``run.json``: kind, versions, seed, the data (phantom or real) and run-specific fields."""
    if not is_main_process():
        return
    write_json(
        out / "run.json",
        {
            "kind": kind,
            "sidepair_version": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "seed": seed,
            "data": store.describe(),
            "store_fingerprint": store.fingerprint,
            **extra,
        },
    )


def update_run_info(out: Path, **fields: Any) -> None:
    """Add (or replace) fields of ``run.json``, e.g. what a finished run found out about itself."""
    if not is_main_process():
        return
    write_json(out / "run.json", {**read_run_info(out), **fields})


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """A run folder's ``run.json`` (empty when it has none)."""
    path = run_dir / "run.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))

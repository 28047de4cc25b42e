"""Import on first use: the one place where sidepair defers an import of its own modules.

The command line's verbs and the package's public functions live in modules that load torch, MONAI or
SciPy. Naming them here as ``"module:attribute"`` keeps ``sidepair --help``, usage errors and
``import sidepair`` free of those imports; ``scripts/check_imports.py`` allows this module alone.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(target: str) -> Any:
    """The object named ``"package.module:attribute"``, its module imported now.

    Args:
        target: Module path and attribute, separated by a colon.

    Raises:
        ValueError: ``target`` has no colon.
    """
    module, sep, name = target.partition(":")
    if not sep:
        raise ValueError(f"lazy target {target!r} must be 'module:attribute'")
    return getattr(importlib.import_module(module), name)

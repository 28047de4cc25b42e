"""The project's own error types.

Every error a user can cause by their input is a :class:`SidepairError`; the CLI prints it as one line
and exits non-zero, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

from pathlib import Path


class SidepairError(Exception):
    """Base class of errors caused by input, configuration or the environment, not by a bug."""


class DataError(SidepairError):
    """A file or folder of input data is unusable.

    Args:
        path: The offending file or folder.
        problem: What is wrong with it, as a short phrase.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        # One line, whatever a library put in its own message (nibabel's end in "\n - could ...").
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


class ConfigError(SidepairError):
    """A configuration value or a command-line option is invalid."""


class UsageError(ConfigError):
    """The command line itself is wrong: an option's value, or options that do not go together (exit 2)."""


class StoreError(SidepairError):
    """A preprocessed store is missing, incomplete or was made with other settings."""


class OutputError(SidepairError):
    """An output file or folder cannot be written: permission denied, read-only or full disk."""


class DataWarning(UserWarning):
    """Something in the data a user should know of that is not an error.

    For example a kidney that vanishes on the store grid; the CLI prints it as one line naming the file.
    """

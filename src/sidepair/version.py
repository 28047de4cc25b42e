"""The installed sidepair version (recorded in every run folder, checkpoint and store)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sidepair")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

"""The preprocessed store, read: what ``prepare`` wrote once per dataset and training reads.

Layout::

    STORE/store.json        settings, their fingerprint, source datasets, preset, sidepair version
    STORE/index.json        one entry per case (written last: its presence means complete)
    STORE/splits.json       train / val / test case ids, by group, for the split seed
    STORE/cases/<id>/       image.npy (float16/32), label.npy, side.npy (uint8), meta.json

Arrays are uncompressed ``.npy`` files for memory mapping, indexed ``(z, y, x)`` on a RAS+ grid (see
:mod:`sidepair.data.axes`). Side boxes are ``[[z0, z1], [y0, y1], [x0, x1]]``, stop exclusive.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sidepair.config import PRESETS, PreprocessSettings
from sidepair.data.index import (
    STORE_VERSION,
    CaseEntry,
    NetworkView,
    Splits,
    StoreHeader,
    StoreIndex,
    read_record,
)
from sidepair.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from sidepair.data.formats import CaseSource


class Store:
    """Read access to a complete store; arrays are memory-mapped.

    Args:
        path: Store folder.

    Raises:
        StoreError: If the folder is not a store, is incomplete, or was written by an incompatible version.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "store.json").is_file():
            raise StoreError(f"{self.path}: not a sidepair store (no store.json); run `sidepair prepare`")
        if not (self.path / "index.json").is_file():
            raise StoreError(
                f"{self.path}: store is incomplete (no index.json); rerun `sidepair prepare` to finish it"
            )
        self.header: StoreHeader = read_record(StoreHeader, self.path / "store.json")
        if self.header.store_version > STORE_VERSION:
            raise StoreError(
                f"{self.path}: store format {self.header.store_version} is newer than this sidepair reads "
                f"({STORE_VERSION}); upgrade sidepair or rerun `sidepair prepare` with this one"
            )
        index_path = self.path / "index.json"
        index = read_record(StoreIndex, index_path)
        if index.fingerprint != self.header.fingerprint:
            raise StoreError(f"{self.path}: index.json does not match store.json; rerun `sidepair prepare`")
        self.cases: dict[str, CaseEntry] = {c.case_id: c for c in index.cases}
        self.splits: Splits = read_record(Splits, self.path / "splits.json")
        self._protected: set[str] = set()

    def protect_test_labels(self) -> None:
        """From now on, refuse to read the label or side map of a test case (training runs call this)."""
        self._protected = set(self.split("test"))

    def check_label_access(self, case_ids: list[str] | tuple[str, ...]) -> None:
        """Refuse, before anything is read, the cases whose labels a run would read, if one is a test case.

        Raises:
            StoreError: Naming the first test case.
        """
        test = set(self.split("test"))
        for case_id in case_ids:
            if case_id in test:
                raise StoreError(
                    f"{self.path}: the run would read the label of test case {case_id}; test labels are "
                    "read only by `sidepair evaluate`"
                )

    @property
    def settings(self) -> PreprocessSettings:
        """The preprocessing settings the store was made with."""
        return self.header.preprocess

    @property
    def fingerprint(self) -> str:
        """The hash naming the store's settings."""
        return self.header.fingerprint

    @property
    def network_view(self) -> NetworkView | None:
        """The network's axis order of a store of nnU-Net's preprocessing (one per store), else None."""
        return next((e.network for e in self.cases.values() if e.network is not None), None)

    def default_preset(self) -> str:
        """The preset the store was prepared with.

        A store that did not record it gets the one preset whose preprocessing it has.

        Raises:
            ConfigError: No preset can be told; the message asks for ``--preset``.
        """
        if self.header.preset:
            return self.header.preset
        matches = [name for name, p in PRESETS.items() if p.preprocess == self.settings]
        if len(matches) == 1:
            return matches[0]
        raise ConfigError(
            f"{self.path}: the store does not say which preset made it and its preprocessing matches "
            f"{'several' if matches else 'none'}; pass --preset"
        )

    def background_value(self, case_id: str) -> float:
        """The normalised value of the HU window's low end in a case: what crops are padded with."""
        stats = self.cases[case_id].normalization
        low = stats.low if stats.low is not None else self.settings.window[0]
        return (low - stats.mean) / stats.std

    def split(self, name: str) -> list[str]:
        """Case ids of split ``name`` (``train``, ``val`` or ``test``)."""
        return self.splits.of(name)

    def labelled(self, name: str) -> list[str]:
        """The labelled case ids of split ``name``."""
        return [c for c in self.split(name) if self.cases[c].labelled]

    def array(self, case_id: str, name: str = "image", mmap: bool = True) -> np.ndarray:
        """A case's ``image``, ``label`` or ``side`` array, ``(z, y, x)``, memory-mapped by default."""
        if case_id not in self.cases:
            raise StoreError(f"{self.path}: no case {case_id!r}")
        if name != "image":
            self.check_label_access([case_id] if case_id in self._protected else [])
        path = self.path / "cases" / case_id / f"{name}.npy"
        if not path.is_file():
            raise StoreError(f"{path}: missing (is case {case_id} unlabelled?)")
        return np.load(path, mmap_mode="r" if mmap else None)

    def describe(self) -> str:
        """What data the store holds, for titles and reports: phantom or real, and how many cases."""
        kinds = []
        for record in self.header.datasets:
            root = Path(record.data_root)
            if (root / "phantom.json").exists():
                kinds.append("phantom" if root.name == "phantom" else f"phantom {root.name}")
            else:
                kinds.append(f"real {root.name}")
        return f"{' + '.join(kinds) or 'unknown data'} ({len(self)} cases)"

    def check_sources(self, case_id: str, source: CaseSource) -> None:
        """Refuse a case whose label files changed since the store was prepared, naming the file.

        Raises:
            StoreError: A label file that is not the one the store recorded (size, or content hash).
        """
        recorded = {Path(s.path): s for s in self.cases[case_id].sources}
        labels = [p for p in [source.label, *source.structures.values()] if p is not None]
        for path in labels:
            record = recorded.get(path.resolve())
            if record is None:
                raise StoreError(f"{path}: not the label file the store recorded for case {case_id}")
            problem = record.changed(path)
            if problem:
                raise StoreError(
                    f"{path}: {problem}; it is not the label the store recorded for case {case_id} "
                    "(rerun `sidepair prepare` into a new store)"
                )

    def __len__(self) -> int:
        return len(self.cases)


def recorded_paths(recorded: str | Path, near: str | Path) -> list[Path]:
    """Where a path a run recorded as it was given may be now, existing ones only, likeliest first.

    A relative path was relative to the working folder the run was started from. For a run folder inside
    that folder (``exp/runs/x``, begun as ``--out exp``) that is one of the folders above the run, so the
    path is looked up as it is (from the working folder now), then below each folder above ``near``.
    """
    path = Path(recorded)
    found = [path] if path.exists() else []
    if not path.is_absolute():
        near = Path(near).resolve()
        found += [folder / path for folder in (near, *near.parents) if (folder / path).exists()]
    return found


def run_store(recorded: str | Path, run: str | Path, fingerprint: str | None = None) -> Store:
    """The store a run recorded (its config's ``store``), found from any working folder.

    Args:
        recorded: The path as the run recorded it.
        run: The run folder.
        fingerprint: The store fingerprint the run recorded, when it did: a store found elsewhere must
            have it.

    Raises:
        StoreError: No store with that fingerprint where the path may be.
    """
    stores = [Store(p) for p in recorded_paths(recorded, run) if (p / "store.json").is_file()]
    for store in stores:
        if fingerprint is None or store.fingerprint == fingerprint:
            return store
    if stores:
        raise StoreError(
            f"{stores[0].path}: store fingerprint {stores[0].fingerprint}, but run {run} was trained on "
            f"store {fingerprint}"
        )
    return Store(recorded)  # names the path as recorded in its error

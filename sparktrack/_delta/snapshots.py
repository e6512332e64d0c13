"""Stateless reads of a table's snapshot, for code that opens a table once and lets it go (the
data source's planner, input descriptions, catalog registration).

A snapshot is an opaque object: pass it back to :func:`list_files` and :func:`version_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from sparktrack._delta.errors import TableNotFoundError, translated
from sparktrack.errors import NotFoundError

__all__ = ["DataFile", "is_delta_table", "list_files", "newest_version", "open_snapshot",
           "snapshot_file_uris", "version_of"]

Snapshot = Any  # deltalake's DeltaTable; only this package looks inside


@dataclass(frozen=True, slots=True)
class DataFile:
    """A data file of a snapshot: path as its filesystem names it, partition values, size."""

    path: str
    partition: dict[str, Any]
    size: int


def open_snapshot(
    uri: str,
    *,
    storage_options: dict[str, str] | None = None,
    version: int | None = None,
    as_of: datetime | None = None,
) -> Snapshot | None:
    """The table at ``uri`` at its newest version, at ``version`` or as of ``as_of``; None if
    it does not exist (or did not yet at ``as_of``).

    Raises:
        NotFoundError: the table has no ``version``.
        StoreError: the table cannot be read (cause and table named).
    """
    with translated("reading Delta table", uri):
        try:
            table = DeltaTable(uri, storage_options=storage_options)
        except TableNotFoundError:
            return None
        if version is not None:
            try:
                table.load_as_version(version)
            except DeltaError:
                raise NotFoundError(
                    f"Delta table {uri} has no version {version}; its newest version is "
                    f"{table.version()}."
                ) from None
        elif as_of is not None:
            try:
                table.load_as_version(as_of)
            except DeltaError:
                return None  # the table was created after that time
        return table


def version_of(snapshot: Snapshot) -> int:
    return snapshot.version()


def newest_version(uri: str, *, storage_options: dict[str, str] | None = None) -> int:
    """The newest version of the table at ``uri``, -1 when it does not exist yet."""
    with translated("reading Delta table", uri):
        try:
            return DeltaTable(uri, storage_options=storage_options, without_files=True).version()
        except TableNotFoundError:
            return -1


def is_delta_table(uri: str, *, storage_options: dict[str, str] | None = None) -> bool:
    """Whether a Delta table is at ``uri``."""
    with translated("opening Delta table", uri):
        return DeltaTable.is_deltatable(uri, storage_options=storage_options)


def list_files(
    snapshot: Snapshot, uri: str, *, prune: Sequence[tuple[str, str, Any]] | None = None
) -> list[DataFile]:
    """The data files of ``snapshot`` that ``prune`` (deltalake's tuple filters on partition
    values and min/max statistics) does not rule out."""
    with translated("listing the files of Delta table", uri):
        actions = pa.table(snapshot.get_add_actions(flatten=True))
        sizes = dict(zip(actions.column("path").to_pylist(),
                         actions.column("size_bytes").to_pylist(), strict=True))
        dataset = snapshot.to_pyarrow_dataset(
            file_pruning_predicate=list(prune) if prune else None
        )
        return [
            DataFile(fragment.path, pds.get_partition_keys(fragment.partition_expression),
                     int(sizes.get(fragment.path) or 0))
            for fragment in dataset.get_fragments()
        ]


def snapshot_file_uris(
    uri: str, *, storage_options: dict[str, str] | None = None
) -> tuple[int, list[str]] | None:
    """(newest version, URIs of its data files) of the table at ``uri``; None when no Delta
    table can be read there (not a table, an unreadable log, no access)."""
    try:
        table = DeltaTable(uri, storage_options=storage_options)
        return table.version(), table.file_uris()
    except Exception:  # not a Delta table after all, unreadable log, no access
        return None

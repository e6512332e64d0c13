"""Operations that change a table's layout, not its rows: compaction, checkpoints, vacuum,
and the overwrite of a derived table (``runs_latest``).

Each is retried under the layer's one policy (a commit that loses a race against a writer is
tried again on a fresh snapshot) and fails with a StoreError naming the table and cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import DeltaTable, convert_to_deltalake, write_deltalake

from sparktrack._delta.errors import translated
from sparktrack._delta.retry import retrying

if TYPE_CHECKING:
    from sparktrack._delta.table import DeltaTableHandle

__all__ = ["checkpoint", "compact", "convert_parquet_folder", "overwrite", "vacuum"]


def compact(handle: DeltaTableHandle, *, target_size: int | None = None) -> dict[str, Any] | None:
    """Rewrite small files into bigger ones (``optimize.compact()``); deltalake's metrics
    (``numFilesAdded``, ``numFilesRemoved``, ...), None if the table does not exist yet."""

    def run() -> dict[str, Any] | None:
        table = handle.snapshot()
        return None if table is None else table.optimize.compact(target_size=target_size)

    return retrying(run, what="compacting Delta table", uri=handle.uri)


def checkpoint(handle: DeltaTableHandle) -> int | None:
    """Write a checkpoint of the log and drop expired log files; the version checkpointed,
    None if the table does not exist yet."""
    table = handle.snapshot()
    if table is None:
        return None
    retrying(table.create_checkpoint, what="checkpointing Delta table", uri=handle.uri)
    retrying(table.cleanup_metadata, what="cleaning up the log of Delta table", uri=handle.uri)
    return table.version()


def vacuum(handle: DeltaTableHandle, *, retention_hours: float) -> int:
    """Delete files that left the table more than ``retention_hours`` ago; how many.

    Only files the log marks as removed are deleted (delta-rs "lite" vacuum), so a file a
    writer has written but not yet committed is never touched.
    """

    def run() -> int:
        table = handle.snapshot()
        if table is None:
            return 0
        with handle.lock:  # the snapshot is shared with this handle's readers
            return len(table.vacuum(retention_hours=int(retention_hours), dry_run=False,
                                    enforce_retention_duration=False, full=False))

    return retrying(run, what="vacuuming Delta table", uri=handle.uri)


def overwrite(handle: DeltaTableHandle, rows: pa.Table) -> None:
    """Replace the whole table (created if missing, schema replaced) by ``rows``, one commit."""
    spec = handle.spec

    def write() -> None:
        write_deltalake(
            handle.uri,
            rows,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(spec.partition_by) or None,
            storage_options=handle.storage_options,
            name=spec.name,
            description=spec.description,
        )

    retrying(write, what="writing Delta table", uri=handle.uri)


def convert_parquet_folder(uri: str, *, storage_options: dict[str, str] | None = None) -> int:
    """Make the folder of parquet files at ``uri`` (as Spark's parquet writer leaves it) a Delta
    table in place, with one commit adding every file; returns the table's version (0).

    This is how a Spark job writes a Delta table without the Delta JVM jars: Spark writes the
    files in parallel, deltalake commits them.
    """
    with translated("converting parquet files to a Delta table", uri):
        convert_to_deltalake(uri, storage_options=storage_options)
        return DeltaTable(uri, storage_options=storage_options).version()

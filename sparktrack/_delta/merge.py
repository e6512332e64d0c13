"""MERGE: insert the rows whose key is not in the table yet, atomically across processes.

Meant for tables where a key must exist once (e.g. a model registry's names and versions):
two processes inserting the same key leave one row. Delta's conflict check makes the second of
two concurrent merges fail (CommitFailedError: files were added that its read should have
seen); it is then run again on a fresh snapshot, where it finds the key and inserts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties

from sparktrack._delta.retry import retrying
from sparktrack.errors import InvalidInputError

if TYPE_CHECKING:
    from sparktrack._delta.table import DeltaTableHandle

__all__ = ["insert_missing"]


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def insert_missing(handle: DeltaTableHandle, rows: pa.Table, *, on: Sequence[str]) -> int:
    """Insert the rows of ``rows`` whose values of the ``on`` columns match no row of the
    table (MERGE ... WHEN NOT MATCHED THEN INSERT), creating the table on first use; returns
    how many rows were inserted. ``rows`` must not repeat a key itself.
    """
    keys = list(on)
    unknown = [column for column in keys if column not in handle.spec.schema.names]
    if not keys or unknown:
        raise InvalidInputError(
            f"merge into {handle.uri} needs key columns of the table; got {keys!r} (the table's "
            f"columns are {', '.join(handle.spec.schema.names)})."
        )
    if rows.num_rows == 0:
        return 0
    rows = rows.select(handle.spec.schema.names).cast(handle.spec.schema)
    handle._ensure_created()
    predicate = " AND ".join(f"target.{_quoted(c)} = source.{_quoted(c)}" for c in keys)

    def commit() -> int:
        metrics = (
            handle.snapshot()
            .merge(rows, predicate=predicate, source_alias="source", target_alias="target",
                   commit_properties=CommitProperties(max_commit_retries=0))
            .when_not_matched_insert_all()
            .execute()
        )
        return int(metrics.get("num_target_rows_inserted", 0))

    return retrying(commit, what=f"merging {rows.num_rows} row(s) into", uri=handle.uri)

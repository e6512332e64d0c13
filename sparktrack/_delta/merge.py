"""MERGE: insert the rows whose key is not in the table yet, atomically across processes.

Meant for tables where a key must exist once (e.g. a model registry's names and versions):
two processes inserting the same key leave one row. Delta's conflict check makes the second of
two concurrent merges fail (CommitFailedError: files were added that its read should have
seen); it is then run again on a fresh snapshot, where it finds the key and inserts nothing.

That check alone is not enough: a merge that read no file (the table was empty) is not told
about a concurrent insert (seen here, rarely, as two processes both creating one model). So
after inserting, a merge looks at the commits between the snapshot it read and its own: if
one of them inserted one of its keys first, it removes what it added (one more commit) and
reports nothing inserted. The earlier commit always wins, so exactly one row stays.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties
from deltalake.transaction import RemoveAction

from sparktrack._delta.retry import retrying
from sparktrack.errors import InvalidInputError

if TYPE_CHECKING:
    from sparktrack._delta.table import DeltaTableHandle

__all__ = ["insert_missing"]

_TOKEN_KEY = "sparktrack.merge"


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
        token = uuid.uuid4().hex
        snapshot = handle.snapshot()
        read_version = snapshot.version()
        metrics = (
            snapshot
            .merge(rows, predicate=predicate, source_alias="source", target_alias="target",
                   commit_properties=CommitProperties(max_commit_retries=0,
                                                      custom_metadata={_TOKEN_KEY: token}))
            .when_not_matched_insert_all()
            .execute()
        )
        inserted = int(metrics.get("num_target_rows_inserted", 0))
        if inserted and _inserted_first_by_another(handle, rows, keys, read_version, token):
            return 0
        return inserted

    return retrying(commit, what=f"merging {rows.num_rows} row(s) into", uri=handle.uri)


def _inserted_first_by_another(handle: DeltaTableHandle, rows: pa.Table, keys: list[str],
                               read_version: int, token: str) -> bool:
    """Whether a commit between ``read_version`` and ours (marked ``token``) inserted one of
    our keys; if so ours is undone (its files removed) and True returned."""
    latest = handle.snapshot().version()
    commits = handle.commits_since(read_version, until=latest)
    ours = next((c for c in commits if c.metadata.get(_TOKEN_KEY) == token), None)
    if ours is None:
        return False
    earlier = [path for c in commits if c.version < ours.version for path in c.added]
    if not earlier:
        return False
    try:
        before = handle.read_paths(earlier)
    except FileNotFoundError:  # compacted meanwhile: read the table as it is
        before = handle.read()
    ours_keys = {tuple(row[k] for k in keys) for row in rows.select(keys).to_pylist()}
    if not any(tuple(row[k] for k in keys) in ours_keys
               for row in before.select(keys).to_pylist()):
        return False
    now = time.time_ns() // 1_000_000
    table = handle.snapshot()
    table.create_write_transaction(
        [RemoveAction(path, True, now, None, None) for path in ours.added],
        mode="append", schema=handle.spec.schema,
        partition_by=list(handle.spec.partition_by) or None,
        commit_properties=CommitProperties(custom_metadata={_TOKEN_KEY: f"undo-{token}"}),
    )
    return True

"""Rewriting files of a table to remove rows for good (garbage collection of deleted runs)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import CommitProperties, DeltaTable
from deltalake.transaction import RemoveAction

from sparktrack._delta.errors import CommitFailedError, engine_message, translated
from sparktrack._delta.files import write_data_file
from sparktrack._delta.retry import RetryPolicy, retrying
from sparktrack._delta.scan import scan_fragment
from sparktrack.errors import StoreError

if TYPE_CHECKING:
    from sparktrack._delta.table import DeltaTableHandle
    from sparktrack._store.schemas import TableSpec

__all__ = ["remove_runs"]

DEFAULT_DEADLINE_SECONDS = 120.0


def remove_runs(
    handle: DeltaTableHandle,
    experiment_id: str,
    run_ids: Sequence[str],
    *,
    deadline: float | None = None,
) -> int:
    """Rewrite the files of one experiment's partition that hold the given runs' rows,
    without those rows; returns the number of rows removed.

    One commit removes those files and adds their rewritten rows (written by Arrow with the
    table's exact column types, unlike ``DeltaTable.delete``). It names the files it
    removes, so rows appended meanwhile, in files of their own, never conflict with it and
    are kept. A conflict (another process removed one of those files: a compaction, another
    gc) is retried on a fresh snapshot (the layer's retry policy) until ``deadline`` (a
    ``time.monotonic()`` value; default: two minutes from now), then StoreError.
    """
    if "experiment_id" not in handle.spec.partition_by:
        raise StoreError(f"Table {handle.spec.name} is not partitioned by experiment.")
    doomed = pa.array(list(run_ids), type=pa.string())
    if deadline is None:
        deadline = time.monotonic() + DEFAULT_DEADLINE_SECONDS

    def give_up(exc: BaseException, attempts: int) -> StoreError:
        return StoreError(
            f"gc could not rewrite {handle.uri} (experiment {experiment_id}): {attempts} "
            f"commit(s) conflicted with other writers until the deadline "
            f"({engine_message(exc)})"
        )

    return retrying(lambda: _remove_rows_once(handle, experiment_id, doomed),
                    what="gc rewriting Delta table", uri=handle.uri,
                    policy=RetryPolicy(retries=None, deadline=deadline), give_up=give_up)


def _remove_rows_once(handle: DeltaTableHandle, experiment_id: str, doomed: pa.Array) -> int:
    latest = handle.snapshot()
    if latest is None:
        return 0
    spec = handle.spec
    # One pinned snapshot: the files read are exactly the files the commit removes.
    pinned = handle.snapshot(version=latest.version())
    with translated("gc rewriting Delta table", handle.uri):
        dataset = pinned.to_pyarrow_dataset(
            file_pruning_predicate=[("experiment_id", "=", experiment_id)],
            filesystem=handle._filesystem,
        )
        # File statistics skip the files whose run_id range holds none of the runs.
        candidates = dataset.get_fragments(
            filter=(pds.field("experiment_id") == experiment_id)
            & pds.field("run_id").isin(doomed)
        )
        sizes = dict(zip(*pa.table(pinned.get_add_actions(flatten=True))
                         .select(["path", "size_bytes"]).to_pydict().values(), strict=True))
        affected, kept, removed_rows = [], [], 0
        for fragment in candidates:
            rows = scan_fragment(fragment, dataset.schema)
            stays = pc.invert(pc.is_in(rows.column("run_id"), value_set=doomed))
            keep = rows.filter(stays)
            if keep.num_rows < rows.num_rows:
                affected.append(fragment)
                kept.append(keep)
                removed_rows += rows.num_rows - keep.num_rows
        if not affected:
            return 0
        partition = {"experiment_id": experiment_id}
        now = time.time_ns() // 1_000_000
        actions: list[Any] = [
            RemoveAction(fragment.path, True, now, sizes.get(fragment.path), partition)
            for fragment in affected
        ]
        filesystem = affected[0].filesystem
        written = None
        rows = pa.concat_tables(kept).select(spec.schema.names).cast(spec.schema)
        if rows.num_rows:
            written, add = write_data_file(
                filesystem, rows.drop_columns(list(spec.partition_by)),
                folder=f"experiment_id={experiment_id}", partition=partition, now=now,
            )
            actions.insert(0, add)
        token = uuid.uuid4().hex
        try:
            _commit_actions(pinned, actions, spec, token=token)
        except BaseException:
            if written is not None:
                filesystem.delete_file(written)  # never committed: nobody refers to it
            raise
        _undo_if_overtaken(handle, pinned, token, [a.path for a in affected], written)
    return removed_rows


def _undo_if_overtaken(
    handle: DeltaTableHandle, pinned: DeltaTable, token: str, removed: list[str],
    written: str | None,
) -> None:
    """Undo a gc commit whose files another commit had already removed, then retry.

    deltalake does not see a conflict when a compaction (``dataChange=false``) removed the
    files first: its merged file would keep the runs' rows, and the rows rewritten here
    would be there twice. Remove the file added here and report a conflict instead.
    """
    newest = handle.snapshot()
    history = newest.history(limit=max(1, newest.version() - pinned.version()))
    ours = next((entry["version"] for entry in history if entry.get("sparktrack.gc") == token),
                None)
    if ours is None or ours == pinned.version() + 1:
        return  # nothing committed in between: the files were live
    before = handle.snapshot(version=ours - 1)
    live = set(pa.table(before.get_add_actions(flatten=True)).column("path").to_pylist())
    if all(path in live for path in removed):
        return
    if written is not None:
        now = time.time_ns() // 1_000_000
        undo = [RemoveAction(written, True, now, None, None)]
        _commit_actions(handle.snapshot(version=handle.snapshot().version()), undo, handle.spec,
                        token=uuid.uuid4().hex)
    raise CommitFailedError(
        f"another commit removed files of {handle.uri} before this gc commit (a compaction?)"
    )


def _commit_actions(table: DeltaTable, actions: list[Any], spec: TableSpec, *, token: str) -> None:
    """Commit add and remove actions on top of ``table``'s version as one Delta commit, marked
    with ``token`` in its commit info (``sparktrack.gc``) so it can be found again."""
    table.create_write_transaction(
        actions, mode="append", schema=spec.schema, partition_by=list(spec.partition_by),
        commit_properties=CommitProperties(custom_metadata={"sparktrack.gc": token}),
    )

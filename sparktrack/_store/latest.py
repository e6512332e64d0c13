"""Current state of runs from the raw append-only rows, in the ``runs_latest`` shape.

The rules (newest run row, first param value, live tags, merged summaries) are those of
:mod:`sparktrack._store.current_rules`, shared with the client's reads and search. Pure
pyarrow, no I/O: the Spark data source (on executors) and the maintenance job (which
materializes ``runs_latest``) both hand it the raw rows they read and get the same answer.
All rows of a run share its experiment, so any set of whole experiments can be resolved alone.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._store.current_rules import (
    current_experiments,
    current_params,
    current_runs,
    current_summaries,
    live_tags,
)
from sparktrack._store.locations import resolve_column
from sparktrack._store.schemas import RUNS_LATEST

# The current-state rules are re-exported for the data source, which imports them from here.
__all__ = [
    "current_experiments",
    "current_params",
    "current_runs",
    "live_tags",
    "millis_to_timestamp",
    "runs_latest",
]

_MILLIS_TO_TIMESTAMP = pa.timestamp("us", tz="UTC")


def millis_to_timestamp(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Milliseconds since the epoch as a UTC microsecond timestamp column (nulls kept)."""
    return pc.multiply(column, 1000).cast(_MILLIS_TO_TIMESTAMP)


def _map_column(
    run_ids: pa.Array, entries: pa.Table, key: str, value: str, map_type: pa.MapType
) -> pa.Array:
    """One map per run of ``run_ids`` from (run_id, key, value) rows; empty when it has none."""
    if entries.num_rows == 0:
        offsets = pa.array(np.zeros(len(run_ids) + 1, dtype=np.int32))
        return pa.MapArray.from_arrays(
            offsets, pa.array([], map_type.key_type), pa.array([], map_type.item_type),
            type=map_type,
        )
    position = pc.index_in(entries.column("run_id"), value_set=run_ids)
    entries = (
        entries.select([key, value])
        .append_column("__pos", position)
        .filter(pc.is_valid(position))
        .sort_by([("__pos", "ascending"), (key, "ascending")])
    )
    counts = np.bincount(
        entries.column("__pos").to_numpy().astype(np.int64), minlength=len(run_ids)
    )
    offsets = np.zeros(len(run_ids) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.MapArray.from_arrays(
        pa.array(offsets),
        entries.column(key).combine_chunks().cast(map_type.key_type),
        entries.column(value).combine_chunks().cast(map_type.item_type),
        type=map_type,
    )


def runs_latest(
    runs: pa.Table,
    params: pa.Table,
    tags: pa.Table,
    summaries: pa.Table,
    *,
    store_root: str,
    include_deleted: bool = False,
) -> pa.Table:
    """One row per run in the RUNS_LATEST schema (Databricks ``mlflow-experiment`` shape).

    Args:
        runs, params, tags, summaries: raw rows (store schemas) of the same experiments.
        store_root: the root the rows were read from; stored (relative) artifact URIs are
            resolved against it.
        include_deleted: keep runs whose lifecycle_stage is ``deleted``.
    """
    info = current_runs(runs)
    if not include_deleted:
        info = info.filter(pc.equal(info.column("lifecycle_stage"), "active"))
    info = info.sort_by([("start_time", "descending"), ("run_id", "ascending")])
    run_ids = info.column("run_id").combine_chunks()
    merged = current_summaries(summaries)
    schema = RUNS_LATEST.schema
    metric_map = schema.field("metrics").type
    text_map = schema.field("params").type
    columns = {
        "run_id": info.column("run_id"),
        "experiment_id": info.column("experiment_id"),
        "run_name": info.column("run_name"),
        "parent_run_id": info.column("parent_run_id"),
        "user_id": info.column("user_id"),
        "status": info.column("status"),
        "lifecycle_stage": info.column("lifecycle_stage"),
        "start_time": millis_to_timestamp(info.column("start_time")),
        "end_time": millis_to_timestamp(info.column("end_time")),
        "artifact_uri": resolve_column(info.column("artifact_uri"), store_root),
        "metrics": _map_column(run_ids, merged, "key", "latest_value", metric_map),
        "metrics_min": _map_column(run_ids, merged, "key", "min_value", metric_map),
        "metrics_max": _map_column(run_ids, merged, "key", "max_value", metric_map),
        "params": _map_column(run_ids, current_params(params), "key", "value", text_map),
        "tags": _map_column(run_ids, live_tags(tags), "key", "value", text_map),
    }
    return pa.table(columns).cast(schema)

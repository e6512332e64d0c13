"""Metric summaries: latest/min/max/count per (run, key), kept by the writer.

Each commit of metric points also commits one partial summary row per (run, key) it touched.
Partial summaries merge associatively (min of mins, max of maxes, sum of counts, latest by the
greatest (step, timestamp, value)), so concurrent writers never need to read each other's rows
and search never scans the history.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._store.rows import group_codes, repeated_codes
from sparktrack._store.schemas import METRIC_SUMMARIES

__all__ = ["merge_summaries", "summarize_points"]

_GROUP = ["run_id", "experiment_id", "key"]
_COUNT_ALL = pc.CountOptions(mode="all")


def summarize_points(points: pa.Table, *, updated_at: int) -> pa.Table:
    """One summary row per (run, key) of a batch of metric points (METRICS schema)."""
    # Sorting ascending puts the greatest (step, timestamp, value) last in each group, and NaN
    # after every number, which is how MLflow ranks a NaN logged at the same step and time.
    ordered = points.sort_by(
        [(name, "ascending") for name in ("run_id", "key", "step", "timestamp", "value")]
    )
    grouped = ordered.group_by(_GROUP, use_threads=False).aggregate(
        [
            ("value", "last"),
            ("step", "last"),
            ("timestamp", "last"),
            ("value", "min"),
            ("value", "max"),
            ("value", "count", _COUNT_ALL),
        ]
    )
    return _as_summary(grouped, "value_last", "step_last", "timestamp_last", "value_min",
                       "value_max", "value_count", updated_at=updated_at)


def merge_summaries(partials: pa.Table) -> pa.Table:
    """Merge partial summary rows into one row per (run, key)."""
    if partials.num_rows == 0:
        return partials
    codes = group_codes(partials, ["run_id", "key"])
    if codes is not None:
        # Most (run, key) pairs have a single partial (a run that logged the key in one
        # commit): those are already merged, only the others need the group-by below.
        repeated = repeated_codes(codes)
        if not repeated.any():
            return partials.select(METRIC_SUMMARIES.schema.names).cast(METRIC_SUMMARIES.schema)
        singles = partials.filter(pa.array(~repeated))
        singles = singles.select(METRIC_SUMMARIES.schema.names).cast(METRIC_SUMMARIES.schema)
        merged = _merge_by_group(partials.filter(pa.array(repeated)))
        return pa.concat_tables([singles, merged])
    return _merge_by_group(partials)


def _merge_by_group(partials: pa.Table) -> pa.Table:
    ordered = partials.sort_by(
        [
            (name, "ascending")
            for name in ("run_id", "key", "latest_step", "latest_timestamp", "latest_value")
        ]
    )
    grouped = ordered.group_by(_GROUP, use_threads=False).aggregate(
        [
            ("latest_value", "last"),
            ("latest_step", "last"),
            ("latest_timestamp", "last"),
            ("min_value", "min"),
            ("max_value", "max"),
            ("count", "sum"),
            ("updated_at", "max"),
        ]
    )
    return _as_summary(grouped, "latest_value_last", "latest_step_last", "latest_timestamp_last",
                       "min_value_min", "max_value_max", "count_sum",
                       updated_at=grouped.column("updated_at_max"))


def _as_summary(
    grouped: pa.Table,
    latest_value: str,
    latest_step: str,
    latest_timestamp: str,
    min_value: str,
    max_value: str,
    count: str,
    *,
    updated_at: int | pa.ChunkedArray,
) -> pa.Table:
    if isinstance(updated_at, int):
        updated_at = pa.array([updated_at] * grouped.num_rows, type=pa.int64())
    return pa.table(
        {
            "run_id": grouped.column("run_id"),
            "experiment_id": grouped.column("experiment_id"),
            "key": grouped.column("key"),
            "latest_value": grouped.column(latest_value),
            "latest_step": grouped.column(latest_step),
            "latest_timestamp": grouped.column(latest_timestamp),
            "min_value": grouped.column(min_value),
            "max_value": grouped.column(max_value),
            "count": grouped.column(count),
            "updated_at": updated_at,
        }
    ).cast(METRIC_SUMMARIES.schema)

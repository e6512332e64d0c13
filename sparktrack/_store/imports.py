"""Writing whole runs that already exist elsewhere (``sparktrack import`` from MLflow).

The logging path creates a run now, with a new id, and buffers its rows one call at a time.
An import instead writes runs that already have an id, times, a status and a full history,
many runs per Delta commit: :func:`write_imported_runs` commits the rows of a batch of runs
with one commit per table. It keeps what it is given (ids, timestamps, lifecycle), so the
caller validates and shapes the rows (:class:`ImportedRuns`).

A run counts as present once its ``runs`` row is committed, and that row is committed last:
a batch interrupted before it leaves rows of runs that are not present (partial runs), which
:func:`remove_partial_runs` takes out again before the batch is written once more. Metric
summaries are committed first and without the write buffer's batch id, so the summary repair
(:mod:`sparktrack._store.summary_repair`) never sees the import's points as uncovered; a
batch interrupted between the two is made whole the same way, by removing its partial runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._store.rows import next_version
from sparktrack._store.schemas import (
    INPUTS,
    METRIC_SUMMARIES,
    METRICS,
    PARAMS,
    RUNS,
    TAGS,
)
from sparktrack._store.summaries import summarize_points

__all__ = ["ImportedRuns", "partial_run_ids", "remove_partial_runs", "write_imported_runs"]

# Every table a run has rows in besides ``runs`` (removed from when a batch was cut short).
_RUN_DATA_TABLES = (METRIC_SUMMARIES.name, METRICS.name, PARAMS.name, TAGS.name, INPUTS.name)


@dataclass(frozen=True, slots=True)
class ImportedRuns:
    """Rows of whole runs, each an Arrow table in its store table's schema (``updated_at``
    and ``logged_at`` may be left out: they are stamped at commit)."""

    runs: pa.Table
    tags: pa.Table
    params: pa.Table
    metrics: pa.Table


def write_imported_runs(tables: dict, batch: ImportedRuns) -> None:
    """Commit a batch of whole runs: summaries, tags, params, metrics, then the runs' rows.

    ``tables`` are the store's table handles by name. Five commits at most, whatever the
    number of runs, so an import of thousands of runs costs a few commits per batch.
    """
    stamp = next_version()
    metrics = batch.metrics.select(METRICS.schema.names).cast(METRICS.schema)
    if metrics.num_rows:
        tables[METRIC_SUMMARIES.name].append(summarize_points(metrics, updated_at=stamp))
    tables[TAGS.name].append(_stamped(batch.tags, TAGS.schema, "updated_at", stamp))
    # Params are stamped with the import's time (milliseconds, like the logging path).
    tables[PARAMS.name].append(_stamped(batch.params, PARAMS.schema, "logged_at", stamp // 1000))
    if metrics.num_rows:
        # Sorted as the write buffer does: a run's points together, smaller files.
        tables[METRICS.name].append(metrics.sort_by(
            [("experiment_id", "ascending"), ("run_id", "ascending"), ("key", "ascending"),
             ("step", "ascending")]))
    tables[RUNS.name].append(_stamped(batch.runs, RUNS.schema, "updated_at", stamp))


def partial_run_ids(tables: dict, experiment_id: str, candidates: Iterable[str]) -> list[str]:
    """Which of ``candidates`` (runs with no ``runs`` row) have rows in another table of the
    experiment: what a batch cut short left behind."""
    wanted = pa.array(sorted(set(candidates)), type=pa.string())
    if len(wanted) == 0:
        return []
    found: set[str] = set()
    for name in _RUN_DATA_TABLES:
        ids = tables[name].read(prune=[("experiment_id", "=", experiment_id)],
                                columns=["run_id"]).column("run_id")
        if len(ids):
            present = pc.unique(ids.combine_chunks())
            found.update(present.filter(pc.is_in(present, value_set=wanted)).to_pylist())
    return sorted(found)


def remove_partial_runs(tables: dict, experiment_id: str, run_ids: list[str]) -> int:
    """Remove every row of runs a batch cut short left behind; the rows removed.

    Only for runs without a ``runs`` row: nothing else refers to them.
    """
    if not run_ids:
        return 0
    return sum(tables[name].remove_runs(experiment_id, run_ids) for name in _RUN_DATA_TABLES)


def _stamped(rows: pa.Table, schema: pa.Schema, column: str, value: int) -> pa.Table:
    if column not in rows.column_names:
        rows = rows.append_column(column, pa.array([value] * rows.num_rows, type=pa.int64()))
    return rows.select(schema.names).cast(schema)

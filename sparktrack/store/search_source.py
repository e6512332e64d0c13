"""The store's side of search: candidate runs and one (run_id, value) table per key.

Search reads only what a filter names: the runs of the selected experiments, and for each key
in the filter or the order one filtered scan of the params, tags or metric summaries of those
experiments (never the metric history). The page of results is then completed with all params,
latest metrics and tags of just the runs on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from sparktrack.entities import Run, RunData, ViewType
from sparktrack.store.rows import newest_rows, oldest_rows
from sparktrack.store.schemas import METRIC_SUMMARIES, PARAMS, TAGS
from sparktrack.store.summaries import merge_summaries
from sparktrack.store.tracking_store import TrackingStore, run_info_from_row

__all__ = ["StoreSearchSource"]

_RUN_COLUMNS = [
    "run_id", "experiment_id", "run_name", "status", "user_id", "start_time", "end_time",
    "artifact_uri", "lifecycle_stage",
]
_AGGREGATE_COLUMN = {"latest": "latest_value", "min": "min_value", "max": "max_value"}


class StoreSearchSource:
    """A :class:`sparktrack.search.SearchSource` over some experiments of a store."""

    def __init__(
        self, store: TrackingStore, experiment_ids: Sequence[str], *, view_type: ViewType
    ) -> None:
        self._store = store
        self._experiment_ids = [str(e) for e in experiment_ids]
        self._prune = [("experiment_id", "in", self._experiment_ids)]
        self._run_rows = store.run_rows(self._experiment_ids, view_type=view_type)
        self._summaries: pa.Table | None = None

    def runs(self) -> pa.Table:
        return self._run_rows.select(_RUN_COLUMNS)

    def run_rows(self) -> pa.Table:
        return self._run_rows

    def _read(self, table: str, where: pds.Expression) -> pa.Table:
        return self._store.tables[table].read(prune=self._prune, where=where)

    def metric(self, key: str, aggregate: str) -> pa.Table:
        merged = merge_summaries(self._read(METRIC_SUMMARIES.name, pds.field("key") == key))
        return pa.table({"run_id": merged.column("run_id"),
                         "value": merged.column(_AGGREGATE_COLUMN[aggregate])})

    def param(self, key: str) -> pa.Table:
        rows = oldest_rows(self._read(PARAMS.name, pds.field("key") == key), ["run_id"], "logged_at")
        return rows.select(["run_id", "value"])

    def tag(self, key: str) -> pa.Table:
        rows = newest_rows(self._read(TAGS.name, pds.field("key") == key), ["run_id"])
        return rows.filter(pc.invert(rows.column("deleted"))).select(["run_id", "value"])

    def load_runs(self, run_rows: pa.Table) -> list[Run]:
        """Complete a page of run rows with their params, latest metrics and tags."""
        if run_rows.num_rows == 0:
            return []
        ids = run_rows.column("run_id")
        where = pc.field("run_id").isin(ids)
        params = oldest_rows(self._read(PARAMS.name, where), ["run_id", "key"], "logged_at")
        summaries = merge_summaries(self._read(METRIC_SUMMARIES.name, where))
        tags = newest_rows(self._read(TAGS.name, where), ["run_id", "key"])
        tags = tags.filter(pc.invert(tags.column("deleted")))
        data: dict[str, RunData] = {
            run_id: RunData(metrics={}, params={}, tags={}) for run_id in ids.to_pylist()
        }
        for run_id, key, value in _triples(params, "value"):
            data[run_id].params[key] = value
        for run_id, key, value in _triples(summaries, "latest_value"):
            data[run_id].metrics[key] = value
        for run_id, key, value in _triples(tags, "value"):
            data[run_id].tags[key] = value
        return [Run(info=run_info_from_row(row), data=data[row["run_id"]])
                for row in run_rows.to_pylist()]


def _triples(table: pa.Table, value_column: str):
    return zip(
        table.column("run_id").to_pylist(),
        table.column("key").to_pylist(),
        table.column(value_column).to_pylist(),
        strict=True,
    )

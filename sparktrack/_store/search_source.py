"""The store's side of search: candidate runs and one (run_id, value) table per key.

Search reads only what a filter names: the current runs of the selected experiments, and for
each key in the filter or the order that key's current params, tags or metric summaries
(never the metric history). The page of results is then completed with all params, latest
metrics and tags of just the runs on it. The current state is the store's
:class:`~sparktrack._store.current_state.CurrentState`: after the first search of an
experiment, a search reads only the files committed since.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparktrack.entities import LifecycleStage, Run, RunData, ViewType
from sparktrack._store.current_rules import without_deleted_tags
from sparktrack._store.run_reads import run_info_from_row
from sparktrack._store.schemas import METRIC_SUMMARIES, PARAMS, RUNS, TAGS
from sparktrack._store.tracking_store import TrackingStore

__all__ = ["ROW", "StoreSearchSource"]

#: The column of :meth:`StoreSearchSource.runs` holding each run's position in its run rows.
ROW = "__row"

_RUN_COLUMNS = [
    "run_id", "experiment_id", "run_name", "status", "user_id", "start_time", "end_time",
    "artifact_uri", "lifecycle_stage",
]
_TABLES = (RUNS.name, PARAMS.name, TAGS.name, METRIC_SUMMARIES.name)
_AGGREGATE_COLUMN = {"latest": "latest_value", "min": "min_value", "max": "max_value"}


class StoreSearchSource:
    """A :class:`sparktrack._search.SearchSource` over some experiments of a store."""

    def __init__(
        self, store: TrackingStore, experiment_ids: Sequence[str], *, view_type: ViewType
    ) -> None:
        self._experiment_ids = [str(e) for e in experiment_ids]
        # Every search reads all four tables' state (the page needs params, metrics and tags);
        # the search then sees one version of each table.
        self._views = store.current_views(_TABLES, self._experiment_ids)
        rows = self._views[RUNS.name].rows()
        if view_type is not ViewType.ALL:
            stage = (LifecycleStage.ACTIVE if view_type is ViewType.ACTIVE_ONLY
                     else LifecycleStage.DELETED)
            rows = rows.filter(pc.equal(rows.column("lifecycle_stage"), stage.value))
        self._run_rows = rows
        self._runs = rows.select(_RUN_COLUMNS).append_column(
            ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))

    def runs(self) -> pa.Table:
        """The candidate columns of the runs, with each run's position in :meth:`run_rows`
        (column ``ROW``): a page takes its full rows by position, not by a join on run ids."""
        return self._runs

    def run_rows(self) -> pa.Table:
        return self._run_rows

    def _current(self, table: str, key: str | None = None) -> pa.Table:
        view = self._views[table]
        return view.rows() if key is None else view.rows_with_key(key)

    def metric(self, key: str, aggregate: str) -> pa.Table:
        rows = self._current(METRIC_SUMMARIES.name, key)
        return pa.table({"run_id": rows.column("run_id"),
                         "value": rows.column(_AGGREGATE_COLUMN[aggregate])})

    def param(self, key: str) -> pa.Table:
        return self._current(PARAMS.name, key).select(["run_id", "value"])

    def tag(self, key: str) -> pa.Table:
        return without_deleted_tags(self._current(TAGS.name, key)).select(["run_id", "value"])

    def current_values(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(params, merged metric summaries, live tags) of every run of the experiments."""
        tags = without_deleted_tags(self._current(TAGS.name))
        return self._current(PARAMS.name), self._current(METRIC_SUMMARIES.name), tags

    def page_values(self, run_rows: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(params, merged metric summaries, live tags) of the runs in ``run_rows``."""
        ids = run_rows.column("run_id")
        params, summaries, tags = self.current_values()

        def of_page(rows: pa.Table) -> pa.Table:
            return rows.filter(pc.is_in(rows.column("run_id"), value_set=ids))

        return of_page(params), of_page(summaries), of_page(tags)

    def load_runs(self, run_rows: pa.Table) -> list[Run]:
        """Complete a page of run rows with their params, latest metrics and tags."""
        if run_rows.num_rows == 0:
            return []
        params, summaries, tags = self.page_values(run_rows)
        data: dict[str, RunData] = {
            run_id: RunData(metrics={}, params={}, tags={})
            for run_id in run_rows.column("run_id").to_pylist()
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

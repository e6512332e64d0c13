"""The store's side of search: candidate runs and each key's values, aligned with the runs.

Search reads only what a filter names: the current runs of the selected experiments, and for
each key in the filter or the order that key's current params, tags or metric summaries
(never the metric history). The page of results is then completed with all params, latest
metrics and tags of just the runs on it. The current state is the store's
:class:`~sparktrack._store.current_state.CurrentState`: after the first search of an
experiment, a search reads only the files committed since.

What a search derives from an experiment's state is kept with that state's snapshot (its
``memo``) while the snapshot is current, so the next search of an unchanged experiment does
not derive it again:

* the candidate runs (a view type's runs; their artifact URIs resolved when the search names
  ``attributes.artifact_uri``, else only the page's are);
* for each key searched, its values in the order of the experiment's runs (the source is an
  :class:`~sparktrack._search.AlignedSource`: clauses compare arrays, no join on run ids);
* for each table, a bucket code per row (:func:`~sparktrack._store.run_ids.bucket_codes`), with
  which a page finds its runs' rows without hashing every run id; a state loaded from its saved
  file keeps the columns a page reads instead, and finds the rows by their run ids' stored
  indices (:meth:`~sparktrack._store.stored_rows.StoredRows.of_runs`).

A commit to an experiment makes new snapshots of the tables it wrote, and their values are
derived again on the next search that needs them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparktrack.entities import LifecycleStage, Run, RunData, ViewType
from sparktrack._search import ROW, Identifier, take_rows
from sparktrack._store.current_rules import without_deleted_tags
from sparktrack._store.current_state import Snapshot
from sparktrack._store.rows import bool_mask, concat_tables
from sparktrack._store.run_ids import IdIndex, bucket_codes, members, positions
from sparktrack._store.run_reads import run_info_from_row
from sparktrack._store.schemas import METRIC_SUMMARIES, PARAMS, RUNS, TAGS
from sparktrack._store.tracking_store import TrackingStore

__all__ = ["StoreSearchSource"]

_RUN_COLUMNS = [
    "run_id", "experiment_id", "run_name", "status", "user_id", "start_time", "end_time",
    "artifact_uri", "lifecycle_stage",
]
_AGGREGATE_COLUMN = {"latest": "latest_value", "min": "min_value", "max": "max_value"}
_SPECS = {spec.name: spec for spec in (RUNS, PARAMS, TAGS, METRIC_SUMMARIES)}
_TABLES = tuple(_SPECS)
_TABLE_OF_KIND = {"metric": METRIC_SUMMARIES, "param": PARAMS, "tag": TAGS}
# What a page of runs shows of each table.
_PAGE_COLUMNS = {
    PARAMS.name: ("run_id", "key", "value"),
    METRIC_SUMMARIES.name: ("run_id", "key", "latest_value"),
    TAGS.name: ("run_id", "key", "value", "deleted"),
}


class _Candidates(NamedTuple):
    """The runs of one experiment a search considers."""

    kept: np.ndarray | None  # their positions in the runs snapshot's rows (None: all rows)
    rows: pa.Table  # their rows, artifact URIs resolved or not (see _candidates)


class StoreSearchSource:
    """A :class:`sparktrack._search.AlignedSource` over some experiments of a store."""

    def __init__(
        self, store: TrackingStore, experiment_ids: Sequence[str], *, view_type: ViewType,
        artifact_uris: bool = True,
    ) -> None:
        """
        Args:
            artifact_uris: whether :meth:`runs` resolves every run's ``artifact_uri`` (a
                search that names it); without, the stored form is left in :meth:`runs` and
                only :meth:`page_rows` resolves it (a million runs' take 0.2 s).
        """
        self._experiment_ids = [str(e) for e in experiment_ids]
        # Every search reads all four tables' state (the page needs params, metrics and tags);
        # the search then sees one version of each table.
        self._views = store.current_views(_TABLES, self._experiment_ids)
        runs_view = self._views[RUNS.name]
        self._run_snapshots = runs_view.snapshots
        self._resolve_page = None if artifact_uris else runs_view.resolved_now
        self._candidates = _each(
            lambda snapshot: _candidates(snapshot, view_type,
                                         runs_view.resolved if artifact_uris else None),
            self._run_snapshots)
        rows = concat_tables([part.rows for part in self._candidates], RUNS.schema)
        self._run_rows = rows
        self._runs = rows.select(_RUN_COLUMNS).append_column(
            ROW, pa.array(np.arange(rows.num_rows, dtype=np.int64)))

    def runs(self) -> pa.Table:
        """The candidate columns of the runs, numbered by the ``ROW`` column: a page takes its
        full rows by position (:meth:`page_rows`), not by a join on run ids."""
        return self._runs

    def page_rows(self, page: pa.Table) -> pa.Table:
        """The full run rows of ``page`` (rows of :meth:`runs`), in its order."""
        rows = take_rows(self._run_rows, page.column(ROW).combine_chunks())
        return rows if self._resolve_page is None else self._resolve_page(rows)

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

    def aligned(self, ident: Identifier) -> pa.ChunkedArray | None:
        """The value of a metric, param or tag for each row of :meth:`runs` (null: none)."""
        spec = _TABLE_OF_KIND.get(ident.kind)
        if spec is None:
            return None
        pieces = _each(lambda part: self._aligned_part(ident, part),
                       range(len(self._run_snapshots)))
        return pa.chunked_array(pieces, type=spec.schema.field(_column_of(ident)).type)

    def prepare(self, idents: Iterable[Identifier]) -> None:
        """Have the values of ``idents`` for :meth:`aligned` ready: all of them at once, on
        every core (a search evaluates its clauses one after the other; each one's values
        are found by scans that release the GIL)."""
        parts = [(ident, part) for ident in idents if ident.kind in _TABLE_OF_KIND
                 for part in range(len(self._run_snapshots))]
        if len(parts) > 1:
            _each(lambda item: self._aligned_part(*item), parts)

    def _aligned_part(self, ident: Identifier, part: int) -> pa.Array:
        """:meth:`aligned` for the runs of one experiment (kept in its snapshot's memo)."""
        values = self._views[_TABLE_OF_KIND[ident.kind].name].snapshots[part]
        aligned = _aligned(self._run_snapshots[part], values, kind=ident.kind, key=ident.key,
                           column=_column_of(ident))
        kept = self._candidates[part].kept
        return aligned if kept is None else aligned.take(pa.array(kept))

    def current_values(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(params, merged metric summaries, live tags) of every run of the experiments."""
        tags = without_deleted_tags(self._current(TAGS.name))
        return self._current(PARAMS.name), self._current(METRIC_SUMMARIES.name), tags

    def page_values(self, run_rows: pa.Table) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(params, latest metric values, live tags) of the runs in ``run_rows``: the columns
        ``run_id``, ``key`` and ``value`` (``latest_value`` for metrics)."""
        ids = run_rows.column("run_id").combine_chunks()

        tables = (PARAMS.name, METRIC_SUMMARIES.name, TAGS.name)
        parts = [(table, snapshot) for table in tables
                 for snapshot in self._views[table].snapshots]
        found = _each(lambda part: _rows_of_runs(part[1], ids, _PAGE_COLUMNS[part[0]]), parts)

        def of_page(table: str) -> pa.Table:
            schema = pa.schema([_SPECS[table].schema.field(name)
                                for name in _PAGE_COLUMNS[table]])
            return concat_tables([rows for (name, _), rows in zip(parts, found, strict=True)
                                  if name == table], schema)

        tags = without_deleted_tags(of_page(TAGS.name))
        return of_page(PARAMS.name), of_page(METRIC_SUMMARIES.name), tags

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


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _each(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``function`` of each item, the items on all cores when there are several (one per
    experiment searched, or per table and experiment): Arrow and numpy release the GIL while
    they decode, compare and take, so two experiments take about the time of one."""
    global _pool
    if len(items) < 2 or (os.cpu_count() or 1) < 2:
        return [function(item) for item in items]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count(),
                                       thread_name_prefix="sparktrack-search")
    return list(_pool.map(function, items))


def _column_of(ident: Identifier) -> str:
    """The column holding the values of a metric, param or tag identifier."""
    return _AGGREGATE_COLUMN[ident.aggregate] if ident.kind == "metric" else "value"


def _candidates(snapshot: Snapshot, view_type: ViewType,
                resolve: Callable[[pa.Table], pa.Table] | None) -> _Candidates:
    """The runs of ``snapshot`` a search of ``view_type`` considers (kept in its memo), their
    artifact URIs resolved with ``resolve`` (None: as stored)."""
    memo_key = ("search candidates", view_type, resolve is not None)
    found = snapshot.memo.get(memo_key)
    if found is None:
        rows, kept = snapshot.rows, None
        if view_type is not ViewType.ALL:
            stage = (LifecycleStage.ACTIVE if view_type is ViewType.ACTIVE_ONLY
                     else LifecycleStage.DELETED)
            at_stage = pc.equal(rows.column("lifecycle_stage"), stage.value)
            if pc.sum(at_stage).as_py() != rows.num_rows:  # all at the stage: no copy
                kept = np.flatnonzero(bool_mask(at_stage))
                rows = rows.take(pa.array(kept))
        found = snapshot.memo[memo_key] = _Candidates(
            kept, rows if resolve is None else resolve(rows))
    return found


def _aligned(runs: Snapshot, values: Snapshot, *, kind: str, key: str,
             column: str) -> pa.Array:
    """``column`` of the ``key`` rows of ``values`` for each row of ``runs`` (null: none).

    Kept in the memo of ``values`` for as long as ``runs`` is the same snapshot (both belong
    to one experiment; a commit to either makes new ones)."""
    memo_key = ("aligned", kind, key, column)
    found = values.memo.get(memo_key)
    if found is not None and found[0] is runs.rows:
        return found[1]
    if values.stored is not None and kind != "tag":
        # Straight from the stored rows: their run ids are indices into the stored
        # dictionary of run ids, whose positions among the runs are found once.
        indices, column_values = values.stored.key_column(key, column)
        at = _dictionary_positions(runs, values)[indices]
        extra = values.extra_with_key(key)  # rows of runs changed since the state was saved
        if extra is not None and extra.num_rows:
            at = np.concatenate([at, positions(extra.column("run_id"), _id_index(runs))])
            column_values = pa.concat_arrays(
                [column_values, extra.column(column).combine_chunks()])
    else:
        rows = values.rows_with_key(key)
        if kind == "tag":
            rows = without_deleted_tags(rows)
        at = positions(rows.column("run_id"), _id_index(runs))
        column_values = rows.column(column).combine_chunks()
    row_of_run = np.full(runs.rows.num_rows, -1, dtype=np.int64)
    present = at >= 0  # a row of a run missing from the runs table matches no run, as a join
    row_of_run[at[present]] = np.flatnonzero(present)
    aligned = column_values.take(pa.array(row_of_run, mask=row_of_run < 0))
    values.memo[memo_key] = (runs.rows, aligned)
    return aligned


def _dictionary_positions(runs: Snapshot, values: Snapshot) -> np.ndarray:
    """For each run id of the stored rows of ``values``, its position in ``runs`` (or -1)."""
    found = values.memo.get("dictionary positions")
    if found is not None and found[0] is runs.rows:
        return found[1]
    dictionary = values.stored.run_ids()
    if dictionary.equals(runs.rows.column("run_id").combine_chunks()):
        # Saved in the runs' order (stored_rows.encode's run_order), and every run has rows.
        at = np.arange(len(dictionary), dtype=np.int64)
    else:
        at = positions(dictionary, _id_index(runs))
    values.memo["dictionary positions"] = (runs.rows, at)
    return at


def _id_index(runs: Snapshot) -> IdIndex:
    """The run ids of ``runs`` prepared for finding the positions of other tables' ids (kept
    in its memo: every key searched looks them up)."""
    found = runs.memo.get("id index")
    if found is None:
        found = runs.memo["id index"] = IdIndex(runs.rows.column("run_id").combine_chunks())
    return found


def _rows_of_runs(snapshot: Snapshot, run_ids: pa.Array, columns: Sequence[str]) -> pa.Table:
    """``columns`` of the rows of ``snapshot`` whose run is one of ``run_ids``."""
    if snapshot.stored is not None:
        found = snapshot.stored.of_runs(run_ids, columns)
        if snapshot.extra is None:
            return found
        extra = snapshot.extra.select(list(columns))
        return concat_tables(
            [found, extra.filter(pc.is_in(extra.column("run_id"), value_set=run_ids))],
            found.schema)
    if "bucket codes" not in snapshot.memo:  # None (ids of other lengths) is kept too
        snapshot.memo["bucket codes"] = bucket_codes(snapshot.rows.column("run_id"))
    codes = snapshot.memo["bucket codes"]
    mask = members(snapshot.rows.column("run_id"), run_ids, codes=codes)
    # A filter works chunk by chunk; a take from many chunks would copy them into one first.
    return snapshot.rows.select(list(columns)).filter(pa.array(mask))


def _triples(table: pa.Table, value_column: str):
    return zip(
        table.column("run_id").to_pylist(),
        table.column("key").to_pylist(),
        table.column(value_column).to_pylist(),
        strict=True,
    )

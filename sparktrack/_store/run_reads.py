"""Reading runs: one run (info, data, inputs, metric history), the current state of whole
experiments for search, and the state the logging path keeps of a run.

Every read commits this process's buffered rows first, so a process always reads its own
writes. What is current is decided by :mod:`sparktrack._store.current_rules`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from sparktrack.entities import LifecycleStage, Metric, Run, RunData, RunInfo, RunInputs, ViewType
from sparktrack.errors import RunNotFoundError
from sparktrack._store.buffer import WriteBuffer
from sparktrack._store.current_rules import (
    current_runs,
    current_summaries,
    first_param_values,
    live_tags,
    without_deleted_tags,
)
from sparktrack._store.current_state import CurrentState, Snapshot, StateView
from sparktrack._delta import DeltaTableHandle
from sparktrack._store.inputs import run_inputs_from_rows
from sparktrack._store.locations import resolve_column, resolve_location
from sparktrack._store.run_state import RunState
from sparktrack._store.schemas import INPUTS, METRIC_SUMMARIES, METRICS, PARAMS, RUNS, TAGS
from sparktrack._store.summary_repair import SummaryRepair
from sparktrack._validation import validate_run_id

__all__ = ["READ_ONE_AT_A_TIME_ROWS", "RunReads", "run_info_from_row"]

#: Above this many rows to resolve from the tables' files (a first search of about 350,000 runs
#: with 10 params and 10 metrics each), a search reads its tables one at a time, not one per
#: core: slower by about a fifth, but only one table's rows are in memory at once.
READ_ONE_AT_A_TIME_ROWS = 8_000_000


class RunReads:
    """Reads of the run tables of one store root.

    Args:
        root: the store root (stored artifact URIs are relative to it).
        tables: the store's table handles by name.
        buffer: the store's write buffer, committed before every read.
        summary_repair: settles metric summaries a crashed writer left missing.
        current: the cached current state of the runs, params, tags and metric summaries
            tables, per experiment (search reads it).
    """

    def __init__(
        self,
        root: str,
        tables: dict[str, DeltaTableHandle],
        buffer: WriteBuffer,
        summary_repair: SummaryRepair,
        current: dict[str, CurrentState],
    ) -> None:
        self._root = root
        self._tables = tables
        self._buffer = buffer
        self._summary_repair = summary_repair
        self._current = current

    # -- one run -------------------------------------------------------------------------------
    def run_row(self, run_id: str) -> dict:
        """The current row of a run, after committing what this process buffered."""
        validate_run_id(run_id)
        self._buffer.flush()
        # A run of an experiment that search has read is in its cached current state: up to
        # date after reading the few files committed since, where the table read below looks
        # at every file of the runs table (run ids are random: file statistics prune little).
        cached = self._current[RUNS.name].cached_row("run_id", run_id)
        if cached is not None:
            return cached
        rows = self._tables[RUNS.name].read(
            prune=[("run_id", "=", run_id)], where=pds.field("run_id") == run_id
        )
        if rows.num_rows == 0:
            raise RunNotFoundError(f"Run with id={run_id} not found in store {self._root}.")
        return current_runs(rows).to_pylist()[0]

    def run_state(self, run_id: str) -> RunState:
        """What the logging path keeps of a run: its row, params, tag keys, metric points."""
        row = self.run_row(run_id)
        run_filter = pds.field("run_id") == run_id
        prune = [("experiment_id", "=", row["experiment_id"])]
        params = self._params(run_filter, prune)
        return RunState(
            row=row,
            params=dict(zip(params.column("key").to_pylist(), params.column("value").to_pylist())),
            tag_keys=set(self._live_tags(run_filter, prune).column("key").to_pylist()),
            metric_points=pc.sum(
                self._tables[METRIC_SUMMARIES.name].read(prune=prune, where=run_filter,
                                                         columns=["count"]).column("count")
            ).as_py() or 0,
        )

    def get_run(self, run_id: str) -> Run:
        """A run's info, params, latest metric values and tags, read from the store."""
        row = self.run_row(run_id)
        experiment_id = row["experiment_id"]
        run_filter = pds.field("run_id") == run_id
        prune = [("experiment_id", "=", experiment_id)]
        params = self._of_run(PARAMS.name, experiment_id, run_id,
                              lambda: self._params(run_filter, prune))

        def summaries_read() -> pa.Table:
            self._summary_repair.settle()
            return current_summaries(
                self._tables[METRIC_SUMMARIES.name].read(prune=prune, where=run_filter))

        summaries = self._of_run(METRIC_SUMMARIES.name, experiment_id, run_id, summaries_read)
        tags = self._of_run(TAGS.name, experiment_id, run_id,
                            lambda: self._live_tags(run_filter, prune),
                            cached=without_deleted_tags)  # the cached state keeps deletions
        data = RunData(
            metrics=dict(zip(summaries.column("key").to_pylist(),
                             summaries.column("latest_value").to_pylist())),
            params=dict(zip(params.column("key").to_pylist(), params.column("value").to_pylist())),
            tags=dict(zip(tags.column("key").to_pylist(), tags.column("value").to_pylist())),
        )
        return Run(info=run_info_from_row(row, root=self._root), data=data,
                   inputs=self.run_inputs(run_id, row["experiment_id"]))

    def _of_run(self, table: str, experiment_id: str, run_id: str,
                read: Callable[[], pa.Table], *,
                cached: Callable[[pa.Table], pa.Table] = lambda rows: rows) -> pa.Table:
        """The current rows of one run in ``table``: ``cached`` of the cached state of its
        experiment when search holds it (brought up to date from the files committed since),
        else ``read()``, a filtered read of the experiment's files."""
        state = self._current.get(table)
        if state is None or not state.holds(experiment_id):
            return read()
        rows = self.current_view(table, [experiment_id]).rows()
        return cached(rows.filter(pc.equal(rows.column("run_id"), run_id)))

    def _params(self, where: pds.Expression, prune: list) -> pa.Table:
        return first_param_values(self._tables[PARAMS.name].read(prune=prune, where=where))

    def _live_tags(self, where: pds.Expression, prune: list) -> pa.Table:
        return live_tags(self._tables[TAGS.name].read(prune=prune, where=where))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        row = self.run_row(run_id)
        points = self._tables[METRICS.name].read(
            prune=[("experiment_id", "=", row["experiment_id"])],
            where=(pds.field("run_id") == run_id) & (pds.field("key") == key),
        ).sort_by([("step", "ascending"), ("timestamp", "ascending")])
        return [
            Metric(key=key, value=p["value"], timestamp=p["timestamp"], step=p["step"])
            for p in points.select(["value", "timestamp", "step"]).to_pylist()
        ]

    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        """Every point logged for ``key`` by each of ``run_ids`` (run id -> points ordered by
        step then timestamp), read in one pass over each experiment's metric files instead of
        one pass per run (a chart of 100 runs).

        Raises:
            RunNotFoundError: a run id is not in the store.
        """
        wanted = list(dict.fromkeys(run_ids))
        for run_id in wanted:
            validate_run_id(run_id)
        if not wanted:
            return {}
        self._buffer.flush()
        among = pa.array(wanted, pa.string())
        runs = self._tables[RUNS.name].read(
            where=pds.field("run_id").isin(among), columns=["run_id", "experiment_id"])
        experiments = dict(zip(runs.column("run_id").to_pylist(),
                               runs.column("experiment_id").to_pylist()))
        missing = [run_id for run_id in wanted if run_id not in experiments]
        if missing:
            raise RunNotFoundError(
                f"Run with id={missing[0]} not found in store {self._root}.")
        points = self._tables[METRICS.name].read(
            prune=[("experiment_id", "in", sorted(set(experiments.values())))],
            where=pds.field("run_id").isin(among) & (pds.field("key") == key),
            columns=["run_id", "value", "timestamp", "step"],
        ).sort_by([("run_id", "ascending"), ("step", "ascending"), ("timestamp", "ascending")])
        histories: dict[str, list[Metric]] = {run_id: [] for run_id in wanted}
        for point in points.to_pylist():
            histories[point["run_id"]].append(Metric(key=key, value=point["value"],
                                                     timestamp=point["timestamp"],
                                                     step=point["step"]))
        return histories

    def get_run_inputs(self, run_id: str) -> RunInputs:
        """The datasets a run used, in the order they were first logged."""
        row = self.run_row(run_id)
        return self.run_inputs(run_id, row["experiment_id"])

    def run_inputs(self, run_id: str, experiment_id: str) -> RunInputs:
        """The inputs of a run of a known experiment (no commit of the buffer first)."""
        rows = self._tables[INPUTS.name].read(
            prune=[("experiment_id", "=", experiment_id)], where=pds.field("run_id") == run_id
        )
        return run_inputs_from_rows(rows)

    # -- whole experiments -----------------------------------------------------------------------
    def current_view(self, table: str, experiment_ids: Sequence[str]) -> StateView:
        """The current state of ``table`` (runs, params, tags or metric_summaries) of some
        experiments, after committing what is buffered.

        Runs: the newest row of each run; params: the first value of each (run, key); tags:
        the newest row of each (run, key), deletions included (``deleted`` is true); metric
        summaries: one merged row per (run, key).
        """
        return self.current_views([table], experiment_ids)[table]

    def current_views(
        self, tables: Sequence[str], experiment_ids: Sequence[str]
    ) -> dict[str, StateView]:
        """:meth:`current_view` of several tables, read at once.

        Arrow releases the GIL while it decodes and resolves, so a first search (or a new
        process loading the saved state) of four tables uses every core. When every table
        already holds the experiments, the checks are a few milliseconds: no threads then.
        """
        self._buffer.flush()
        settles = METRIC_SUMMARIES.name in tables  # its summaries must be complete first
        experiment_ids = [str(e) for e in experiment_ids]
        held = all(self._current[table].holds(e) for table in tables for e in experiment_ids)
        if len(tables) == 1 or held:
            # Held in memory: only each table's version is checked, no work for threads.
            if settles:
                self._summary_repair.settle()
            views = {table: self._current[table].view(experiment_ids) for table in tables}
        else:
            # One thread per core: more would add memory (each holds its rows while it
            # resolves them) without adding speed. Tables built from many rows of their files
            # are read one at a time: at a million runs, params and summaries resolved together
            # took 4.7 GB; memory matters more than speed there.
            building = sum(self._current[table].rows_to_build(experiment_ids)
                           for table in tables)
            workers = (1 if building > READ_ONE_AT_A_TIME_ROWS
                       else max(1, min(len(tables), os.cpu_count() or 1)))
            # One task per table and experiment: the runs (decoded too) first, then the
            # tables from the most work per run to the least, so that the threads end together.
            tasks = [(table, e) for table in sorted(tables, key=_load_rank)
                     for e in experiment_ids]
            with ThreadPoolExecutor(max_workers=workers,
                                    thread_name_prefix="sparktrack-read") as pool:
                # Summaries are read once the repairs settle may commit are in; the other
                # tables load meanwhile. Submitted first, it never waits for a task.
                settled = pool.submit(self._summary_repair.settle) if settles else None
                futures = [pool.submit(self._loaded_snapshot, table, e, experiment_ids,
                                       after=settled if table == METRIC_SUMMARIES.name
                                       else None)
                           for table, e in tasks]
                snapshots = [future.result() for future in futures]
                if settled is not None:
                    settled.result()
            views = {table: self._current[table].view_of(
                [snapshot for (of, _), snapshot in zip(tasks, snapshots, strict=True)
                 if of == table]) for table in tables}
        if RUNS.name in views:
            views[RUNS.name] = _RunsView(views[RUNS.name], self._root)
        return views

    def _loaded_snapshot(self, table: str, experiment_id: str,
                         experiment_ids: Sequence[str], *, after: Future | None = None
                         ) -> Snapshot:
        if after is not None:
            after.result()  # raises what it raised
        snapshot = self._current[table].snapshot(experiment_id, together=experiment_ids)
        if table == RUNS.name:
            # Every reader of the runs reads all their rows: a state loaded from its saved
            # file is decoded now, beside the other tables.
            snapshot.rows  # noqa: B018 (decoded on first use)
        return snapshot

    def run_rows(
        self, experiment_ids: Iterable[str] | None, *, view_type: ViewType = ViewType.ALL
    ) -> pa.Table:
        """The current row of every run of the given experiments (all when None)."""
        if experiment_ids is not None:
            rows = self.current_view(RUNS.name, list(experiment_ids)).rows()
        else:
            self._buffer.flush()
            rows = _with_resolved_artifact_uris(
                current_runs(self._tables[RUNS.name].read()), self._root
            )
        if view_type is not ViewType.ALL:
            stage = (LifecycleStage.ACTIVE if view_type is ViewType.ACTIVE_ONLY
                     else LifecycleStage.DELETED)
            rows = rows.filter(pc.equal(rows.column("lifecycle_stage"), stage.value))
        return rows

    def list_run_infos(
        self, experiment_ids: Iterable[str] | None, *, view_type: ViewType = ViewType.ALL
    ) -> list[RunInfo]:
        return [run_info_from_row(row) for row in self.run_rows(experiment_ids,
                                                         view_type=view_type).to_pylist()]


class _RunsView:
    """A runs :class:`StateView` whose artifact_uri column is resolved against the store root
    (the cached and saved state keeps the stored, relative form)."""

    def __init__(self, view: StateView, root: str) -> None:
        self._view = view
        self._root = root

    def rows(self) -> pa.Table:
        return _with_resolved_artifact_uris(self._view.rows(), self._root)

    def rows_with_key(self, key: str) -> pa.Table:
        return _with_resolved_artifact_uris(self._view.rows_with_key(key), self._root)

    @property
    def snapshots(self) -> list[Snapshot]:
        """The view's snapshots, as stored (artifact URIs not resolved: see :meth:`resolved`)."""
        return self._view.snapshots

    def resolved(self, rows: pa.Table) -> pa.Table:
        """Rows of :attr:`snapshots` with their artifact URIs resolved like :meth:`rows`'s."""
        return _with_resolved_artifact_uris(rows, self._root)

    def resolved_now(self, rows: pa.Table) -> pa.Table:
        """:meth:`resolved` for rows read once (a page): not kept for the next search."""
        return _with_resolved_artifact_uris(rows, self._root, keep=False)


# The state's tables are immutable and reused by every search until the table changes: resolve
# each one once (a few ms per search at 10,000 runs otherwise). Keyed by identity, holding the
# table so the identity stays valid; a handful of entries (one per searched experiment/key).
_RESOLVED: OrderedDict[tuple[int, str], tuple[pa.Table, pa.Table]] = OrderedDict()
_RESOLVED_LOCK = threading.Lock()
# The order the tables of a view are loaded in: the runs (decoded too) first, then from the
# most work per run to the least (at 100,000 runs here: params 0.16 s, summaries 0.13 s, tags
# 0.05 s on one core), so that two threads end about together.
_LOAD_ORDER = (RUNS.name, PARAMS.name, METRIC_SUMMARIES.name, TAGS.name)


def _load_rank(table: str) -> int:
    return _LOAD_ORDER.index(table) if table in _LOAD_ORDER else len(_LOAD_ORDER)


def _with_resolved_artifact_uris(rows: pa.Table, root: str, *, keep: bool = True
                                 ) -> pa.Table:
    key = (id(rows), root)
    with _RESOLVED_LOCK:
        cached = _RESOLVED.get(key)
        if cached is not None and cached[0] is rows:
            _RESOLVED.move_to_end(key)
            return cached[1]
    index = rows.schema.get_field_index("artifact_uri")
    resolved = rows.set_column(index, rows.schema.field(index),
                               resolve_column(rows.column(index), root))
    if not keep:
        return resolved
    with _RESOLVED_LOCK:
        _RESOLVED[key] = (rows, resolved)
        while len(_RESOLVED) > 16:
            _RESOLVED.popitem(last=False)
    return resolved


def run_info_from_row(row: dict, *, root: str | None = None) -> RunInfo:
    """A run's info from its row; a stored (relative) artifact_uri is resolved against the
    store ``root`` (rows from :meth:`TrackingStore.run_rows` are resolved already)."""
    artifact_uri = row["artifact_uri"]
    return RunInfo(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        run_name=row["run_name"] or "",
        status=row["status"],
        user_id=row["user_id"] or "",
        start_time=row["start_time"],
        end_time=row["end_time"],
        lifecycle_stage=row["lifecycle_stage"],
        artifact_uri=resolve_location(root, artifact_uri) if root else artifact_uri,
        parent_run_id=row["parent_run_id"],
        deleted_time=row["deleted_time"],
    )

"""The tracking store: experiments, runs, params, metrics and tags as Delta tables.

:class:`TrackingStore` is a thin facade over the store's parts, each with one job:

* :mod:`sparktrack._store.experiments`: experiments (committed at once);
* :mod:`sparktrack._store.run_writes`: creating runs and logging to them, through the
  process-wide write buffer, with validation and quotas checked before a row is buffered;
* :mod:`sparktrack._store.run_reads`: reading runs and the current state search uses;
* :mod:`sparktrack._store.run_state`: the bounded per-run cache of the hot logging path;
* :mod:`sparktrack._store.current_rules`: which rows are current, for all of them.

Every read commits this process's buffered rows first, so a process always reads its own
writes. The store lock is never held during Delta I/O.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence

import pyarrow as pa

from sparktrack.config import Settings
from sparktrack.entities import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunInfo,
    RunInputs,
    RunTag,
    ViewType,
)
from sparktrack._store.buffer import CommitChecks, WriteBuffer
from sparktrack._store.current_rules import (
    current_runs,
    current_summaries,
    current_tags,
    first_param_values,
)
from sparktrack._store.current_state import CurrentState, StateView
from sparktrack._delta import DeltaTableHandle, join_uri
from sparktrack._store.experiments import (
    ARTIFACTS_FOLDER,
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    Experiments,
)
from sparktrack._store.imports import (
    ImportedRuns,
    partial_run_ids,
    remove_partial_runs,
    write_imported_runs,
)
from sparktrack._store.run_reads import RunReads, run_info_from_row
from sparktrack._store.run_state import DEFAULT_MAX_RUNS
from sparktrack._store.run_writes import RunWrites
from sparktrack._store.schemas import METRIC_SUMMARIES, METRICS, PARAMS, RUNS, TABLES, TAGS
from sparktrack._store.state_files import StateFiles
from sparktrack._store.summary_repair import SummaryRepair
from sparktrack._store.summary_repair import checkpoint_path as summary_checkpoint
from sparktrack._store.write_checks import WriteChecks

__all__ = [
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "TrackingStore",
    "normalize_root",
    "run_info_from_row",
]

# The rule each cached current state resolves its table with (see store.current_state).
_STATE_RULES = (
    (RUNS.name, current_runs),
    (PARAMS.name, first_param_values),
    (TAGS.name, current_tags),  # deletions kept: they must win over older values merged later
    (METRIC_SUMMARIES.name, current_summaries),
)


def normalize_root(uri: str) -> str:
    """A local folder becomes an absolute path; object-store URIs are kept as they are."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if "://" in uri:
        return uri.rstrip("/")
    return os.path.abspath(os.path.expanduser(uri))


class TrackingStore:
    """All tables of one store root. Use :func:`sparktrack._store.open_store` to share one.

    Args:
        root_uri: the store root (a folder or an object-store prefix).
        storage_options: object-store credentials and options for Delta.
        settings: limits, quotas and write-buffer behaviour (defaults when None).
        max_cached_runs: runs whose logging state is kept in memory; the least recently used
            are dropped beyond it and read again from the store on their next use.
    """

    def __init__(
        self,
        root_uri: str,
        *,
        storage_options: dict[str, str] | None = None,
        settings: Settings | None = None,
        max_cached_runs: int = DEFAULT_MAX_RUNS,
    ) -> None:
        self.root = normalize_root(root_uri)
        self.settings = settings or Settings()
        self.storage_options = storage_options
        self.tables = {
            name: DeltaTableHandle(
                self.root, spec, storage_options=storage_options,
                commit_retries=self.settings.commit_retries,
            )
            for name, spec in TABLES.items()
        }
        self.buffer = WriteBuffer(
            self.tables, self.settings,
            checks=CommitChecks(before=self._write_checks_before, after=self._write_checks_after),
        )
        self.summary_repair = SummaryRepair(
            self.tables[METRICS.name], self.tables[METRIC_SUMMARIES.name],
            grace_seconds=self.settings.summary_repair_seconds,
            checkpoint_path=(summary_checkpoint(self.root) if self.settings.save_search_state
                             else None),
        )
        # Search reads the current state of these tables; it is cached per experiment and
        # updated from the files committed since the last read.
        cache_bytes = self.settings.search_cache_mb * 2**20
        self.current = {
            name: CurrentState(
                self.tables[name], rule, max_bytes=cache_bytes,
                saved=(StateFiles.for_table(self.root, name, TABLES[name].schema)
                       if self.settings.save_search_state else None),
                # The other tables' saved states store run ids in the runs' order: a new
                # process then finds each row's run by its index (search_source).
                run_order=(None if name == RUNS.name
                           else lambda e: self.current[RUNS.name].held_run_ids(e)),
            )
            for name, rule in _STATE_RULES
        }
        self._lock = threading.RLock()
        self._experiments = Experiments(self.root, self.tables["experiments"], self.settings)
        self._reads = RunReads(self.root, self.tables, self.buffer, self.summary_repair,
                               self.current)
        self._writes = RunWrites(
            self.root, self.settings, self.tables, self.buffer, self._experiments, self._reads,
            lock=self._lock, max_cached_runs=max_cached_runs,
        )
        # The checks keep their own in-memory state: a process that only logs must not write
        # search state files (nor pay for them).
        self._write_checks = WriteChecks(
            runs=CurrentState(self.tables[RUNS.name], current_runs, max_bytes=cache_bytes),
            params=CurrentState(self.tables[PARAMS.name], first_param_values,
                                max_bytes=cache_bytes),
            own_deletion=self._writes.own_deletion, on_refused_run=self._writes.follow_deletion,
            on_lost_param=self._writes.follow_param,
        )

    @property
    def artifact_root(self) -> str:
        return join_uri(self.root, ARTIFACTS_FOLDER)

    def flush(self) -> None:
        """Commit every buffered row of this store now."""
        self.buffer.flush()

    def drop_search_state(self, experiment_id: str) -> None:
        """Forget an experiment's search state, in memory and saved on disk."""
        for state in self.current.values():
            state.remove_saved(experiment_id)

    def release_caches(self) -> None:
        """Forget cached snapshots and state (they are rebuilt on the next read)."""
        for handle in self.tables.values():
            handle.release()
        for state in self.current.values():
            state.forget()

    # -- what the write buffer checks against other processes (see store.write_checks) --------
    def _write_checks_before(self, ready: dict[str, pa.Table]):
        return self._write_checks.refuse_rows_of_runs_deleted_elsewhere(ready)

    def _write_checks_after(self, committed: dict[str, pa.Table]):
        return self._write_checks.check_params_committed(committed)

    # == experiments ========================================================================
    def list_experiments(self, *, view_type: ViewType = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        return self._experiments.list_experiments(view_type=view_type)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiments.get(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._experiments.get_by_name(name)

    def create_experiment(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        return self._experiments.create(name, artifact_location=artifact_location, tags=tags)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._experiments.rename(experiment_id, new_name)

    def set_experiment_lifecycle(self, experiment_id: str, stage: LifecycleStage) -> None:
        """Delete or restore an experiment and, like MLflow, its runs with it."""
        experiment = self._experiments.set_lifecycle(experiment_id, stage)
        from_view = (ViewType.ACTIVE_ONLY if stage == LifecycleStage.DELETED
                     else ViewType.DELETED_ONLY)
        for info in self.list_run_infos([experiment.experiment_id], view_type=from_view):
            self.set_run_lifecycle(info.run_id, stage)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str | None) -> None:
        """Set (or, with ``value=None``, delete) an experiment tag."""
        self._experiments.set_tag(experiment_id, key, value)

    # == runs: writing ======================================================================
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str,
        user_id: str | None,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        source: dict[str, str | None] | None = None,
    ) -> RunInfo:
        """Create a RUNNING run and buffer its info row and tags."""
        return self._writes.create_run(
            experiment_id, run_name=run_name, user_id=user_id, start_time=start_time, tags=tags,
            parent_run_id=parent_run_id, run_id=run_id, source=source,
        )

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        """Write a new version of a run's info with the given fields changed."""
        return self._writes.update_run(run_id, status=status, end_time=end_time,
                                       run_name=run_name)

    def set_run_lifecycle(self, run_id: str, stage: LifecycleStage) -> None:
        self._writes.set_run_lifecycle(run_id, stage)

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Validate everything first, then buffer it: a rejected batch writes nothing."""
        self._writes.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        """The hot path of ``log_metric``: one point, no read, one buffered tuple."""
        self._writes.log_metric(run_id, key, value, timestamp, step)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._writes.delete_tag(run_id, key)

    def log_inputs(self, run_id: str, dataset_inputs: Sequence[DatasetInput]) -> None:
        """Record datasets as inputs of a run, committed at once (not through the buffer)."""
        self._writes.log_inputs(run_id, dataset_inputs)

    def forget_runs(self, run_ids: Iterable[str]) -> None:
        """Drop cached state of runs removed from the store (garbage collection)."""
        self._writes.forget_runs(run_ids)

    # == importing (sparktrack import: runs that exist elsewhere, see store.imports) ===========
    def import_experiment(
        self,
        *,
        experiment_id: str,
        name: str,
        lifecycle_stage: LifecycleStage,
        creation_time: int,
        last_update_time: int,
        tags: dict[str, str],
    ) -> None:
        """Write an experiment with its id and times kept (neither id nor name may be taken)."""
        self._experiments.write_imported(
            experiment_id=experiment_id, name=name, lifecycle_stage=lifecycle_stage,
            creation_time=creation_time, last_update_time=last_update_time, tags=tags,
        )

    def import_runs(self, batch: ImportedRuns) -> None:
        """Commit whole runs (ids, times and histories kept) in one commit per table, the runs'
        rows last. The runs must not be in the store yet."""
        self.buffer.flush()
        write_imported_runs(self.tables, batch)
        self._writes.forget_runs([])  # the run counts per experiment changed

    def remove_partial_runs(self, experiment_id: str, run_ids: Iterable[str]) -> int:
        """Remove the rows an interrupted :meth:`import_runs` left of ``run_ids`` (runs with no
        ``runs`` row); returns the number of rows removed."""
        partial = partial_run_ids(self.tables, experiment_id, run_ids)
        removed = remove_partial_runs(self.tables, experiment_id, partial)
        if partial:
            self.drop_search_state(experiment_id)
        return removed

    # == runs: reading ======================================================================
    def get_run_info(self, run_id: str) -> RunInfo:
        with self._lock:
            state = self._writes.states.cached(run_id)
        if state is not None:
            return run_info_from_row(state.row, root=self.root)
        return run_info_from_row(self._reads.run_row(run_id), root=self.root)

    def get_run(self, run_id: str) -> Run:
        """A run's info, params, latest metric values and tags, read from the store."""
        return self._reads.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self._reads.get_metric_history(run_id, key)

    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        return self._reads.get_metric_histories(run_ids, key)

    def get_run_inputs(self, run_id: str) -> RunInputs:
        """The datasets a run used, in the order they were first logged."""
        return self._reads.get_run_inputs(run_id)

    def current_view(self, table: str, experiment_ids: Sequence[str]) -> StateView:
        """The current state of ``table`` (runs, params, tags or metric_summaries) of some
        experiments, after committing what is buffered (see :meth:`RunReads.current_view`)."""
        return self._reads.current_view(table, experiment_ids)

    def current_views(
        self, tables: Sequence[str], experiment_ids: Sequence[str]
    ) -> dict[str, StateView]:
        """:meth:`current_view` of several tables, read at once (see
        :meth:`RunReads.current_views`)."""
        return self._reads.current_views(tables, experiment_ids)

    def run_rows(
        self, experiment_ids: Iterable[str] | None, *, view_type: ViewType = ViewType.ALL
    ) -> pa.Table:
        """The current row of every run of the given experiments (all when None)."""
        return self._reads.run_rows(experiment_ids, view_type=view_type)

    def list_run_infos(
        self, experiment_ids: Iterable[str] | None, *, view_type: ViewType = ViewType.ALL
    ) -> list[RunInfo]:
        return self._reads.list_run_infos(experiment_ids, view_type=view_type)

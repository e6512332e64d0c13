"""The tracking store: experiments, runs, params, metrics and tags as Delta tables.

Writes of run data go through the process-wide :class:`WriteBuffer`; experiment changes are
committed at once (other processes look experiments up by name). Every read commits this
process's buffered rows first, so a process always reads its own writes.

Validation and quotas are checked here, before a row is buffered, so a rejected call writes
nothing. What this process has logged to a run (param values, tag keys, point counts) is kept
in memory after the first use of the run, so the hot logging path never reads the store.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from sparktrack import _tags
from sparktrack.config import Settings
from sparktrack.entities import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from sparktrack.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidInputError,
    InvalidStateError,
    ParamOverwriteError,
    QuotaExceededError,
    RunNotFoundError,
)
from sparktrack.store.buffer import CommitChecks, WriteBuffer
from sparktrack.store.summary_repair import SummaryRepair
from sparktrack.store.summary_repair import checkpoint_path as summary_checkpoint
from sparktrack.store.write_checks import WriteChecks
from sparktrack.store.current_state import CurrentState, StateView
from sparktrack.store.state_files import StateFiles
from sparktrack._delta import DeltaTableHandle, join_uri
from sparktrack.store.inputs import (
    as_dataset_input,
    input_rows,
    run_inputs_from_rows,
    validate_dataset_inputs,
)
from sparktrack.store.locations import location_to_store, resolve_column, resolve_location
from sparktrack.store.rows import first_param_values, newest_rows, next_version, now_millis
from sparktrack.store.schemas import (
    EXPERIMENTS,
    INPUTS,
    METRIC_SUMMARIES,
    METRICS,
    PARAMS,
    RUNS,
    TABLES,
    TAGS,
)
from sparktrack.store.summaries import merge_summaries
from sparktrack.validation import (
    validate_experiment_name,
    validate_key,
    validate_metric,
    validate_param_value,
    validate_run_id,
    validate_run_name,
    validate_tag_value,
)

__all__ = [
    "DEFAULT_EXPERIMENT_ID",
    "DEFAULT_EXPERIMENT_NAME",
    "TrackingStore",
    "normalize_root",
    "run_info_from_row",
]

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
RUN_NAME_TAG = _tags.RUN_NAME
EXPERIMENT_CACHE_SECONDS = 1.0
# Artifact locations are stored relative to the store root (sparktrack.store.locations).
ARTIFACTS_FOLDER = "artifacts"


def normalize_root(uri: str) -> str:
    """A local folder becomes an absolute path; object-store URIs are kept as they are."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if "://" in uri:
        return uri.rstrip("/")
    return os.path.abspath(os.path.expanduser(uri))


@dataclass(slots=True)
class _RunState:
    """What this process knows of a run it has written to (kept so logging never reads)."""

    row: dict
    params: dict[str, str] = field(default_factory=dict)
    tag_keys: set[str] = field(default_factory=set)
    metric_points: int = 0
    deleted_version: int | None = None  # updated_at of the deletion this process wrote


class TrackingStore:
    """All tables of one store root. Use :func:`sparktrack.store.open_store` to share one."""

    def __init__(
        self,
        root_uri: str,
        *,
        storage_options: dict[str, str] | None = None,
        settings: Settings | None = None,
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
                self.tables[name], resolve, max_bytes=cache_bytes,
                saved=(StateFiles.for_table(self.root, name, TABLES[name].schema)
                       if self.settings.save_search_state else None),
            )
            for name, resolve in (
                (RUNS.name, _newest_run_rows),
                (PARAMS.name, first_param_values),
                (TAGS.name, _newest_tag_rows),
                (METRIC_SUMMARIES.name, merge_summaries),
            )
        }
        self._lock = threading.RLock()
        # The checks keep their own in-memory state: a process that only logs must not write
        # search state files (nor pay for them).
        self._write_checks = WriteChecks(
            runs=CurrentState(self.tables[RUNS.name], _newest_run_rows, max_bytes=cache_bytes),
            params=CurrentState(self.tables[PARAMS.name], first_param_values,
                                max_bytes=cache_bytes),
            own_deletion=self._own_deletion, on_refused_run=self._follow_deletion,
            on_lost_param=self._follow_param,
        )
        self._runs: dict[str, _RunState] = {}
        self._experiment_run_counts: dict[str, int] = {}
        self._experiments_cache: tuple[float, list[Experiment]] | None = None

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

    # == experiments ========================================================================
    def _all_experiments(self) -> list[Experiment]:
        # Experiments change rarely and starting a run looks its experiment up: a short-lived
        # cache keeps short runs cheap. Own writes invalidate it; other processes' writes are
        # seen within EXPERIMENT_CACHE_SECONDS.
        cached = self._experiments_cache
        if cached is not None and time.monotonic() - cached[0] < EXPERIMENT_CACHE_SECONDS:
            return cached[1]
        rows = newest_rows(self.tables[EXPERIMENTS.name].read(), ["experiment_id"]).to_pylist()
        experiments = sorted(
            (_experiment(row, self.root) for row in rows),
            key=lambda e: (-e.creation_time, e.experiment_id),
        )
        self._experiments_cache = (time.monotonic(), experiments)
        return experiments

    def list_experiments(self, *, view_type: ViewType = ViewType.ACTIVE_ONLY) -> list[Experiment]:
        return [e for e in self._all_experiments() if view_type.admits(e.lifecycle_stage)]

    def get_experiment(self, experiment_id: str) -> Experiment:
        experiment_id = str(experiment_id)
        for experiment in self.list_experiments(view_type=ViewType.ALL):
            if experiment.experiment_id == experiment_id:
                return experiment
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            return self._create_default_experiment()
        raise ExperimentNotFoundError(
            f"No experiment with id {experiment_id!r} in store {self.root}. "
            "List experiments with search_experiments()."
        )

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        experiments = self.list_experiments(view_type=ViewType.ALL)
        for experiment in experiments:
            if experiment.name == name:
                return experiment
        # Create the Default experiment on first use only: once id 0 exists under another name
        # (renamed), writing it again would undo the rename and drop its tags.
        if name == DEFAULT_EXPERIMENT_NAME and all(
            e.experiment_id != DEFAULT_EXPERIMENT_ID for e in experiments
        ):
            return self._create_default_experiment()
        return None

    def create_experiment(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        validate_experiment_name(name, settings=self.settings)
        tags = self._validated_tags(tags or {})
        existing = {e.experiment_id: e for e in self.list_experiments(view_type=ViewType.ALL)}
        for experiment in existing.values():
            if experiment.name == name:
                state = "" if experiment.lifecycle_stage == LifecycleStage.ACTIVE else (
                    " in deleted state; restore it with restore_experiment() or choose another name"
                )
                raise AlreadyExistsError(
                    f"Experiment {name!r} already exists (id {experiment.experiment_id}){state}."
                )
        experiment_id = _experiment_id_for(name, taken=existing.keys())
        created = now_millis()
        self._write_experiment(
            experiment_id=experiment_id,
            name=name,
            artifact_location=(location_to_store(self.root, artifact_location)
                               if artifact_location
                               else join_uri(ARTIFACTS_FOLDER, experiment_id)),
            lifecycle_stage=LifecycleStage.ACTIVE,
            creation_time=created,
            last_update_time=created,
            tags=tags,
        )
        return experiment_id

    def _create_default_experiment(self) -> Experiment:
        # Every process derives the same row, so concurrent creations agree.
        created = now_millis()
        self._write_experiment(
            experiment_id=DEFAULT_EXPERIMENT_ID,
            name=DEFAULT_EXPERIMENT_NAME,
            artifact_location=join_uri(ARTIFACTS_FOLDER, DEFAULT_EXPERIMENT_ID),
            lifecycle_stage=LifecycleStage.ACTIVE,
            creation_time=created,
            last_update_time=created,
            tags={},
        )
        return self.get_experiment(DEFAULT_EXPERIMENT_ID)

    def _write_experiment(
        self,
        *,
        creation_time: int,
        tags: dict[str, str],
        last_update_time: int | None = None,
        **fields,
    ) -> None:
        # A new experiment's last_update_time is its creation_time (as in MLflow); every later
        # version (rename, delete, restore, tag change) stamps the time of that change.
        row = {
            **fields,
            "creation_time": creation_time,
            "last_update_time": now_millis() if last_update_time is None else last_update_time,
            "tags": list(tags.items()),
            "updated_at": next_version(),
        }
        self.tables[EXPERIMENTS.name].append(pa.Table.from_pylist([row], schema=EXPERIMENTS.schema))
        self._experiments_cache = None

    def _update_experiment(self, experiment: Experiment, **changes) -> None:
        current = {
            "experiment_id": experiment.experiment_id,
            "name": experiment.name,
            "artifact_location": location_to_store(self.root, experiment.artifact_location),
            "lifecycle_stage": experiment.lifecycle_stage,
            "creation_time": experiment.creation_time,
            "tags": dict(experiment.tags),
        }
        current.update(changes)
        self._write_experiment(**current)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        validate_experiment_name(new_name, settings=self.settings)
        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"Cannot rename experiment {experiment_id}: it is deleted. Restore it first."
            )
        other = self.get_experiment_by_name(new_name)
        if other is not None and other.experiment_id != experiment.experiment_id:
            raise AlreadyExistsError(
                f"Cannot rename experiment {experiment_id} to {new_name!r}: experiment "
                f"{other.experiment_id} already has that name."
            )
        self._update_experiment(experiment, name=new_name)

    def set_experiment_lifecycle(self, experiment_id: str, stage: LifecycleStage) -> None:
        """Delete or restore an experiment and, like MLflow, its runs with it."""
        experiment = self.get_experiment(experiment_id)
        if experiment.experiment_id == DEFAULT_EXPERIMENT_ID and stage == LifecycleStage.DELETED:
            raise InvalidStateError("The Default experiment (id 0) cannot be deleted.")
        if experiment.lifecycle_stage == stage:
            raise InvalidStateError(
                f"Experiment {experiment_id} is already {stage.value}; nothing to do."
            )
        self._update_experiment(experiment, lifecycle_stage=stage)
        from_view = ViewType.ACTIVE_ONLY if stage == LifecycleStage.DELETED else ViewType.DELETED_ONLY
        for info in self.list_run_infos([experiment.experiment_id], view_type=from_view):
            self.set_run_lifecycle(info.run_id, stage)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str | None) -> None:
        """Set (or, with ``value=None``, delete) an experiment tag."""
        experiment = self.get_experiment(experiment_id)
        tags = dict(experiment.tags)
        if value is None:
            if key not in tags:
                raise InvalidInputError(
                    f"Experiment {experiment_id} has no tag {key!r} to delete."
                )
            del tags[key]
        else:
            tags.update(self._validated_tags({key: value}))
        self._update_experiment(experiment, tags=tags)

    def _require_active_experiment(self, experiment_id: str) -> Experiment:
        experiment = self.get_experiment(experiment_id)
        if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"Experiment {experiment_id} ({experiment.name!r}) is deleted; restore it with "
                "restore_experiment() before starting runs in it."
            )
        return experiment

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
        experiment = self._require_active_experiment(str(experiment_id))
        validate_run_name(run_name, settings=self.settings)
        tags = self._validated_tags({**(tags or {}), RUN_NAME_TAG: run_name})
        with self._lock:
            count = self._run_count(experiment.experiment_id)
            if count >= self.settings.max_runs_per_experiment:
                raise QuotaExceededError(
                    f"Experiment {experiment.experiment_id} already holds {count} runs; the "
                    f"limit is {self.settings.max_runs_per_experiment} "
                    "(Settings.max_runs_per_experiment). Use a new experiment."
                )
            run_id = validate_run_id(run_id) if run_id else uuid.uuid4().hex
            source = source or {}
            row = {
                "run_id": run_id,
                "experiment_id": experiment.experiment_id,
                "run_name": run_name,
                "parent_run_id": parent_run_id,
                "status": RunStatus.RUNNING.value,
                "user_id": user_id,
                "source_type": source.get("source_type"),
                "source_name": source.get("source_name"),
                "git_commit": source.get("git_commit"),
                "git_branch": source.get("git_branch"),
                "git_repo_url": source.get("git_repo_url"),
                "start_time": start_time if start_time is not None else now_millis(),
                "end_time": None,
                "lifecycle_stage": LifecycleStage.ACTIVE.value,
                "deleted_time": None,
                "artifact_uri": join_uri(
                    location_to_store(self.root, experiment.artifact_location), run_id
                ),
                "updated_at": next_version(),
            }
            state = _RunState(row=row)
            self._check_tag_quota(state, tags)  # before the run row: a refused run writes nothing
            self.buffer.add(RUNS.name, tuple(row.values()))
            self._runs[run_id] = state
            self._experiment_run_counts[experiment.experiment_id] = count + 1
            self._buffer_tags(state, tags)
        return run_info_from_row(row, root=self.root)

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        """Write a new version of a run's info with the given fields changed."""
        if status is not None and status not in RunStatus.__members__:
            raise InvalidInputError(
                f"Invalid run status {status!r}; use one of {', '.join(RunStatus.__members__)}."
            )
        if run_name is not None:
            validate_run_name(run_name, settings=self.settings)
        with self._lock:
            state = self._run_state(run_id)
            changes: dict = {}
            if status is not None:
                changes["status"] = status
            if end_time is not None:
                changes["end_time"] = end_time
            if run_name is not None:
                changes["run_name"] = run_name
                self._buffer_tags(state, {RUN_NAME_TAG: run_name})
            self._write_run_row(state, changes)
        # No commit is forced when a run ends: a loop of short runs would otherwise write a
        # file per run. The background thread commits within the flush interval.
        return run_info_from_row(state.row, root=self.root)

    def set_run_lifecycle(self, run_id: str, stage: LifecycleStage) -> None:
        with self._lock:
            state = self._run_state(run_id)
            deleted_time = now_millis() if stage == LifecycleStage.DELETED else None
            self._write_run_row(
                state, {"lifecycle_stage": stage.value, "deleted_time": deleted_time}
            )
            if stage == LifecycleStage.DELETED:
                state.deleted_version = state.row["updated_at"]

    # -- what the write buffer checks against other processes (see store.write_checks) --------
    def _write_checks_before(self, ready: dict[str, pa.Table]):
        return self._write_checks.refuse_rows_of_runs_deleted_elsewhere(ready)

    def _write_checks_after(self, committed: dict[str, pa.Table]):
        return self._write_checks.check_params_committed(committed)

    def _own_deletion(self, run_id: str) -> int | None:
        state = self._runs.get(run_id)
        return None if state is None else state.deleted_version

    # These two run inside a commit, which may hold the buffer's flush lock while another
    # thread holds self._lock and waits for that flush: they must not take self._lock. Each
    # is a single assignment, atomic for the threads that read the state.
    def _follow_deletion(self, row: dict) -> None:
        state = self._runs.get(row["run_id"])
        if state is not None:
            state.deleted_version = row["updated_at"]
            state.row = {name: row[name] for name in state.row}

    def _follow_param(self, run_id: str, key: str, value: str) -> None:
        state = self._runs.get(run_id)
        if state is not None:
            state.params[key] = value

    def _write_run_row(self, state: _RunState, changes: dict) -> None:
        state.row = {**state.row, **changes, "updated_at": next_version()}
        self.buffer.add(RUNS.name, tuple(state.row.values()))

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Validate everything first, then buffer it: a rejected batch writes nothing."""
        settings = self.settings
        checked_metrics = [
            validate_metric(m.key, m.value, m.timestamp, m.step, settings=settings)
            for m in metrics
        ]
        checked_params: dict[str, str] = {}
        for param in params:
            validate_key(param.key, kind="Param", settings=settings)
            value = validate_param_value(param.key, param.value, settings=settings)
            if checked_params.get(param.key, value) != value:
                raise ParamOverwriteError(
                    f"Param {param.key!r} appears twice in one batch with different values "
                    f"({checked_params[param.key]!r} and {value!r})."
                )
            checked_params[param.key] = value
        checked_tags = self._validated_tags({tag.key: tag.value for tag in tags})
        with self._lock:
            state = self._run_state(run_id)
            self._require_active_run(state)
            new_params = self._new_params(state, checked_params)
            if state.metric_points + len(checked_metrics) > settings.max_metric_points_per_run:
                raise QuotaExceededError(
                    f"Logging metric {checked_metrics[0][0]!r}: run {run_id} would hold "
                    f"{state.metric_points + len(checked_metrics)} metric "
                    f"points; the limit is {settings.max_metric_points_per_run} "
                    "(Settings.max_metric_points_per_run). Log fewer steps or start a new run."
                )
            self._check_tag_quota(state, checked_tags)
            experiment_id = state.row["experiment_id"]
            if new_params:
                logged_at = now_millis()
                self.buffer.add_many(
                    PARAMS.name,
                    [(run_id, experiment_id, k, v, logged_at) for k, v in new_params.items()],
                )
                state.params.update(new_params)
            if checked_metrics:
                self.buffer.add_many(
                    METRICS.name,
                    [(run_id, experiment_id, k, v, ts, step) for k, v, ts, step in checked_metrics],
                )
                state.metric_points += len(checked_metrics)
            self._buffer_tags(state, checked_tags)

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        """The hot path of ``log_metric``: one point, no read, one buffered tuple."""
        key, value, timestamp, step = validate_metric(
            key, value, timestamp, step, settings=self.settings
        )
        with self._lock:
            state = self._runs.get(run_id) or self._run_state(run_id)
            if state.row["lifecycle_stage"] != LifecycleStage.ACTIVE:
                self._require_active_run(state)
            if state.metric_points >= self.settings.max_metric_points_per_run:
                raise QuotaExceededError(
                    f"Cannot log metric {key!r}: run {run_id} already holds "
                    f"{state.metric_points} metric points; the limit "
                    f"is {self.settings.max_metric_points_per_run} "
                    "(Settings.max_metric_points_per_run)."
                )
            self.buffer.add(
                METRICS.name, (run_id, state.row["experiment_id"], key, value, timestamp, step)
            )
            state.metric_points += 1

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._lock:
            state = self._run_state(run_id)
            self._require_active_run(state)
            if key not in state.tag_keys:
                raise InvalidInputError(
                    f"No tag with name {key!r} in run {run_id}; nothing to delete."
                )
            state.tag_keys.discard(key)
            self.buffer.add(
                TAGS.name,
                (run_id, state.row["experiment_id"], key, None, True, next_version()),
            )

    def _new_params(self, state: _RunState, params: dict[str, str]) -> dict[str, str]:
        new = {}
        for key, value in params.items():
            old = state.params.get(key)
            if old is None:
                new[key] = value
            elif old != value:
                raise ParamOverwriteError(
                    f"Changing param values is not allowed. Param with key={key!r} was already "
                    f"logged with value={old!r} for run ID={state.row['run_id']!r}. Attempted "
                    f"logging new value {value!r}. Log it under another key or in a new run."
                )
        if len(state.params) + len(new) > self.settings.max_params_per_run:
            raise QuotaExceededError(
                f"Logging param {next(iter(new))!r}: run {state.row['run_id']} would hold "
                f"{len(state.params) + len(new)} params; "
                f"the limit is {self.settings.max_params_per_run} (Settings.max_params_per_run)."
            )
        return new

    def _check_tag_quota(self, state: _RunState, tags: dict[str, str]) -> None:
        total = len(state.tag_keys | tags.keys())
        if total > self.settings.max_tags_per_run:
            first_new = next(key for key in tags if key not in state.tag_keys)
            raise QuotaExceededError(
                f"Setting tag {first_new!r}: run {state.row['run_id']} would hold {total} tags; "
                "the limit is "
                f"{self.settings.max_tags_per_run} (Settings.max_tags_per_run)."
            )

    def _buffer_tags(self, state: _RunState, tags: dict[str, str]) -> None:
        if not tags:
            return
        self._check_tag_quota(state, tags)
        run_id, experiment_id = state.row["run_id"], state.row["experiment_id"]
        self.buffer.add_many(
            TAGS.name,
            [(run_id, experiment_id, k, v, False, next_version()) for k, v in tags.items()],
        )
        state.tag_keys.update(tags)

    def _validated_tags(self, tags: dict[str, object]) -> dict[str, str]:
        return {
            validate_key(key, kind="Tag", settings=self.settings): validate_tag_value(
                key, value, settings=self.settings
            )
            for key, value in tags.items()
        }

    @staticmethod
    def _require_active_run(state: _RunState) -> None:
        if state.row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"The run {state.row['run_id']} must be in the 'active' state to log to it; it "
                "is deleted. Restore it with restore_run() first."
            )

    def _run_state(self, run_id: str) -> _RunState:
        state = self._runs.get(run_id)
        if state is not None:
            return state
        row = self._read_run_row(run_id)
        run_filter = pds.field("run_id") == run_id
        prune = [("experiment_id", "=", row["experiment_id"])]
        params = first_param_values(
            self.tables[PARAMS.name].read(prune=prune, where=run_filter)
        )
        state = _RunState(
            row=row,
            params=dict(zip(params.column("key").to_pylist(), params.column("value").to_pylist())),
            tag_keys=set(self._live_tags(run_filter, prune).column("key").to_pylist()),
            metric_points=pc.sum(
                self.tables[METRIC_SUMMARIES.name].read(prune=prune, where=run_filter,
                                                        columns=["count"]).column("count")
            ).as_py() or 0,
        )
        self._runs[run_id] = state
        return state

    def _run_count(self, experiment_id: str) -> int:
        count = self._experiment_run_counts.get(experiment_id)
        if count is None:
            runs = self.tables[RUNS.name].read(
                prune=[("experiment_id", "=", experiment_id)], columns=["run_id"]
            )
            count = len(pc.unique(runs.column("run_id")))
        return count

    # == runs: reading ======================================================================
    def _read_run_row(self, run_id: str) -> dict:
        validate_run_id(run_id)
        self.buffer.flush()
        rows = self.tables[RUNS.name].read(
            prune=[("run_id", "=", run_id)], where=pds.field("run_id") == run_id
        )
        if rows.num_rows == 0:
            raise RunNotFoundError(f"Run with id={run_id} not found in store {self.root}.")
        return newest_rows(rows, ["run_id"]).to_pylist()[0]

    def get_run_info(self, run_id: str) -> RunInfo:
        with self._lock:
            state = self._runs.get(run_id)
            if state is not None:
                return run_info_from_row(state.row, root=self.root)
        return run_info_from_row(self._read_run_row(run_id), root=self.root)

    def get_run(self, run_id: str) -> Run:
        """A run's info, params, latest metric values and tags, read from the store."""
        row = self._read_run_row(run_id)
        run_filter = pds.field("run_id") == run_id
        prune = [("experiment_id", "=", row["experiment_id"])]
        params = first_param_values(
            self.tables[PARAMS.name].read(prune=prune, where=run_filter)
        )
        self.summary_repair.settle()
        summaries = merge_summaries(
            self.tables[METRIC_SUMMARIES.name].read(prune=prune, where=run_filter)
        )
        tags = self._live_tags(run_filter, prune)
        data = RunData(
            metrics=dict(zip(summaries.column("key").to_pylist(),
                             summaries.column("latest_value").to_pylist())),
            params=dict(zip(params.column("key").to_pylist(), params.column("value").to_pylist())),
            tags=dict(zip(tags.column("key").to_pylist(), tags.column("value").to_pylist())),
        )
        return Run(info=run_info_from_row(row, root=self.root), data=data,
                   inputs=self._read_run_inputs(run_id, row["experiment_id"]))

    def _live_tags(self, where: pds.Expression, prune: list) -> pa.Table:
        rows = newest_rows(self.tables[TAGS.name].read(prune=prune, where=where), ["run_id", "key"])
        return rows.filter(pc.invert(rows.column("deleted")))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        row = self._read_run_row(run_id)
        points = self.tables[METRICS.name].read(
            prune=[("experiment_id", "=", row["experiment_id"])],
            where=(pds.field("run_id") == run_id) & (pds.field("key") == key),
        ).sort_by([("step", "ascending"), ("timestamp", "ascending")])
        return [
            Metric(key=key, value=p["value"], timestamp=p["timestamp"], step=p["step"])
            for p in points.select(["value", "timestamp", "step"]).to_pylist()
        ]

    def current_view(self, table: str, experiment_ids: Sequence[str]) -> StateView:
        """The current state of ``table`` (runs, params, tags or metric_summaries) of some
        experiments, after committing what is buffered.

        Runs: the newest row of each run; params: the first value of each (run, key); tags:
        the newest row of each (run, key), deletions included (``deleted`` is true); metric
        summaries: one merged row per (run, key).
        """
        self.buffer.flush()
        if table == METRIC_SUMMARIES.name:
            self.summary_repair.settle()
        view = self.current[table].view([str(e) for e in experiment_ids])
        return _RunsView(view, self.root) if table == RUNS.name else view

    def run_rows(
        self, experiment_ids: Iterable[str] | None, *, view_type: ViewType = ViewType.ALL
    ) -> pa.Table:
        """The current row of every run of the given experiments (all when None)."""
        if experiment_ids is not None:
            rows = self.current_view(RUNS.name, list(experiment_ids)).rows()
        else:
            self.buffer.flush()
            rows = _with_resolved_artifact_uris(
                newest_rows(self.tables[RUNS.name].read(), ["run_id"]), self.root
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

    def forget_runs(self, run_ids: Iterable[str]) -> None:
        """Drop cached state of runs removed from the store (garbage collection)."""
        with self._lock:
            for run_id in run_ids:
                self._runs.pop(run_id, None)
            self._experiment_run_counts.clear()

    # == run inputs (datasets) ==============================================================
    def log_inputs(self, run_id: str, dataset_inputs: Sequence[DatasetInput]) -> None:
        """Record datasets as inputs of a run, committed at once (not through the buffer).

        As in MLflow, an input is identified in its run by (dataset name, digest): one the run
        already has is left as it is, tags included. The run must not be deleted.
        """
        checked = validate_dataset_inputs([as_dataset_input(item) for item in dataset_inputs])
        with self._lock:
            state = self._run_state(run_id)
            self._require_active_run(state)
            experiment_id = state.row["experiment_id"]
        held = {
            (item.dataset.name, item.dataset.digest)
            for item in self._read_run_inputs(run_id, experiment_id).dataset_inputs
        }
        new = [item for item in checked if (item.dataset.name, item.dataset.digest) not in held]
        if new:
            self.tables[INPUTS.name].append(input_rows(run_id, experiment_id, new, now_millis()))

    def get_run_inputs(self, run_id: str) -> RunInputs:
        """The datasets a run used, in the order they were first logged."""
        row = self._read_run_row(run_id)
        return self._read_run_inputs(run_id, row["experiment_id"])

    def _read_run_inputs(self, run_id: str, experiment_id: str) -> RunInputs:
        rows = self.tables[INPUTS.name].read(
            prune=[("experiment_id", "=", experiment_id)], where=pds.field("run_id") == run_id
        )
        return run_inputs_from_rows(rows)


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


def _with_resolved_artifact_uris(rows: pa.Table, root: str) -> pa.Table:
    index = rows.schema.get_field_index("artifact_uri")
    return rows.set_column(index, rows.schema.field(index),
                           resolve_column(rows.column(index), root))


def _newest_run_rows(rows: pa.Table) -> pa.Table:
    return newest_rows(rows, ["run_id"])


def _newest_tag_rows(rows: pa.Table) -> pa.Table:
    # Deletions stay: a deletion must still win over an older value committed after it.
    return newest_rows(rows, ["run_id", "key"])


def _experiment_id_for(name: str, *, taken: Iterable[str]) -> str:
    """A numeric id derived from the name, so processes creating it at once agree on it."""
    taken = set(taken)
    for attempt in range(1000):
        digest = hashlib.sha256(f"{name}\x00{attempt}".encode()).digest()
        candidate = str(10**17 + int.from_bytes(digest[:8], "big") % (9 * 10**17))
        if candidate not in taken:
            return candidate
    raise AlreadyExistsError(f"Could not derive a free experiment id for {name!r}.")


def _experiment(row: dict, root: str) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        artifact_location=resolve_location(root, row["artifact_location"]),
        lifecycle_stage=row["lifecycle_stage"],
        creation_time=row["creation_time"],
        last_update_time=row["last_update_time"],
        tags=dict(row["tags"] or []),
    )


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


"""Writing runs: creating them, logging params, metrics, tags and inputs, ending and deleting.

Writes of run data go through the process-wide :class:`~sparktrack._store.buffer.WriteBuffer`.
Validation and quotas are checked here, before a row is buffered, so a rejected call writes
nothing. What this process has logged to a run is kept in
:class:`~sparktrack._store.run_state.RunStates`, so the hot logging path never reads the store.

Locking: one store lock guards the run states and the run counts. It is never held during
Delta I/O: a run's state is read before taking it, and the write buffer's back-pressure commit
happens after releasing it, so one slow commit or read never stalls the other logging threads.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence

import pyarrow.compute as pc

from sparktrack import _tags
from sparktrack.config import Settings
from sparktrack.entities import (
    DatasetInput,
    LifecycleStage,
    Metric,
    Param,
    RunInfo,
    RunStatus,
    RunTag,
)
from sparktrack.errors import (
    InvalidInputError,
    InvalidStateError,
    ParamOverwriteError,
    QuotaExceededError,
)
from sparktrack._store.buffer import WriteBuffer
from sparktrack._delta import DeltaTableHandle, join_uri
from sparktrack._store.experiments import Experiments, validated_tags
from sparktrack._store.inputs import as_dataset_input, input_rows, validate_dataset_inputs
from sparktrack._store.locations import location_to_store
from sparktrack._store.rows import next_version, now_millis
from sparktrack._store.run_reads import RunReads, run_info_from_row
from sparktrack._store.run_state import DEFAULT_MAX_RUNS, RunState, RunStates
from sparktrack._store.schemas import INPUTS, METRICS, PARAMS, RUNS, TAGS
from sparktrack._validation import (
    validate_key,
    validate_metric,
    validate_param_value,
    validate_run_id,
    validate_run_name,
)

__all__ = ["RunWrites"]

RUN_NAME_TAG = _tags.RUN_NAME


class RunWrites:
    """The run writes of one store root.

    Args:
        root: the store root.
        settings: limits and quotas.
        tables: the store's table handles by name (inputs are committed directly).
        buffer: the store's write buffer.
        experiments: the store's experiments (a run starts in an active one).
        reads: the store's run reads (a run's state is read on its first use).
        lock: the store lock.
        max_cached_runs: runs whose state is kept in memory (least recently used dropped).
    """

    def __init__(
        self,
        root: str,
        settings: Settings,
        tables: dict[str, DeltaTableHandle],
        buffer: WriteBuffer,
        experiments: Experiments,
        reads: RunReads,
        *,
        lock: threading.RLock,
        max_cached_runs: int = DEFAULT_MAX_RUNS,
    ) -> None:
        self._root = root
        self._settings = settings
        self._tables = tables
        self._buffer = buffer
        self._experiments = experiments
        self._reads = reads
        self._lock = lock
        self.states = RunStates(self._load_state, lock=lock, max_runs=max_cached_runs)
        self._run_counts: dict[str, int] = {}
        # run id -> updated_at of the deletion this process wrote or has seen. Rows this
        # process writes to such a run after it (only a restore: logging to a deleted run is
        # refused before buffering) are deliberate and must not be refused at commit.
        self._known_deletions: dict[str, int] = {}

    def _load_state(self, run_id: str) -> RunState:
        state = self._reads.run_state(run_id)
        if state.row["lifecycle_stage"] == LifecycleStage.DELETED:
            self._known_deletions[run_id] = state.row["updated_at"]
        return state

    # -- runs ------------------------------------------------------------------------------------
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
        experiment = self._experiments.require_active(str(experiment_id))
        experiment_id = experiment.experiment_id
        validate_run_name(run_name, settings=self._settings)
        tags = validated_tags({**(tags or {}), RUN_NAME_TAG: run_name}, settings=self._settings)
        run_id = validate_run_id(run_id) if run_id else uuid.uuid4().hex
        counted = self._counted_runs(experiment_id)
        with self._lock:
            # Another thread may have created runs since the count: its number is newer.
            count = self._run_counts.get(experiment_id, counted)
            if count >= self._settings.max_runs_per_experiment:
                raise QuotaExceededError(
                    f"Experiment {experiment_id} already holds {count} runs; the "
                    f"limit is {self._settings.max_runs_per_experiment} "
                    "(Settings.max_runs_per_experiment). Use a new experiment."
                )
            source = source or {}
            row = {
                "run_id": run_id,
                "experiment_id": experiment_id,
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
                    location_to_store(self._root, experiment.artifact_location), run_id
                ),
                "updated_at": next_version(),
            }
            state = RunState(row=row)
            self._check_tag_quota(state, tags)  # before the run row: a refused run writes nothing
            self._buffer.add(RUNS.name, tuple(row.values()), defer_backpressure=True)
            self.states.put(run_id, state)
            self._run_counts[experiment_id] = count + 1
            self._buffer_tags(state, tags)
        self._buffer.relieve_backpressure()
        return run_info_from_row(row, root=self._root)

    def _counted_runs(self, experiment_id: str) -> int:
        """The runs of an experiment (known, or counted in the store without the lock)."""
        with self._lock:
            count = self._run_counts.get(experiment_id)
        if count is not None:
            return count
        runs = self._tables[RUNS.name].read(
            prune=[("experiment_id", "=", experiment_id)], columns=["run_id"]
        )
        return len(pc.unique(runs.column("run_id")))

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
            validate_run_name(run_name, settings=self._settings)
        state = self.states.get(run_id)
        with self._lock:
            changes: dict = {}
            if status is not None:
                changes["status"] = status
            if end_time is not None:
                changes["end_time"] = end_time
            if run_name is not None:
                changes["run_name"] = run_name
                self._buffer_tags(state, {RUN_NAME_TAG: run_name})
            self._write_run_row(state, changes)
            row = state.row
        self._buffer.relieve_backpressure()
        # No commit is forced when a run ends: a loop of short runs would otherwise write a
        # file per run. The background thread commits within the flush interval.
        return run_info_from_row(row, root=self._root)

    def set_run_lifecycle(self, run_id: str, stage: LifecycleStage) -> None:
        state = self.states.get(run_id)
        with self._lock:
            deleted_time = now_millis() if stage == LifecycleStage.DELETED else None
            self._write_run_row(
                state, {"lifecycle_stage": stage.value, "deleted_time": deleted_time}
            )
            if stage == LifecycleStage.DELETED:
                self._known_deletions[run_id] = state.row["updated_at"]
        self._buffer.relieve_backpressure()

    def _write_run_row(self, state: RunState, changes: dict) -> None:
        state.row = {**state.row, **changes, "updated_at": next_version()}
        self._buffer.add(RUNS.name, tuple(state.row.values()), defer_backpressure=True)

    def forget_runs(self, run_ids: Iterable[str]) -> None:
        """Drop what this process knows of runs removed from the store (garbage collection)."""
        run_ids = list(run_ids)
        with self._lock:
            self.states.forget(run_ids)
            for run_id in run_ids:
                self._known_deletions.pop(run_id, None)
            self._run_counts.clear()

    # -- what the write buffer checks against other processes (see store.write_checks) --------
    # These run inside a commit, which may hold the buffer's flush lock while another thread
    # holds the store lock and waits for that flush: they must not take the store lock. Each
    # is a single read or assignment, atomic for the threads that read the state.
    def own_deletion(self, run_id: str) -> int | None:
        """The ``updated_at`` of the deletion of a run this process wrote or saw, or None."""
        return self._known_deletions.get(run_id)

    def follow_deletion(self, row: dict) -> None:
        """A run was deleted by another process: this process's state follows it."""
        self._known_deletions[row["run_id"]] = row["updated_at"]
        state = self.states.peek(row["run_id"])
        if state is not None:
            state.row = {name: row[name] for name in state.row}

    def follow_param(self, run_id: str, key: str, value: str) -> None:
        """Another process's value of a param won: this process's state follows it."""
        state = self.states.peek(run_id)
        if state is not None:
            state.params[key] = value

    # -- logging ---------------------------------------------------------------------------------
    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Validate everything first, then buffer it: a rejected batch writes nothing."""
        settings = self._settings
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
        for tag in tags:  # keys first: a key that is not a string cannot be a dict key either
            validate_key(tag.key, kind="Tag", settings=settings)
        checked_tags = validated_tags({tag.key: tag.value for tag in tags}, settings=settings)
        state = self.states.get(run_id)
        with self._lock:
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
                self._buffer.add_many(
                    PARAMS.name,
                    [(run_id, experiment_id, k, v, logged_at) for k, v in new_params.items()],
                    defer_backpressure=True,
                )
                state.params.update(new_params)
            if checked_metrics:
                self._buffer.add_many(
                    METRICS.name,
                    [(run_id, experiment_id, k, v, ts, step) for k, v, ts, step in checked_metrics],
                    defer_backpressure=True,
                )
                state.metric_points += len(checked_metrics)
            self._buffer_tags(state, checked_tags)
        self._buffer.relieve_backpressure()

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        """The hot path of ``log_metric``: one point, no read, one buffered tuple."""
        if type(run_id) is not str:
            validate_run_id(run_id)
        key, value, timestamp, step = validate_metric(
            key, value, timestamp, step, settings=self._settings
        )
        with self._lock:
            state = self.states.cached(run_id)
            if state is not None:
                self._add_point(state, key, value, timestamp, step)
        if state is None:  # the run's first use in this process: read it without the lock
            state = self.states.get(run_id)
            with self._lock:
                self._add_point(state, key, value, timestamp, step)
        self._buffer.relieve_backpressure()

    def _add_point(self, state: RunState, key: str, value: float, timestamp: int,
                   step: int) -> None:
        row = state.row
        if row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            self._require_active_run(state)
        if state.metric_points >= self._settings.max_metric_points_per_run:
            raise QuotaExceededError(
                f"Cannot log metric {key!r}: run {row['run_id']} already holds "
                f"{state.metric_points} metric points; the limit "
                f"is {self._settings.max_metric_points_per_run} "
                "(Settings.max_metric_points_per_run)."
            )
        self._buffer.add(
            METRICS.name, (row["run_id"], row["experiment_id"], key, value, timestamp, step),
            defer_backpressure=True,
        )
        state.metric_points += 1

    def delete_tag(self, run_id: str, key: str) -> None:
        state = self.states.get(run_id)
        with self._lock:
            self._require_active_run(state)
            if key not in state.tag_keys:
                raise InvalidInputError(
                    f"No tag with name {key!r} in run {run_id}; nothing to delete."
                )
            state.tag_keys.discard(key)
            self._buffer.add(
                TAGS.name,
                (run_id, state.row["experiment_id"], key, None, True, next_version()),
                defer_backpressure=True,
            )
        self._buffer.relieve_backpressure()

    def log_inputs(self, run_id: str, dataset_inputs: Sequence[DatasetInput]) -> None:
        """Record datasets as inputs of a run, committed at once (not through the buffer).

        As in MLflow, an input is identified in its run by (dataset name, digest): one the run
        already has is left as it is, tags included. The run must not be deleted.
        """
        checked = validate_dataset_inputs([as_dataset_input(item) for item in dataset_inputs])
        state = self.states.get(run_id)
        with self._lock:
            self._require_active_run(state)
            experiment_id = state.row["experiment_id"]
        held = {
            (item.dataset.name, item.dataset.digest)
            for item in self._reads.run_inputs(run_id, experiment_id).dataset_inputs
        }
        new = [item for item in checked if (item.dataset.name, item.dataset.digest) not in held]
        if new:
            self._tables[INPUTS.name].append(input_rows(run_id, experiment_id, new, now_millis()))

    # -- checks (called holding the lock) --------------------------------------------------------
    def _new_params(self, state: RunState, params: dict[str, str]) -> dict[str, str]:
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
        if len(state.params) + len(new) > self._settings.max_params_per_run:
            raise QuotaExceededError(
                f"Logging param {next(iter(new))!r}: run {state.row['run_id']} would hold "
                f"{len(state.params) + len(new)} params; the limit is "
                f"{self._settings.max_params_per_run} (Settings.max_params_per_run)."
            )
        return new

    def _check_tag_quota(self, state: RunState, tags: dict[str, str]) -> None:
        total = len(state.tag_keys | tags.keys())
        if total > self._settings.max_tags_per_run:
            first_new = next(key for key in tags if key not in state.tag_keys)
            raise QuotaExceededError(
                f"Setting tag {first_new!r}: run {state.row['run_id']} would hold {total} tags; "
                "the limit is "
                f"{self._settings.max_tags_per_run} (Settings.max_tags_per_run)."
            )

    def _buffer_tags(self, state: RunState, tags: dict[str, str]) -> None:
        if not tags:
            return
        self._check_tag_quota(state, tags)
        run_id, experiment_id = state.row["run_id"], state.row["experiment_id"]
        self._buffer.add_many(
            TAGS.name,
            [(run_id, experiment_id, k, v, False, next_version()) for k, v in tags.items()],
            defer_backpressure=True,
        )
        state.tag_keys.update(tags)

    @staticmethod
    def _require_active_run(state: RunState) -> None:
        if state.row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"The run {state.row['run_id']} must be in the 'active' state to log to it; it "
                "is deleted. Restore it with restore_run() first."
            )

"""TrackingClient: the explicit-id API over one store (MLflow's ``MlflowClient`` shape)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sparktrack import _lifecycle as management
from sparktrack import _tags
from sparktrack import _pending as pending
from sparktrack._arguments import checked
from sparktrack._artifact_repository import ArtifactRepository, safe_relative_path
from sparktrack.config import DEFAULT_TRACKING_URI, ENV_TRACKING_URI, Settings
from sparktrack._context import current_user, source_info, system_tags
from sparktrack.entities import (
    DatasetInput,
    Experiment,
    FileInfo,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from sparktrack.errors import InvalidInputError
from sparktrack._experiment_search import search_experiment_page
from sparktrack._names import random_run_name
from sparktrack._paging import PagedList
from sparktrack._registry import flush_registry_events
from sparktrack._registry.client_methods import RegistryMethods
from sparktrack._run_search import MAX_RESULTS_LIMIT, search_run_frame, search_run_page
from sparktrack._store import TrackingStore, open_store
from sparktrack._store.rows import now_millis
from sparktrack._store.state_files import wait_for_saves
from sparktrack._validation import quoted, validate_key, validate_run_name

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MlflowClient",
    "PagedList",
    "TrackingClient",
    "resolve_tracking_uri",
    "set_process_tracking_uri",
]

PARENT_RUN_TAG = _tags.PARENT_RUN_ID
RUN_NAME_TAG = _tags.RUN_NAME
NOTE_TAG = _tags.NOTE


# The process-wide tracking URI, set by sparktrack.set_tracking_uri. It lives here, not in
# the fluent module, because TrackingClient() follows it too, as MlflowClient() follows
# mlflow.set_tracking_uri.
_tracking_uri: str | None = None


def set_process_tracking_uri(uri: str | None) -> None:
    """Make ``uri`` the default of every later ``resolve_tracking_uri()`` (None: unset it)."""
    global _tracking_uri
    _tracking_uri = uri


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The given URI, else the one set with ``sparktrack.set_tracking_uri``, else
    ``SPARKTRACK_TRACKING_URI``, else ``./sparktrack-store``."""
    return uri or _tracking_uri or os.environ.get(ENV_TRACKING_URI) or DEFAULT_TRACKING_URI


def _view_type(view_type: ViewType | str) -> ViewType:
    try:
        return ViewType(view_type)
    except ValueError:
        raise InvalidInputError(
            f"Invalid run_view_type {view_type!r}; use one of ACTIVE_ONLY, DELETED_ONLY, ALL."
        ) from None


def _synchronous(synchronous: bool | None) -> bool:
    if synchronous is not None and not isinstance(synchronous, bool):
        # Most likely a timestamp passed by position: MLflow puts synchronous before it.
        raise InvalidInputError(
            f"synchronous must be True, False or None, got {str(synchronous)[:200]!r}; "
            "pass a timestamp as timestamp=..."
        )
    return bool(synchronous)


class TrackingClient(RegistryMethods):
    """Create and query experiments and runs by id; the model registry's methods come from
    :class:`sparktrack._registry.client_methods.RegistryMethods`.

    Args:
        tracking_uri: the store root (a folder or an object-store prefix). Defaults to the
            URI set with ``sparktrack.set_tracking_uri``, else ``SPARKTRACK_TRACKING_URI``,
            else ``./sparktrack-store`` (read when the client is created).
        storage_options: credentials and options handed to ``deltalake`` for object stores.
    """

    def __init__(
        self, tracking_uri: str | None = None, *, storage_options: dict[str, str] | None = None
    ) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        # Private: callers use the client's methods (the store's API is internal).
        self._store: TrackingStore = open_store(self.tracking_uri,
                                                storage_options=storage_options)

    @property
    def store_root(self) -> str:
        """The store root this client reads and writes: an absolute folder or an object-store
        URI (``tracking_uri`` as given, resolved)."""
        return self._store.root

    @property
    def storage_options(self) -> dict[str, str] | None:
        """The options handed to ``deltalake`` for this store (those it was first opened with
        in this process)."""
        return self._store.storage_options

    @property
    def settings(self) -> Settings:
        """The store's limits, quotas and write-buffer settings (fixed once it is open)."""
        return self._store.settings

    def flush(self) -> None:
        """Wait for the process's background work (autologged model saves, search state
        saves), then commit every buffered row of this store and the registry events queued
        for it."""
        pending.wait_all()
        self._store.flush()
        flush_registry_events(self._store)
        wait_for_saves()

    # -- experiments -------------------------------------------------------------------------
    @checked
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> str:
        """Create an experiment and return its id; the name must not be taken."""
        return self._store.create_experiment(name, artifact_location=artifact_location, tags=tags)

    @checked
    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._store.get_experiment(str(experiment_id))

    @checked
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._store.get_experiment_by_name(name)

    @checked
    def search_experiments(
        self,
        view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int | None = 1000,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
        *,
        name_like: str | None = None,
    ) -> PagedList:
        """Experiments matching a filter, one page; ``.token`` of the result fetches the next.

        The filter is MLflow's experiment grammar (``name``, ``experiment_id``,
        ``creation_time``, ``last_update_time``, ``tags.<key>``; see the README) plus ``OR``,
        ``NOT`` and parentheses. ``order_by`` items are ``name``, ``experiment_id``,
        ``creation_time`` or ``last_update_time`` with ``ASC``/``DESC``; the default order is
        ``creation_time DESC, experiment_id ASC``. ``max_results`` is 1..50,000 (None: every
        match in one page). ``name_like`` is a SQL LIKE pattern (``%``, ``_``) ANDed with the
        filter. A bad filter or order raises ``InvalidFilterError``.
        """
        experiments, token = search_experiment_page(
            self._store, view_type=_view_type(view_type), max_results=max_results,
            filter_string=filter_string, order_by=order_by, page_token=page_token,
            name_like=name_like,
        )
        return PagedList(experiments, token)

    @checked
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._store.rename_experiment(str(experiment_id), new_name)

    @checked
    def delete_experiment(self, experiment_id: str) -> None:
        """Soft-delete an experiment and its runs (restore with restore_experiment)."""
        self._store.set_experiment_lifecycle(str(experiment_id), LifecycleStage.DELETED)

    @checked
    def restore_experiment(self, experiment_id: str) -> None:
        self._store.set_experiment_lifecycle(str(experiment_id), LifecycleStage.ACTIVE)

    @checked
    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._store.set_experiment_tag(str(experiment_id), key, str(value))

    @checked
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._store.set_experiment_tag(str(experiment_id), key, None)

    # -- runs --------------------------------------------------------------------------------
    @checked
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
        *,
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Start a RUNNING run with MLflow's system tags (user, source, git)."""
        tags = {key: str(value) for key, value in (tags or {}).items()}
        run_name = run_name or tags.get(_tags.RUN_NAME) or random_run_name()
        user = tags.get(_tags.USER) or current_user()
        source = source_info()
        all_tags = {**system_tags(user, source), **tags}
        if parent_run_id:
            self._store.get_run_info(parent_run_id)  # the parent must exist
            all_tags[PARENT_RUN_TAG] = parent_run_id
        info = self._store.create_run(
            str(experiment_id),
            run_name=run_name,
            user_id=user,
            start_time=start_time,
            tags=all_tags,
            parent_run_id=parent_run_id,
            run_id=run_id,
            source=source,
        )
        return Run(info=info, data=RunData(tags=all_tags))

    @checked
    def get_run(self, run_id: str) -> Run:
        """The run's info, params, latest metrics and tags."""
        return self._store.get_run(run_id)

    @checked
    def get_run_info(self, run_id: str) -> RunInfo:
        return self._store.get_run_info(run_id)

    @checked
    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        self._store.update_run(run_id, status=status, run_name=name)

    @checked
    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        """End a run with the given status (FINISHED, FAILED or KILLED; FINISHED by default).

        Raises StoreError if an earlier commit of this process failed and still fails.
        """
        status = RunStatus.FINISHED if status is None else status
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise InvalidInputError(
                f"Cannot end run {run_id} with status {status!r}; use FINISHED, FAILED or KILLED."
            )
        self._store.update_run(
            run_id, status=status, end_time=end_time if end_time is not None else now_millis()
        )
        # Ending a run commits nothing by itself (a loop of short runs would write a file per
        # run), but a run must not end quietly while this process's commits are failing.
        self._store.buffer.commit_if_failing()

    @checked
    def delete_run(self, run_id: str, *, delete_descendants: bool = True) -> list[str]:
        """Soft-delete a run (and, by default, the runs nested under it).

        Returns the ids of the runs this call deleted: the run first, then its nested runs;
        runs that were already deleted are left out.
        """
        return self._set_lifecycle(run_id, LifecycleStage.DELETED,
                                   with_descendants=delete_descendants)

    @checked
    def restore_run(self, run_id: str, *, restore_descendants: bool = True) -> list[str]:
        """Restore a soft-deleted run (and, by default, its deleted nested runs).

        Returns the ids of the runs this call restored, the run first; active ones are left out.
        """
        return self._set_lifecycle(run_id, LifecycleStage.ACTIVE,
                                   with_descendants=restore_descendants)

    def _set_lifecycle(
        self, run_id: str, stage: LifecycleStage, *, with_descendants: bool
    ) -> list[str]:
        info = self._store.get_run_info(run_id)
        targets = [run_id]
        if with_descendants:
            targets += management.descendants_of(self._store, run_id, info.experiment_id)
        changed = []
        for target in targets:
            if self._store.get_run_info(target).lifecycle_stage != stage:
                self._store.set_run_lifecycle(target, stage)
                changed.append(target)
        return changed

    @checked
    def delete_runs(
        self, experiment_id: str, max_timestamp_millis: int, *, max_runs: int = 10_000
    ) -> int:
        """Soft-delete up to ``max_runs`` runs started at or before the time; returns the count."""
        return management.delete_runs(
            self._store, str(experiment_id), max_timestamp_millis, max_runs=max_runs
        )

    @checked
    def restore_runs(
        self, experiment_id: str, min_timestamp_millis: int, *, max_runs: int = 10_000
    ) -> int:
        """Restore up to ``max_runs`` runs deleted at or after the time; returns the count."""
        return management.restore_runs(
            self._store, str(experiment_id), min_timestamp_millis, max_runs=max_runs
        )

    @checked
    def gc(
        self,
        *,
        older_than: timedelta = timedelta(days=30),
        experiment_ids: list[str] | None = None,
        vacuum_retention_hours: int = 0,
        timeout_seconds: float = management.GC_TIMEOUT_SECONDS,
    ) -> management.GcResult:
        """Permanently remove runs deleted longer ago than ``older_than`` (see management)."""
        return management.collect_garbage(
            self._store, older_than=older_than, experiment_ids=experiment_ids,
            vacuum_retention_hours=vacuum_retention_hours, timeout_seconds=timeout_seconds,
        )

    @checked
    def compare_runs(self, run_ids: Sequence[str], *, hide_identical: bool = False):
        """Params and metrics of the runs side by side (a pandas frame; see sparktrack.compare)."""
        from sparktrack.compare import compare_runs

        return compare_runs([self.get_run(run_id) for run_id in run_ids],
                            hide_identical=hide_identical)

    # -- search ------------------------------------------------------------------------------
    @checked
    def search_runs(
        self,
        experiment_ids: str | list[str],
        filter_string: str = "",
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Runs matching a filter, as entities; ``.token`` of the result fetches the next page.

        The filter grammar is MLflow's plus ``MIN()/MAX()/LATEST()``, ``OR``, ``NOT`` and
        parentheses (see the README); a bad filter raises ``InvalidFilterError``.
        """
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        runs, token = search_run_page(
            self._store, [str(i) for i in ids], filter_string=filter_string,
            view_type=_view_type(run_view_type), max_results=max_results,
            order_by=order_by, page_token=page_token,
        )
        return PagedList(runs, token)

    @checked
    def search_runs_frame(
        self,
        experiment_ids: str | list[str],
        filter_string: str = "",
        run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        max_results: int = MAX_RESULTS_LIMIT,
        order_by: list[str] | None = None,
    ) -> pd.DataFrame:
        """The same search as MLflow's pandas frame (what ``sparktrack.search_runs`` returns).

        Built column by column, without a ``Run`` object per run: use it for many runs.
        """
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return search_run_frame(
            self._store, [str(i) for i in ids], filter_string=filter_string,
            view_type=_view_type(run_view_type), max_results=max_results, order_by=order_by,
        )

    # -- logging -----------------------------------------------------------------------------
    @checked
    def log_param(
        self, run_id: str, key: str, value: Any, synchronous: bool | None = None
    ) -> Any:
        """Log a write-once param; the same value again is a no-op, another value an error.

        ``synchronous=True`` commits it before returning (see :meth:`log_metric`).
        """
        synchronous = _synchronous(synchronous)
        self._store.log_batch(run_id, params=[Param(key, value)])
        self._commit_if(synchronous)
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool | None = None,
    ) -> None:
        """Log one point of a metric (``step`` 0 and the current time by default).

        Rows are buffered and committed within the flush interval; reads in this process see
        them at once. ``synchronous=True`` commits them before returning, one Delta commit
        per call (MLflow's ``synchronous=False`` is the buffered default here).
        """
        synchronous = _synchronous(synchronous)
        self._store.log_metric(
            run_id, key, value, timestamp if timestamp is not None else now_millis(), step or 0
        )
        self._commit_if(synchronous)

    def _commit_if(self, synchronous: bool) -> None:
        if synchronous:
            self._store.flush()

    @checked
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        synchronous: bool | None = None,
    ) -> None:
        """Log metrics, params and tags at once; all are validated before any is written.

        Like MLflow, a ``mlflow.runName`` tag renames the run. ``synchronous=True`` commits
        them before returning (see :meth:`log_metric`).
        """
        synchronous = _synchronous(synchronous)
        names = [str(tag.value) for tag in tags if tag.key == RUN_NAME_TAG]
        if names:
            validate_run_name(names[-1], settings=self._store.settings)
        self._store.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        if names:
            self._store.update_run(run_id, run_name=names[-1])
        self._commit_if(synchronous)

    @checked
    def set_tag(
        self, run_id: str, key: str, value: Any, synchronous: bool | None = None
    ) -> None:
        """Set a run tag; setting ``mlflow.runName`` renames the run, as in MLflow."""
        self.log_batch(run_id, tags=[RunTag(key, value)], synchronous=synchronous)

    @checked
    def delete_tag(self, run_id: str, key: str) -> None:
        self._store.delete_tag(run_id, key)

    @checked
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point logged for ``key``, ordered by step then timestamp."""
        validate_key(key, kind="Metric", settings=self.settings)
        return self._store.get_metric_history(run_id, key)

    @checked
    def get_metric_histories(self, run_ids: Sequence[str], key: str) -> dict[str, list[Metric]]:
        """Every point logged for ``key`` by each of ``run_ids``: run id -> its points ordered
        by step then timestamp ([] for a run that never logged ``key``). One read for all the
        runs, where calling :meth:`get_metric_history` per run reads once per run (a chart
        comparing 100 runs).

        Raises:
            RunNotFoundError: a run id is not in the store.
        """
        validate_key(key, kind="Metric", settings=self.settings)
        return self._store.get_metric_histories(list(run_ids), key)

    # -- artifacts ---------------------------------------------------------------------------
    def _artifacts(self, run_id: str) -> ArtifactRepository:
        return ArtifactRepository(self._store.get_run_info(run_id).artifact_uri,
                                  storage_options=self._store.storage_options)

    @checked
    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        self._artifacts(run_id).log_artifact(local_path, artifact_path)

    @checked
    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None
    ) -> None:
        self._artifacts(run_id).log_artifacts(local_dir, artifact_path)

    @checked
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"log_text: the text has {text[exc.start:exc.end]!r} at position {exc.start}, "
                f"which is not valid Unicode (a lone surrogate); text {quoted(text)}."
            ) from None
        self._artifacts(run_id).write_bytes(artifact_file, data)

    @checked
    def log_dict(self, run_id: str, dictionary: dict, artifact_file: str) -> None:
        """Write a dict as JSON (or YAML when the file ends in .yaml/.yml and PyYAML exists)."""
        if artifact_file.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                from sparktrack.errors import MissingRequirementError

                raise MissingRequirementError(
                    f"Writing {artifact_file!r} as YAML needs PyYAML: `pip install pyyaml`, "
                    "or use a .json file name."
                ) from None
            try:
                text = yaml.safe_dump(dictionary, sort_keys=False)
            except yaml.YAMLError as exc:
                raise InvalidInputError(
                    f"log_dict: the dictionary cannot be written as YAML ({exc}); use plain "
                    "dicts, lists, strings and numbers, or a .json file name."
                ) from None
        else:
            try:
                text = json.dumps(dictionary, indent=2, default=str)
            except (TypeError, ValueError) as exc:  # e.g. keys that are not strings
                raise InvalidInputError(
                    f"log_dict: the dictionary cannot be written as JSON ({exc})."
                ) from None
        self.log_text(run_id, text, artifact_file)

    @checked
    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib figure (format from the file extension, PNG by default)."""
        safe_relative_path(artifact_file)  # refuse a bad path before matplotlib reads it
        out = io.BytesIO()
        extension = os.path.splitext(artifact_file)[1].lstrip(".") or "png"
        figure.savefig(out, format=extension)
        self._artifacts(run_id).write_bytes(artifact_file, out.getvalue())

    @checked
    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and folders at ``path`` of the run's artifacts (after its pending saves)."""
        pending.wait_for_run(run_id)
        return self._artifacts(run_id).list_artifacts(path)

    @checked
    def download_artifacts(
        self, run_id: str, path: str | None = None, dst_path: str | os.PathLike | None = None
    ) -> str:
        """Copy an artifact (file or folder) to ``dst_path`` (a new temp folder by default).

        Like every artifact read, it first waits for the run's background saves.
        """
        pending.wait_for_run(run_id)
        destination = dst_path or tempfile.mkdtemp(prefix="sparktrack-artifacts-")
        return self._artifacts(run_id).download_artifacts(path, destination)

    # -- run inputs ----------------------------------------------------------------------------
    @checked
    def log_inputs(
        self,
        run_id: str,
        datasets: Sequence[DatasetInput] | None = None,
        models: Sequence[Any] | None = None,
    ) -> None:
        """Record datasets used by a run (MLflow's ``MlflowClient.log_inputs``).

        ``datasets`` are :class:`~sparktrack.entities.DatasetInput` s (MLflow's own entities
        are accepted too). An input the run already has (same dataset name and digest) is left
        as it is. ``get_run(run_id).inputs`` returns them.

        Raises:
            InvalidInputError: a dataset lacks a name, digest, source type or source, a value
                is over MLflow's limits, or ``models`` is given (sparktrack has no logged
                models).
        """
        if models:
            raise InvalidInputError(
                "log_inputs(models=...) records logged models, which sparktrack does not have; "
                "pass datasets only."
            )
        if datasets is None:
            return
        if not isinstance(datasets, (list, tuple)):
            raise InvalidInputError(
                f"datasets must be a list of DatasetInput, got {type(datasets).__name__}; wrap "
                "a single input in a list."
            )
        if datasets:
            self._store.log_inputs(run_id, list(datasets))


# MLflow's name, so `import sparktrack as mlflow; mlflow.MlflowClient()` works unchanged.
MlflowClient = TrackingClient

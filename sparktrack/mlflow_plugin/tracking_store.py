"""MLflow's tracking store over a sparktrack store (entry point ``mlflow.tracking_store``).

A thin adapter: each method converts MLflow's arguments, calls :class:`sparktrack.TrackingClient`
(search, validation and commits are sparktrack's) and converts the result back to MLflow's
entities. Errors leave as ``MlflowException`` with MLflow's error codes; what sparktrack does
not keep (traces, GenAI features, logged-model records) raises NOT_IMPLEMENTED, except the
searches MLflow's UI makes on every page, which find nothing.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from mlflow.entities import Metric as MlflowMetric
from mlflow.entities import RunStatus as MlflowRunStatus
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS

from sparktrack import _tags
from sparktrack._store import DEFAULT_EXPERIMENT_ID
from sparktrack._paging import offset_from_token, token_for
from sparktrack.client import TrackingClient
from sparktrack.entities import RunStatus, ViewType
from sparktrack.errors import InvalidInputError
from sparktrack.mlflow_plugin import _convert
from sparktrack.mlflow_plugin._adapter import complete_store_class
from sparktrack.mlflow_plugin.uris import store_root_from_uri

__all__ = ["SparkTrackStore"]

# MLflow's server puts the backend store URI in this variable for its worker processes.
_SERVER_STORE_ENV = "_MLFLOW_SERVER_FILE_STORE"

# MLflow's ViewType is an int (1, 2, 3); its REST layer and some callers pass the names.
_VIEW_TYPES = {1: ViewType.ACTIVE_ONLY, 2: ViewType.DELETED_ONLY, 3: ViewType.ALL}

# MLflow's defaults that are built on the methods below and work as they are.
_INHERITED = (
    "log_metric", "log_param", "set_tag",
    "log_batch_async", "log_metric_async", "log_param_async", "set_tag_async",
    "flush_async_logging", "end_async_logging", "shut_down_async_logging",
    "search_runs", "get_metric_history_bulk_interval_from_steps",
    "set_model_versions_tags",
)


def _view(value: Any) -> ViewType:
    """MLflow's view type (1, 2, 3, or a name in any case) as sparktrack's."""
    if isinstance(value, int) and not isinstance(value, bool) and value in _VIEW_TYPES:
        return _VIEW_TYPES[value]
    if isinstance(value, str) and value.upper() in ViewType.__members__:
        return ViewType[value.upper()]
    if value is None:
        return ViewType.ACTIVE_ONLY
    raise InvalidInputError(
        f"Invalid view type {str(value)[:200]!r}; use ViewType.ACTIVE_ONLY, DELETED_ONLY or ALL."
    )


def _status_name(value: Any) -> str:
    """MLflow's run status (its int enum or a name) as the status name."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return MlflowRunStatus.to_string(value)
        except Exception:  # MLflow raises a bare Exception for an unknown number
            pass
    elif isinstance(value, str) and value.upper() in RunStatus.__members__:
        return value.upper()
    raise InvalidInputError(
        f"Invalid run status {str(value)[:200]!r}; use one of {', '.join(RunStatus)}."
    )


class _HistoriesReadOnce:
    """What MLflow's ``get_metric_history_bulk_interval`` uses of a store, with the histories
    of all the runs read at once: MLflow's sampling reads every run's history twice (its steps,
    then its points), and each read is a scan of the store's tables (the UI asks for up to 100
    runs a chart)."""

    _evenly_spaced_indices = staticmethod(AbstractStore._evenly_spaced_indices)

    def __init__(self, store: "SparkTrackStore", run_ids: list[str], metric_key: str) -> None:
        # All the runs' histories in one read (one pass over each experiment's metric files).
        self._read = {
            run_id: [_convert.metric(m) for m in points]
            for run_id, points in store.client.get_metric_histories(run_ids, metric_key).items()
        }

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        return self._read[run_id]


@complete_store_class(AbstractStore, inherited=_INHERITED, private=("_search_runs",))
class SparkTrackStore(AbstractStore):
    """MLflow's tracking store for ``sparktrack:`` URIs.

    Args:
        store_uri: ``sparktrack:///abs/path``, ``sparktrack:./relative`` or
            ``sparktrack+s3://bucket/prefix`` (see :mod:`sparktrack.mlflow_plugin.uris`).
        artifact_uri: MLflow's default artifact root. Not used: a run's artifacts live in the
            sparktrack store, and runs report that folder (a ``file://`` URI for a local store)
            as their ``artifact_uri``, so MLflow's server and clients read it directly.
        commit_each_write: commit every write before returning. Defaults to True inside
            ``mlflow server`` (its worker processes must see each other's writes at once) and
            to sparktrack's buffered writes elsewhere (committed within the flush interval,
            when a run ends, and at exit).
    """

    def __init__(
        self,
        store_uri: str | None = None,
        artifact_uri: str | None = None,
        *,
        commit_each_write: bool | None = None,
    ) -> None:
        super().__init__()
        self.store_uri = store_uri
        self.artifact_uri = artifact_uri
        self.client = TrackingClient(store_root_from_uri(store_uri))
        # MLflow's stores start with the Default experiment (id 0), which MLflow's clients use
        # when no experiment is set; sparktrack creates it on first read.
        self.client.get_experiment(DEFAULT_EXPERIMENT_ID)
        self.commit_each_write = (bool(os.environ.get(_SERVER_STORE_ENV))
                                  if commit_each_write is None else commit_each_write)

    def _wrote(self) -> None:
        if self.commit_each_write:
            self.client.flush()

    def _fresh(self, run_id: Any) -> None:
        """Before a write to a run in commit-each-write mode, drop what this process cached
        of it: another process (another server worker) may have written to it since, and a
        write from a stale copy would undo that write (a run's info is written as a whole
        row) or refuse to delete a tag this process has not seen."""
        if self.commit_each_write and isinstance(run_id, str):
            self.client._store.forget_runs([run_id])

    # -- experiments ---------------------------------------------------------------------------
    def search_experiments(self, view_type=1, max_results=1000, filter_string=None,
                           order_by=None, page_token=None):
        page = self.client.search_experiments(
            view_type=_view(view_type), max_results=max_results, filter_string=filter_string,
            order_by=_convert.listed(order_by), page_token=page_token)
        return PagedList([_convert.experiment(e) for e in page], page.token)

    def create_experiment(self, name, artifact_location=None, tags=None):
        return self.client.create_experiment(name, artifact_location=artifact_location,
                                             tags=_convert.tag_dict(tags))

    def get_experiment(self, experiment_id):
        return _convert.experiment(self.client.get_experiment(experiment_id))

    def get_experiment_by_name(self, experiment_name):
        found = self.client.get_experiment_by_name(experiment_name)
        return None if found is None else _convert.experiment(found)

    def delete_experiment(self, experiment_id):
        self.client.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id):
        self.client.restore_experiment(experiment_id)

    def filter_active_experiment_ids(self, experiment_ids):
        ids = _convert.listed(experiment_ids)
        if not isinstance(ids, list):
            raise InvalidInputError(
                f"experiment_ids must be a list of experiment ids, got {type(ids).__name__}.")
        active = {e.experiment_id for e in self.client.search_experiments(max_results=None)}
        return [str(i) for i in ids if str(i) in active]

    def rename_experiment(self, experiment_id, new_name):
        self.client.rename_experiment(experiment_id, new_name)

    def set_experiment_tag(self, experiment_id, tag):
        self.client.set_experiment_tag(experiment_id, *_convert.tag_pair(tag, "ExperimentTag"))

    def delete_experiment_tag(self, experiment_id, key):
        self.client.delete_experiment_tag(experiment_id, key)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        tags = _convert.tag_dict(tags)
        if user_id and _tags.USER not in tags:
            tags[_tags.USER] = user_id
        created = self.client.create_run(
            experiment_id, start_time=start_time, tags=tags, run_name=run_name or None,
            parent_run_id=tags.get(_tags.PARENT_RUN_ID) or None)
        self._wrote()
        return _convert.run(created, [])

    def get_run(self, run_id):
        found = self.client.get_run(run_id)
        latest = self._latest_metrics([found.info.experiment_id], [run_id])
        return _convert.run(found, latest.get(run_id, []))

    def update_run_info(self, run_id, run_status, end_time, run_name):
        self._fresh(run_id)
        status = None if run_status is None else _status_name(run_status)
        if run_name:
            self.client.update_run(run_id, name=run_name)
        if status in ("FINISHED", "FAILED", "KILLED"):
            self.client.set_terminated(run_id, status, end_time=end_time)
            # A run that ends is a natural commit point: other processes see it at once.
            self.client.flush()
        elif status is not None:
            self.client.update_run(run_id, status=status)
        self._wrote()
        return _convert.run_info(self.client.get_run_info(run_id))

    def delete_run(self, run_id):
        self._fresh(run_id)
        # MLflow deletes just the run; its nested runs stay (sparktrack's default takes them).
        self.client.delete_run(run_id, delete_descendants=False)
        self._wrote()

    def restore_run(self, run_id):
        self._fresh(run_id)
        self.client.restore_run(run_id, restore_descendants=False)
        self._wrote()

    def _search_runs(self, experiment_ids, filter_string, run_view_type, max_results,
                     order_by, page_token):
        page = self.client.search_runs(
            _convert.listed(experiment_ids) or [], filter_string=filter_string or "",
            run_view_type=_view(run_view_type), max_results=max_results,
            order_by=_convert.listed(order_by), page_token=page_token)
        latest = self._latest_metrics(sorted({r.info.experiment_id for r in page}),
                                      [r.info.run_id for r in page])
        return [_convert.run(r, latest.get(r.info.run_id, [])) for r in page], page.token

    def _latest_metrics(
        self, experiment_ids: Sequence[str], run_ids: Sequence[str]
    ) -> dict[str, list[MlflowMetric]]:
        """Each run's latest metric points with their step and time (MLflow's run data has
        them; sparktrack's run entity keeps the values), from the cached metric summaries."""
        if not run_ids:
            return {}
        # The store's current state of the metric summaries: the same rows sparktrack's own
        # search reads, kept up to date per process.
        rows: pa.Table = self.client._store.current_view("metric_summaries",
                                                         list(experiment_ids)).rows()
        rows = rows.filter(pc.is_in(rows.column("run_id"), value_set=pa.array(list(run_ids))))
        latest: dict[str, list[MlflowMetric]] = defaultdict(list)
        for row in rows.select(["run_id", "key", "latest_value", "latest_timestamp",
                                "latest_step"]).to_pylist():
            latest[row["run_id"]].append(MlflowMetric(
                row["key"], row["latest_value"], row["latest_timestamp"], row["latest_step"]))
        return latest

    # -- logging -------------------------------------------------------------------------------
    def log_batch(self, run_id, metrics, params, tags):
        self._fresh(run_id)
        self.client.log_batch(
            run_id, metrics=_convert.sparktrack_metrics(metrics),
            params=_convert.sparktrack_params(params), tags=_convert.sparktrack_tags(tags))
        self._wrote()

    def delete_tag(self, run_id, key):
        self._fresh(run_id)
        self.client.delete_tag(run_id, key)
        self._wrote()

    def log_inputs(self, run_id, datasets=None, models=None):
        self._fresh(run_id)
        self.client.log_inputs(run_id, datasets=datasets, models=models)

    def record_logged_model(self, run_id, mlflow_model):
        """Append the model's description to the run's ``mlflow.log-model.history`` tag, as
        MLflow's own stores do (``mlflow.spark.log_model`` calls this)."""
        if not hasattr(mlflow_model, "get_tags_dict"):
            raise InvalidInputError(
                f"record_logged_model: mlflow_model must be an mlflow.models.Model, got "
                f"{type(mlflow_model).__name__}.")
        self._fresh(run_id)
        previous = self.client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_MODELS)
        history = json.loads(previous) if previous else []
        history.append(mlflow_model.get_tags_dict())
        self.client.set_tag(run_id, MLFLOW_LOGGED_MODELS, json.dumps(history))
        self._wrote()

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        points = [_convert.metric(m) for m in self.client.get_metric_history(run_id, metric_key)]
        offset = offset_from_token(page_token)
        if max_results is None:
            return PagedList(points[offset:], None)
        end = offset + max_results
        return PagedList(points[offset:end], token_for(end) if end < len(points) else None)

    def get_metric_history_bulk_interval(self, run_ids, metric_key, max_results, start_step,
                                         end_step):
        """MLflow's sampling of the histories (the UI's charts); the arguments are checked
        first, MLflow's default compares them unchecked."""
        run_ids = _convert.listed(run_ids)
        if not isinstance(run_ids, list) or not all(isinstance(r, str) for r in run_ids):
            raise InvalidInputError(
                f"run_ids must be a list of run ids, got {str(run_ids)[:200]!r}.")
        for name, value in (("max_results", max_results), ("start_step", start_step),
                            ("end_step", end_step)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(f"{name} must be an integer, got {str(value)[:200]!r}.")
        if max_results is None:
            raise InvalidInputError("max_results is required (the number of steps to sample).")
        return AbstractStore.get_metric_history_bulk_interval(
            _HistoriesReadOnce(self, run_ids, metric_key), run_ids, metric_key, max_results,
            start_step, end_step)

    # -- what MLflow's UI asks on every page: nothing here, not an error -----------------------
    def search_logged_models(self, experiment_ids, filter_string=None, datasets=None,
                             max_results=None, order_by=None, page_token=None):
        return PagedList([], None)

    def search_traces(self, *args, **kwargs):
        return [], None

    def query_trace_metrics(self, *args, **kwargs):
        return PagedList([], None)

    def search_datasets(self, *args, **kwargs):
        return PagedList([], None)

    def _search_datasets(self, experiment_ids):
        # Duck-typed by MLflow's server (experiments/search-datasets): without it, HTTP 500.
        return []

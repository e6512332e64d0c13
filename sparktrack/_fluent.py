"""The fluent API: MLflow's module-level functions over an active run.

The tracking URI and the active experiment are process-wide; the stack of active runs is per
thread, so threads that train in parallel each have their own run.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sparktrack import _pending as pending
from sparktrack._arguments import checked
from sparktrack.client import (
    NOTE_TAG,
    TrackingClient,
    resolve_tracking_uri,
    set_process_tracking_uri,
)
from sparktrack.config import ENV_EXPERIMENT_ID, ENV_EXPERIMENT_NAME
from sparktrack.entities import (
    Experiment,
    FileInfo,
    LifecycleStage,
    Metric,
    ModelVersion,
    Param,
    RegisteredModel,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from sparktrack.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidInputError,
    InvalidStateError,
)
from sparktrack._run_search import MAX_RESULTS_LIMIT
from sparktrack._store import DEFAULT_EXPERIMENT_ID
from sparktrack._store.rows import now_millis

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ActiveRun",
    "active_run",
    "compare_runs",
    "create_experiment",
    "delete_experiment",
    "delete_run",
    "delete_runs",
    "delete_tag",
    "download_artifacts",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "list_artifacts",
    "log_artifact",
    "log_artifacts",
    "log_batch",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "register_model",
    "rename_experiment",
    "restore_experiment",
    "restore_run",
    "restore_runs",
    "search_experiments",
    "search_model_versions",
    "search_registered_models",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_model_version_tag",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]

logger = logging.getLogger("sparktrack")

_state_lock = threading.Lock()
_active_experiment_id: str | None = None
_client: TrackingClient | None = None
_thread = threading.local()
# Every thread's open runs, oldest first, so that interpreter exit can end them: a thread's
# own stack is gone once the thread has ended. Single dict operations need no lock (GIL).
_open_runs: dict[str, ActiveRun] = {}


class ActiveRun:
    """The run returned by :func:`start_run`; a context manager that ends it.

    Leaving the ``with`` block ends the run FINISHED, or FAILED when an exception escaped
    (KILLED for ``KeyboardInterrupt``); the exception still propagates.
    """

    def __init__(self, run_id: str, client: TrackingClient) -> None:
        self._run_id = run_id
        self._client = client

    @property
    def info(self) -> RunInfo:
        return self._client.get_run_info(self._run_id)

    @property
    def data(self) -> RunData:
        return self._client.get_run(self._run_id).data

    def __repr__(self) -> str:
        return f"<ActiveRun run_id={self._run_id}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        _end_run_by_id(self._run_id, status)
        return False


def _stack() -> list[ActiveRun]:
    stack = getattr(_thread, "runs", None)
    if stack is None:
        stack = _thread.runs = []
    return stack


def _get_client() -> TrackingClient:
    global _client
    with _state_lock:
        uri = resolve_tracking_uri()
        if _client is None or _client.tracking_uri != uri:
            _client = TrackingClient(uri)
        return _client


# -- tracking URI and experiments ---------------------------------------------------------------
@checked
def set_tracking_uri(uri: str | os.PathLike) -> None:
    """Use the store at ``uri`` (a folder or an object-store prefix) from now on, in the
    fluent API and in every ``TrackingClient()`` created without a URI."""
    global _active_experiment_id
    with _state_lock:
        set_process_tracking_uri(os.fspath(uri))
        _active_experiment_id = None


@checked
def get_tracking_uri() -> str:
    """The store in use: set_tracking_uri, else SPARKTRACK_TRACKING_URI, else the default."""
    return resolve_tracking_uri()


@checked
def create_experiment(
    name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
) -> str:
    return _get_client().create_experiment(name, artifact_location=artifact_location, tags=tags)


@checked
def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active for new runs; a missing name is created."""
    global _active_experiment_id
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidInputError("Pass exactly one of experiment_name or experiment_id.")
    client = _get_client()
    if experiment_id is not None:
        experiment = client.get_experiment(str(experiment_id))
    else:
        experiment = _active_experiment_named(client, experiment_name)
    _require_active(experiment)
    _active_experiment_id = experiment.experiment_id
    return experiment


def _active_experiment_named(client: TrackingClient, name: str) -> Experiment:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name)
        except AlreadyExistsError:
            pass  # another process created it a moment ago: use theirs
        experiment = client.get_experiment_by_name(name)
    return _require_active(experiment)


def _require_active(experiment: Experiment) -> Experiment:
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidStateError(
            f"Cannot set a deleted experiment {experiment.name!r} as the active experiment. "
            "Restore it with restore_experiment(), or choose another name."
        )
    return experiment


def _resolve_experiment_id(experiment_id: str | None) -> str:
    if experiment_id is not None:
        return str(experiment_id)
    if _active_experiment_id is not None:
        return _active_experiment_id
    # As MLflow: the name wins (created if missing); an id set too must be that experiment's.
    env_name, env_id = os.environ.get(ENV_EXPERIMENT_NAME), os.environ.get(ENV_EXPERIMENT_ID)
    if env_name:
        named = _active_experiment_named(_get_client(), env_name).experiment_id
        if env_id and env_id != named:
            raise InvalidInputError(
                f"{ENV_EXPERIMENT_ID}={env_id!r} does not match the id {named} of experiment "
                f"{env_name!r} named by {ENV_EXPERIMENT_NAME}; unset one of them."
            )
        return named
    if env_id:
        return env_id
    return DEFAULT_EXPERIMENT_ID


@checked
def get_experiment(experiment_id: str) -> Experiment:
    return _get_client().get_experiment(experiment_id)


@checked
def get_experiment_by_name(name: str) -> Experiment | None:
    return _get_client().get_experiment_by_name(name)


@checked
def search_experiments(
    view_type: ViewType | str = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
    *,
    name_like: str | None = None,
) -> list[Experiment]:
    """Every experiment matching ``filter_string`` (up to ``max_results``), as a plain list.

    Like MLflow's ``mlflow.search_experiments``: no paging to do. The filter and ``order_by``
    grammar is :meth:`TrackingClient.search_experiments`'; the default order is
    ``creation_time DESC, experiment_id ASC``. ``name_like`` is a SQL LIKE pattern ANDed with
    the filter (``name_like="cv%"`` is ``filter_string="name LIKE 'cv%'"``).
    """
    if max_results is not None and (
        isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
    ):
        raise InvalidInputError(f"max_results must be a positive integer, got {max_results!r}.")
    # One page holding every match: one consistent read, not a page loop over a changing store.
    experiments = _get_client().search_experiments(
        view_type=view_type, max_results=None, filter_string=filter_string,
        order_by=order_by, name_like=name_like,
    )
    return list(experiments[:max_results])


@checked
def rename_experiment(experiment_id: str, new_name: str) -> None:
    _get_client().rename_experiment(experiment_id, new_name)


@checked
def delete_experiment(experiment_id: str) -> None:
    _get_client().delete_experiment(experiment_id)


@checked
def restore_experiment(experiment_id: str) -> None:
    _get_client().restore_experiment(experiment_id)


@checked
def set_experiment_tag(key: str, value: Any) -> None:
    """Tag the active experiment."""
    _get_client().set_experiment_tag(_resolve_experiment_id(None), key, value)


@checked
def set_experiment_tags(tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        set_experiment_tag(key, value)


# -- runs --------------------------------------------------------------------------------------
@checked
def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
) -> ActiveRun:
    """Start a new run, or resume ``run_id``, and make it this thread's active run."""
    stack = _stack()
    if stack and not nested:
        raise InvalidStateError(
            f"Run with UUID {stack[-1]._run_id} is already active. To start a new run, first "
            "end the current run with sparktrack.end_run(). To start a nested run, call "
            "start_run with nested=True."
        )
    client = _get_client()
    if parent_run_id is None and stack:
        parent_run_id = stack[-1]._run_id
    user_tags = dict(tags or {})
    if description is not None:
        user_tags[NOTE_TAG] = description
    if run_id is not None:
        info = client.get_run_info(run_id)
        if experiment_id is not None and str(experiment_id) != info.experiment_id:
            raise InvalidInputError(
                f"Run {run_id} belongs to experiment {info.experiment_id}, not "
                f"{experiment_id}; drop experiment_id to resume it."
            )
        if info.lifecycle_stage != LifecycleStage.ACTIVE:
            raise InvalidStateError(
                f"Cannot resume run {run_id}: it is deleted. Restore it with restore_run()."
            )
        client.update_run(run_id, status=RunStatus.RUNNING.value, name=run_name)
        if user_tags:
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in user_tags.items()])
    else:
        run = client.create_run(
            _resolve_experiment_id(experiment_id),
            tags=user_tags,
            run_name=run_name,
            parent_run_id=parent_run_id,
        )
        run_id = run.info.run_id
    active = ActiveRun(run_id, client)
    stack.append(active)
    _open_runs[run_id] = active
    _thread.last_run_id = run_id
    return active


def _end_run_by_id(run_id: str, status: str) -> None:
    stack = _stack()
    # Ending an outer run ends the runs nested in it that are still open, innermost first.
    while stack and any(active._run_id == run_id for active in stack):
        active = stack[-1]
        # Pop only once ended: a rejected status leaves the run active, as it is in the store.
        active._client.set_terminated(active._run_id, status=status, end_time=now_millis())
        stack.pop()
        _open_runs.pop(active._run_id, None)
        _thread.last_run_id = active._run_id


@checked
def end_run(status: str = RunStatus.FINISHED) -> None:
    """End this thread's active run (no-op when there is none)."""
    stack = _stack()
    if stack:
        _end_run_by_id(stack[-1]._run_id, str(status))


@checked
def active_run() -> ActiveRun | None:
    """This thread's innermost active run, or None."""
    stack = _stack()
    return stack[-1] if stack else None


@checked
def last_active_run() -> Run | None:
    """The active run, else the run this thread ended last, else None."""
    current = active_run()
    run_id = current._run_id if current else getattr(_thread, "last_run_id", None)
    return None if run_id is None else _get_client().get_run(run_id)


@checked
def get_run(run_id: str) -> Run:
    return _get_client().get_run(run_id)


@checked
def delete_run(run_id: str, *, delete_descendants: bool = True) -> None:
    _get_client().delete_run(run_id, delete_descendants=delete_descendants)


@checked
def restore_run(run_id: str, *, restore_descendants: bool = True) -> None:
    _get_client().restore_run(run_id, restore_descendants=restore_descendants)


@checked
def delete_runs(
    experiment_id: str, max_timestamp_millis: int, *, max_runs: int = 10_000
) -> int:
    """Soft-delete up to ``max_runs`` (1..10,000) runs of the experiment started at or before
    ``max_timestamp_millis``, oldest first; returns how many were deleted (Databricks'
    ``delete_runs``)."""
    return _get_client().delete_runs(experiment_id, max_timestamp_millis, max_runs=max_runs)


@checked
def restore_runs(
    experiment_id: str, min_timestamp_millis: int, *, max_runs: int = 10_000
) -> int:
    """Restore up to ``max_runs`` (1..10,000) runs of the experiment deleted at or after
    ``min_timestamp_millis``, most recently deleted first; returns how many were restored
    (Databricks' ``restore_runs``)."""
    return _get_client().restore_runs(experiment_id, min_timestamp_millis, max_runs=max_runs)


@checked
def compare_runs(run_ids: list[str], *, hide_identical: bool = False) -> pd.DataFrame:
    """Params and metrics of the runs side by side; ``hide_identical`` drops equal rows."""
    return _get_client().compare_runs(run_ids, hide_identical=hide_identical)


@checked
def search_runs(
    experiment_ids: list[str] | None = None,
    filter_string: str = "",
    run_view_type: ViewType | str = ViewType.ACTIVE_ONLY,
    max_results: int = MAX_RESULTS_LIMIT,
    order_by: list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """Runs matching a filter as MLflow's pandas frame (or a list of Run with output_format).

    Experiments: the given ids or names, else every active experiment with
    ``search_all_experiments=True``, else the active experiment.
    """
    if output_format not in ("pandas", "list"):
        raise InvalidInputError(f"output_format must be 'pandas' or 'list', got {output_format!r}.")
    client = _get_client()
    ids = [str(i) for i in experiment_ids or []]
    for name in experiment_names or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise ExperimentNotFoundError(
                f"No experiment named {name!r}; list them with search_experiments()."
            )
        ids.append(experiment.experiment_id)
    if not experiment_ids and not experiment_names:  # None or [] alike, as in MLflow
        if search_all_experiments:
            ids = [e.experiment_id for e in client.search_experiments(
                view_type=ViewType.ACTIVE_ONLY, max_results=None)]
        else:
            ids = [_resolve_experiment_id(None)]
    if output_format == "pandas":
        return client.search_runs_frame(ids, filter_string, run_view_type, max_results, order_by)
    return list(client.search_runs(ids, filter_string, run_view_type, max_results, order_by))


def _run_id_or_start() -> str:
    # Like MLflow, logging with no active run starts one.
    current = active_run()
    return (current or start_run())._run_id


# -- logging ----------------------------------------------------------------------------------
@checked
def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a param of the active run (write-once) and return the value.

    ``synchronous=True`` commits it before returning (see :func:`log_metric`).
    """
    return _get_client().log_param(_run_id_or_start(), key, value, synchronous=synchronous)


@checked
def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    _get_client().log_batch(
        run_id or _run_id_or_start(),
        params=[Param(key, value) for key, value in params.items()],
        synchronous=synchronous,
    )


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
) -> None:
    """Log one point of a metric of the active run, or of ``run_id``.

    Buffered: microseconds, no commit; the row is committed within the flush interval and
    reads in this process see it at once. ``synchronous=True`` commits before returning (one
    Delta commit per call); MLflow's ``synchronous=False`` is the default behaviour here.
    """
    _get_client().log_metric(
        run_id or _run_id_or_start(), key, value, timestamp=timestamp, step=step,
        synchronous=synchronous,
    )


@checked
def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
) -> None:
    timestamp = timestamp if timestamp is not None else int(time.time() * 1000)
    _get_client().log_batch(
        run_id or _run_id_or_start(),
        metrics=[Metric(key, value, timestamp, step or 0) for key, value in metrics.items()],
        synchronous=synchronous,
    )


@checked
def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _get_client().set_tag(_run_id_or_start(), key, value, synchronous=synchronous)


@checked
def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    _get_client().log_batch(
        _run_id_or_start(), tags=[RunTag(key, value) for key, value in tags.items()],
        synchronous=synchronous,
    )


@checked
def delete_tag(key: str) -> None:
    _get_client().delete_tag(_run_id_or_start(), key)


@checked
def log_batch(
    metrics: list[Metric] | tuple = (),
    params: list[Param] | tuple = (),
    tags: list[RunTag] | tuple = (),
) -> None:
    _get_client().log_batch(_run_id_or_start(), metrics=metrics, params=params, tags=tags)


@checked
def log_input(
    dataset: Any = None,
    context: str | None = None,
    tags: dict[str, str] | None = None,
    model: Any = None,
    *,
    name: str | None = None,
) -> dict[str, str]:
    """Record a dataset the active run uses as a run input (``get_run(...).inputs``).

    MLflow's form, ``log_input(dataset, context="training", tags={...})``, takes a dataset
    object (:class:`sparktrack.entities.Dataset`, or MLflow's) and records it as it is;
    ``context`` becomes the input tag ``mlflow.data.context``. It returns ``{}``.

    sparktrack's form takes a Spark DataFrame and describes it with
    :func:`sparktrack.repro.describe_input` (one Spark job): the input is a dataset named
    ``name`` (default ``training``) whose digest is the content fingerprint, source where the
    rows came from, MLflow's schema, and a profile with the row count and fingerprints. The
    description is also set as the run's ``input.<name>.*`` tags (``input.<name>.context``
    too, when given), which are returned.

    Raises:
        InvalidInputError: ``context`` or ``tags`` without a dataset, a ``model`` (sparktrack
            has no logged models), or a bad ``name``.
    """
    from sparktrack.entities import DatasetInput, InputTag
    from sparktrack._store.inputs import CONTEXT_TAG, as_dataset

    if model is not None:
        raise InvalidInputError(
            "log_input(model=...) records a logged model, which sparktrack does not have; "
            "pass a dataset."
        )
    if dataset is None and (context is not None or tags):
        raise InvalidInputError("log_input needs a dataset when context or tags are given.")
    if dataset is None:
        _run_id_or_start()  # as MLflow: a run is started even with nothing to log
        return {}
    described: dict[str, str] = {}
    if hasattr(dataset, "inputFiles") and hasattr(dataset, "sparkSession"):  # a DataFrame
        from sparktrack._autolog.inputs import describe_dataset

        input_name = name or "training"
        entity, described = describe_dataset(dataset, name=input_name, input_name=input_name)
        if context is not None:
            described[f"input.{input_name}.context"] = str(context)
    else:
        entity = as_dataset(dataset)
    input_tags = [InputTag(str(key), str(value)) for key, value in (tags or {}).items()]
    if context is not None:
        input_tags.append(InputTag(CONTEXT_TAG, str(context)))
    run_id = _run_id_or_start()  # after the checks and the description, which may fail
    client = _get_client()
    client.log_inputs(run_id, [DatasetInput(dataset=entity, tags=input_tags)])
    if described:
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in described.items()])
    return described


@checked
def get_metric_history(key: str, run_id: str | None = None) -> list[Metric]:
    return _get_client().get_metric_history(run_id or _run_id_or_start(), key)


@checked
def flush() -> None:
    """Wait for background model saves, then commit every buffered row now (otherwise rows are
    committed within the flush interval)."""
    _get_client().flush()


# -- artifacts --------------------------------------------------------------------------------
@checked
def log_artifact(
    local_path: str | os.PathLike, artifact_path: str | None = None, run_id: str | None = None
) -> None:
    _get_client().log_artifact(run_id or _run_id_or_start(), local_path, artifact_path)


@checked
def log_artifacts(
    local_dir: str | os.PathLike, artifact_path: str | None = None, run_id: str | None = None
) -> None:
    _get_client().log_artifacts(run_id or _run_id_or_start(), local_dir, artifact_path)


@checked
def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    _get_client().log_text(run_id or _run_id_or_start(), text, artifact_file)


@checked
def log_dict(dictionary: dict, artifact_file: str, run_id: str | None = None) -> None:
    _get_client().log_dict(run_id or _run_id_or_start(), dictionary, artifact_file)


@checked
def log_figure(figure: Any, artifact_file: str) -> None:
    _get_client().log_figure(_run_id_or_start(), figure, artifact_file)


@checked
def get_artifact_uri(artifact_path: str | None = None) -> str:
    """Where the active run's artifacts (or one of them) are, once its pending saves are done:
    a model saved by autologging can be loaded from it at once."""
    from sparktrack._artifact_repository import safe_relative_path

    run_id = _run_id_or_start()
    pending.wait_for_run(run_id)
    base = _get_client().get_run_info(run_id).artifact_uri
    relative = safe_relative_path(artifact_path)
    return f"{base}/{relative}" if relative else base


@checked
def list_artifacts(path: str | None = None, run_id: str | None = None) -> list[FileInfo]:
    return _get_client().list_artifacts(run_id or _run_id_or_start(), path)


@checked
def download_artifacts(
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | os.PathLike | None = None,
) -> str:
    return _get_client().download_artifacts(run_id or _run_id_or_start(), artifact_path, dst_path)


# -- interpreter exit --------------------------------------------------------------------------
def _end_open_runs_at_exit() -> None:
    """End every run a script left open, as MLflow does at exit, innermost first.

    The status is FINISHED, or FAILED (KILLED for Ctrl-C) when the script dies of an uncaught
    exception; MLflow writes FINISHED even then. A run whose status was already set (by a
    client, say) is left as it is.
    """
    status = _exit_status()
    for active in reversed(list(_open_runs.values())):
        try:
            if active._client.get_run_info(active._run_id).status == RunStatus.RUNNING:
                active._client.set_terminated(active._run_id, status, now_millis())
        except Exception:  # noqa: BLE001 - the other runs and the exit flush must go on
            logger.warning("sparktrack: could not end run %s at exit", active._run_id,
                           exc_info=True)
    _open_runs.clear()


def _exit_status() -> str:
    # The interpreter sets sys.last_value when the main script dies of an uncaught exception,
    # before the exit hooks run (not for sys.exit()). A REPL or notebook sets it for every
    # error it shows and goes on, so there it says nothing about how the session ended.
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if error is None or _interactive():
        return RunStatus.FINISHED
    return RunStatus.KILLED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED


def _interactive() -> bool:
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython is not None and get_ipython() is not None


# atexit runs hooks last-registered-first. This one is registered after the store's exit
# flush (sparktrack._store is imported above), so the runs' new status is in the buffer that
# flush commits; background model saves (sparktrack._pending registers its wait when a save
# starts, later still) end before the runs are marked ended.
atexit.register(_end_open_runs_at_exit)


# -- model registry (MLflow's module-level names; see TrackingClient's registry section) ---------
@checked
def register_model(
    model_uri: str, name: str, await_registration_for: int = 300, *,
    tags: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register the model at ``model_uri`` (e.g. ``runs:/<run_id>/model``) as the next
    version of ``name``, creating the registered model if missing."""
    return _get_client().register_model(model_uri, name, await_registration_for, tags=tags)


@checked
def search_registered_models(
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[RegisteredModel]:
    """Every registered model matching ``filter_string`` (all pages; at most
    ``max_results`` when given)."""
    return _all_pages(_get_client().search_registered_models, max_results, filter_string,
                      order_by, page_size=1000)


@checked
def search_model_versions(
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[ModelVersion]:
    """Every model version matching ``filter_string`` (all pages; at most ``max_results``
    when given)."""
    return _all_pages(_get_client().search_model_versions, max_results, filter_string,
                      order_by, page_size=200_000)


def _all_pages(search, max_results, filter_string, order_by, *, page_size: int) -> list:
    found: list = []
    token = None
    while True:
        wanted = page_size if max_results is None else min(page_size, max_results - len(found))
        page = search(filter_string, wanted, order_by, token)
        found.extend(page)
        token = page.token
        if token is None or (max_results is not None and len(found) >= max_results):
            return found


@checked
def set_model_version_tag(
    name: str, version: str | None = None, key: str | None = None, value: Any = None
) -> None:
    """Set a tag on a model version."""
    _get_client().set_model_version_tag(name, version, key, value)

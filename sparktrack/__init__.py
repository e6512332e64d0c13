"""sparktrack: Spark-native ML experiment tracking whose every run lives in Delta Lake tables.

The module-level functions are MLflow's fluent API (``start_run``, ``log_metric``, ...);
:class:`TrackingClient` is the explicit-id API; ``sparktrack.exceptions.MlflowException`` and
``sparktrack.pyspark.ml.autolog`` are there under MLflow's names, so that a script can
``import sparktrack as mlflow``. Nothing here starts a JVM: Spark is imported only by
``sparktrack.spark``, ``sparktrack.repro`` and autologging.
"""

from sparktrack import artifacts  # noqa: F401  (mlflow.artifacts.load_dict and friends)
from sparktrack import exceptions  # noqa: F401 - `mlflow.exceptions` after `import mlflow`
from sparktrack._arrow_pool import use_preferred_pool
from sparktrack._autolog import autolog
from sparktrack.client import MlflowClient, TrackingClient
from sparktrack.entities import (
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
from sparktrack.errors import SparkTrackError
from sparktrack._fluent import (
    ActiveRun,
    active_run,
    compare_runs,
    create_experiment,
    delete_experiment,
    delete_run,
    delete_runs,
    delete_tag,
    download_artifacts,
    end_run,
    flush,
    get_artifact_uri,
    get_experiment,
    get_experiment_by_name,
    get_metric_history,
    get_run,
    get_tracking_uri,
    last_active_run,
    list_artifacts,
    log_artifact,
    log_artifacts,
    log_batch,
    log_dict,
    log_figure,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    register_model,
    rename_experiment,
    restore_experiment,
    restore_run,
    restore_runs,
    search_experiments,
    search_model_versions,
    search_registered_models,
    search_runs,
    set_experiment,
    set_experiment_tag,
    set_experiment_tags,
    set_model_version_tag,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)

__version__ = "0.1.0"

# Before any table is read: jemalloc, not mimalloc, as Arrow's allocator (see the module).
use_preferred_pool()

__all__ = [
    "ActiveRun",
    "Experiment",
    "FileInfo",
    "LifecycleStage",
    "Metric",
    "MlflowClient",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "SparkTrackError",
    "TrackingClient",
    "ViewType",
    "active_run",
    "autolog",
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


def __getattr__(name: str):
    # `sparktrack.pyspark.ml.autolog()` works after a bare `import sparktrack`, as
    # `mlflow.pyspark.ml.autolog()` does after `import mlflow`; the subpackage is imported on
    # first use, and does not import Spark itself. `sparktrack.spark` (`mlflow.spark.log_model`)
    # is imported on first use too: it imports pyspark, which logging a metric never needs.
    if name in ("pyspark", "spark"):
        import importlib

        return importlib.import_module(f"sparktrack.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

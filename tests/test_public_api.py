"""The package's public face is deliberate: adding or removing a name means editing this list."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import sparktrack
from sparktrack import errors
PUBLIC_NAMES = [
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


def test_all_is_sorted_and_exactly_the_intended_names():
    assert sparktrack.__all__ == sorted(sparktrack.__all__)
    assert sparktrack.__all__ == PUBLIC_NAMES


def test_every_public_name_exists_and_is_documented():
    for name in sparktrack.__all__:
        value = getattr(sparktrack, name)
        assert value.__module__.startswith("sparktrack."), name
        if inspect.isclass(value) or name in ("start_run", "set_experiment", "log_metric"):
            assert value.__doc__, name


def test_errors_module_exports_one_tree():
    assert errors.__all__ == sorted(errors.__all__)
    classes = {
        name for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert set(errors.__all__) == classes
    for name in errors.__all__:
        error = getattr(errors, name)
        # Errors share one base; warnings (category classes for warnings.warn) are Warnings.
        assert issubclass(error, errors.SparkTrackError) or issubclass(error, Warning), name
        assert error.__doc__, name
        assert name in errors.__doc__, f"{name} is missing from the tree in the docstring"


def test_fluent_functions_match_mlflow_signatures():
    """Positional order of the most used calls is MLflow's, so ported scripts keep working."""
    def positional(function):
        return [
            p.name for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]

    # MLflow 3.17's order (parent_run_id before tags; synchronous before timestamp); every
    # shared name is compared with MLflow itself in test_dropin_signatures.py.
    assert positional(sparktrack.start_run)[:7] == [
        "run_id", "experiment_id", "run_name", "nested", "parent_run_id", "tags", "description",
    ]
    assert positional(sparktrack.log_metric)[:5] == [
        "key", "value", "step", "synchronous", "timestamp",
    ]
    assert positional(sparktrack.log_metrics)[:5] == [
        "metrics", "step", "synchronous", "run_id", "timestamp",
    ]
    assert positional(sparktrack.set_experiment)[:2] == ["experiment_name", "experiment_id"]
    assert positional(sparktrack.create_experiment)[:3] == ["name", "artifact_location", "tags"]
    assert positional(sparktrack.log_artifact)[:2] == ["local_path", "artifact_path"]
    assert positional(sparktrack.log_text)[:2] == ["text", "artifact_file"]


@pytest.mark.slow
def test_tracking_starts_no_spark(store_uri):
    """Importing sparktrack and logging a run must not import pyspark (no JVM for a metric)."""
    code = (
        "import sys, sparktrack\n"
        f"sparktrack.set_tracking_uri({store_uri!r})\n"
        "with sparktrack.start_run():\n"
        "    sparktrack.log_metric('m', 1.0)\n"
        "sparktrack.flush()\n"
        "assert 'pyspark' not in sys.modules, sorted(m for m in sys.modules if 'spark' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_public_modules_are_the_ones_meant_to_be_public():
    # Everything else has a leading underscore: internal, free to change between releases.
    import pkgutil

    import sparktrack
    import sparktrack.spark

    public = {m.name for m in pkgutil.iter_modules(sparktrack.__path__)
              if not m.name.startswith("_")}
    assert public == {"artifacts", "cli", "client", "compare", "config", "entities", "errors",
                      "exceptions", "export", "maintenance", "mlflow_plugin", "pyspark", "repro",
                      "schemas", "spark"}
    import sparktrack.mlflow_plugin

    plugin_public = {m.name for m in pkgutil.iter_modules(sparktrack.mlflow_plugin.__path__)
                     if not m.name.startswith("_")}
    assert plugin_public == {"registry_store", "tracking_store", "uris"}
    spark_public = {m.name for m in pkgutil.iter_modules(sparktrack.spark.__path__)
                    if not m.name.startswith("_")}
    assert spark_public == {"dashboard"}
    assert sparktrack.MlflowClient is sparktrack.TrackingClient

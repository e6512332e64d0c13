"""Autologging for Spark MLlib: every ``fit()`` tracked, tuning as nested parent/child runs.

Importing this package does not import pyspark: :func:`autolog` imports what it patches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["autolog"]


def autolog(
    *,
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    log_traces: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    log_post_training_metrics: bool = True,
    registered_model_name: str | None = None,
    log_model_allowlist: Iterable[str] | None = None,
    extra_tags: Mapping[str, object] | None = None,
    exclude_flavors: Iterable[str] | None = None,
    log_models_in_background: bool = True,
    max_tuning_runs: int | None = None,
) -> None:
    """Track every Spark MLlib ``Estimator.fit()`` from now on (MLflow's pyspark.ml autolog).

    It takes every option of MLflow 3.17's ``mlflow.autolog`` and
    ``mlflow.pyspark.ml.autolog`` (keyword-only), plus sparktrack's own
    ``log_models_in_background`` and ``max_tuning_runs``.

    A ``fit()`` outside any run gets its own run, ended before ``fit()`` returns (FAILED if
    it raised; the exception is unchanged). Inside an active run, the fit is logged into it
    and the run stays open; keys the run already holds with another value get a UUID suffix.
    ``CrossValidator`` and ``TrainValidationSplit`` add one child run per param map. Logging
    never changes what ``fit()`` returns: a failure to log is one
    :class:`~sparktrack.errors.AutologgingWarning`.

    Args:
        log_input_examples: store the first 5 rows of the training data's feature columns
            with the model (``input_example.json``, as MLflow does); one small Spark job in
            the model save.
        log_model_signatures: store the model's signature (feature columns of the training
            data in, prediction out, MLflow's JSON format) in ``MLmodel``; schemas only.
        log_models: save the fitted model (for tuners, also the best model) under the run's
            artifacts in MLflow's model format (``mlflow.spark.load_model`` and
            ``sparktrack.spark.load_model`` load it), if its class is on the allowlist. A
            complete save sets the tag ``sparktrack.model.<artifact path>`` to the model's
            class.
        log_datasets: record the training DataFrame as a run input (``get_run(...).inputs``)
            with context ``train``: digest, source, MLflow schema and a profile with the row
            count and fingerprints (one Spark job, run on a thread beside training).
        log_traces: MLflow's GenAI tracing; Spark MLlib has no traces, so it changes nothing.
        disable: remove the patches and stop autologging, once the model saves it started
            in the background have ended.
        exclusive: do not log into runs the user started; only fits outside runs are logged.
        disable_for_unsupported_versions: leave autologging off when the installed pyspark
            is not a version sparktrack was tested with (4.0.x to 4.3.x).
        silent: emit no warnings or log messages from autologging.
        log_post_training_metrics: log ``evaluator.evaluate(model.transform(df))`` results
            on the model's run as ``<metricName>_<df variable name>``, and which evaluator
            produced each one in the artifact ``metric_info.json``.
        registered_model_name: register the saved ``model/`` under this name in the model
            registry (``register_model("runs:/<run_id>/model", name)``) once it is saved.
        log_model_allowlist: fully qualified model class names that may be saved (a
            trailing ``*`` matches a prefix); None for MLflow's default list.
        extra_tags: tags added to every run autologging creates (``mlflow.autologging`` is
            reserved and left out, as in MLflow).
        exclude_flavors: MLflow flavors ``mlflow.autolog`` leaves alone; with
            ``"pyspark.ml"`` in it, this call changes nothing.
        log_models_in_background: save the model on a background thread, so ``fit()``
            returns without waiting for Spark's writer (the run is still ended before
            ``fit()`` returns). Reading the run's artifacts through sparktrack
            (``list_artifacts``, ``download_artifacts``, ``get_artifact_uri``) waits for its
            save; ``sparktrack.flush()``, ``SparkSession.stop()``, ``autolog(disable=True)``
            and interpreter exit wait for all saves. A failed save is one warning on the
            ``sparktrack.autolog`` logger. False saves inline, before ``fit()`` returns.
        max_tuning_runs: how many child runs a tuner gets (the best maps); None for all.

    Raises:
        InvalidInputError: an option has a value of the wrong kind (before anything changes).
    """
    from sparktrack import _pending as pending
    from sparktrack._autolog import config, hooks

    if config.excludes_pyspark_ml(exclude_flavors):
        return
    turned_off = disable or (
        disable_for_unsupported_versions and not config.pyspark_is_supported(silent=silent)
    )
    if turned_off:
        config.set_current(None)
        pending.wait_all()  # the restored SparkSession.stop would no longer wait for them
        hooks.uninstall()
        return
    checked = config.make_config(
        log_models=log_models,
        log_models_in_background=log_models_in_background,
        log_datasets=log_datasets,
        log_post_training_metrics=log_post_training_metrics,
        max_tuning_runs=max_tuning_runs,
        log_model_allowlist=log_model_allowlist,
        extra_tags=extra_tags,
        silent=silent,
        exclusive=exclusive,
        log_input_examples=log_input_examples,
        log_model_signatures=log_model_signatures,
        registered_model_name=registered_model_name,
    )
    hooks.install()
    config.set_current(checked)

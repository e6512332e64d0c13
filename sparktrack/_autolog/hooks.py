"""The wrappers installed on ``Estimator.fit``, ``Model.transform``, ``Evaluator.evaluate``
and ``SparkSession.stop`` (classic and Connect: it first waits for background model saves,
which need the session).

Each wrapper reads the options in force at call time, so calling ``autolog()`` again only
changes the options. Whatever the wrappers do besides calling the original is guarded: it
can cost a warning, never the call's result or exception.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from sparktrack import _pending as pending
from sparktrack._autolog import config as options
from sparktrack._autolog import naming, post_training, sessions
from sparktrack._autolog.fit import fit_arguments, run_fit, run_unlogged
from sparktrack._autolog.patching import is_patched, patch, unpatch_all
from sparktrack._autolog.recording import Problems, logger

__all__ = ["install", "uninstall", "wrap_stop"]

TRIAL_ATTRIBUTE = "_sparktrack_trial"
_local = threading.local()


def install() -> None:
    """Patch pyspark.ml (idempotent)."""
    from pyspark.ml.base import Estimator, Model
    from pyspark.ml.evaluation import Evaluator

    from pyspark.sql.session import SparkSession

    patch(Estimator, "fit", _wrap_fit)
    patch(Model, "transform", _wrap_transform)
    patch(Evaluator, "evaluate", _wrap_evaluate)
    patch(SparkSession, "stop", wrap_stop)
    _patch_connect_stop()


def _patch_connect_stop() -> None:
    # Importing Spark Connect costs a second: patch it once the user's code has loaded it
    # (a Connect session exists before its first fit, which calls this again).
    connect = sys.modules.get("pyspark.sql.connect.session")
    if connect is not None and not is_patched(connect.SparkSession, "stop"):
        patch(connect.SparkSession, "stop", wrap_stop)


def wrap_stop(original):
    """``SparkSession.stop`` that first waits for the model saves still running."""

    def stop(self, *args, **kwargs):
        pending.wait_all()
        return original(self, *args, **kwargs)

    return stop


def uninstall() -> None:
    unpatch_all()


def _skip_reason(estimator: Any, params: Any, config: options.AutologConfig) -> str | None:
    if type(estimator).__module__.startswith("pyspark.ml.feature"):
        return "feature estimators fitted alone are not logged"
    if isinstance(params, (list, tuple)):
        return "fit() with a list of param maps is not logged; fit each map separately"
    if config.exclusive and _run_is_active():
        return "exclusive=True and a run is active"
    return None


def _run_is_active() -> bool:
    from sparktrack import _fluent as fluent
    return fluent.active_run() is not None


def _wrap_fit(original):
    def fit(self, *args, **kwargs):
        config = options.current()
        if config is None:
            return original(self, *args, **kwargs)
        _patch_connect_stop()
        owner = sessions.find_owner(self)
        if owner is not None:
            return _nested_fit(original, owner, self, args, kwargs)
        try:
            reason = _skip_reason(self, fit_arguments(args, kwargs)[1], config)
        except Exception:  # noqa: BLE001
            reason = "the call could not be inspected"
        if reason is not None:
            logger.info("sparktrack autolog: %s (%s)", reason, type(self).__name__)
            return run_unlogged(original, self, args, kwargs)
        return run_fit(original, self, args, kwargs, config)

    return fit


def _nested_fit(original, owner: sessions.FitSession, self, args, kwargs):
    model = original(self, *args, **kwargs)
    if owner.trials is not None:
        try:
            dataset, params = fit_arguments(args, kwargs)
            trial = owner.trials.trial_of_fit(self, dataset, params)
            if trial is not None:
                setattr(model, TRIAL_ATTRIBUTE, (owner.key, trial))
        except Exception:  # noqa: BLE001 - per-fold metrics are best effort
            logger.debug("sparktrack autolog: could not follow a tuning trial", exc_info=True)
    return model


def _wrap_transform(original):
    def transform(self, *args, **kwargs):
        config = options.current()
        depth = getattr(_local, "transform_depth", 0)
        if config is None or depth:
            return original(self, *args, **kwargs)
        _local.transform_depth = depth + 1
        try:
            result = original(self, *args, **kwargs)
        finally:
            _local.transform_depth = depth
        try:
            _after_transform(self, args, kwargs, result, config, sys._getframe(1))
        except Exception:  # noqa: BLE001
            logger.debug("sparktrack autolog: could not follow a transform", exc_info=True)
        return result

    return transform


def _after_transform(model, args, kwargs, result, config, frame) -> None:
    trial = getattr(model, TRIAL_ATTRIBUTE, None)
    if trial is not None:
        key, fold_and_map = trial
        for session in sessions.active_sessions():
            if session.key == key and session.trials is not None:
                session.trials.note_predictions(result, fold_and_map)
        return
    if config.log_post_training_metrics and sessions.in_session() is None:
        dataset = args[0] if args else kwargs.get("dataset")
        post_training.note_transform(model, dataset, result, frame)


def _wrap_evaluate(original):
    def evaluate(self, *args, **kwargs):
        config = options.current()
        if config is None:
            return original(self, *args, **kwargs)
        value = original(self, *args, **kwargs)
        try:
            _after_evaluate(self, args, kwargs, value, config)
        except Exception:  # noqa: BLE001
            logger.debug("sparktrack autolog: could not follow an evaluation", exc_info=True)
        return value

    return evaluate


def _after_evaluate(evaluator, args, kwargs, value, config) -> None:
    dataset = args[0] if args else kwargs.get("dataset")
    for session in sessions.active_sessions():
        if session.trials is not None and session.trials.note_metric(dataset, value):
            return
    if not config.log_post_training_metrics or sessions.in_session() is not None:
        return
    source = post_training.predictions_source(dataset)
    if source is None or not post_training.is_loggable(value):
        return
    run_id, dataset_name = source
    problems = Problems(silent=config.silent)
    logged = None
    with problems.guard("logging a post-training metric"):
        params = args[1] if len(args) > 1 else kwargs.get("params")
        used = evaluator.copy(params) if params else evaluator
        key = post_training.metric_key(run_id, naming.metric_name(used), dataset_name)
        from sparktrack import _fluent as fluent
        from sparktrack.client import TrackingClient

        client = TrackingClient(fluent.get_tracking_uri())
        client.log_metric(run_id, key, float(value))
        logged = (client, key, used)
    if logged is not None:
        client, key, used = logged
        with problems.guard("logging metric_info.json"):
            content = post_training.record_metric_info(
                run_id, key, post_training.evaluator_info(used)
            )
            client.log_dict(run_id, content, post_training.METRIC_INFO_FILE)
    problems.report(what=f"{type(evaluator).__name__}.evaluate()", stacklevel=3)

"""One autologged top-level ``fit()``: the run, what is logged before and after training.

The order is: resolve the run (the active one, else a new one), log the estimator's params and
tags, start describing the training data on a thread (its Spark job runs beside training),
train inside a :class:`~sparktrack._autolog.sessions.FitSession` (so nested fits are not logged
as runs), hand the model save to :mod:`sparktrack._pending` (or save it inline), log the
tuning results and the training data (a run input with context ``train``), and end the run
we created. As in MLflow, only runs autologging creates get the tag ``mlflow.autologging``;
a run the user started gets no tag that MLflow would not set there. Every logging step
is guarded: a failure is one warning at the end, and the user's ``fit()`` returns (or raises)
exactly what it would have without autologging. A background save that fails later is one
warning on the ``sparktrack.autolog`` logger.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparktrack import _fluent as fluent, _pending as pending
from sparktrack._autolog import models, naming, post_training, sessions, tuning
from sparktrack._autolog.config import AUTOLOGGING_TAG, INTEGRATION, AutologConfig
from sparktrack._autolog.conflicts import ConflictResolver
from sparktrack._autolog.inputs import training_input
from sparktrack._autolog.recording import Problems, limit_params, logger
from sparktrack.client import TrackingClient
from sparktrack.entities import Metric, Param, RunInfo, RunStatus, RunTag

__all__ = ["fit_arguments", "run_fit", "run_unlogged"]

# How far up the stack the user's fit() call is, seen from Problems.report in run_fit.
_STACKLEVEL = 3


def fit_arguments(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """(dataset, params) of a ``fit(dataset, params=None)`` call."""
    dataset = args[0] if args else kwargs.get("dataset")
    params = args[1] if len(args) > 1 else kwargs.get("params")
    return dataset, params


def run_unlogged(original: Any, estimator: Any, args: tuple, kwargs: dict) -> Any:
    """Train without logging, but keep the fits it makes from being logged as runs."""
    try:
        uids = frozenset(node.uid for node in naming.walk(estimator))
    except Exception:  # noqa: BLE001
        uids = frozenset()
    with sessions.open_session(sessions.FitSession(estimator, uids)):
        return original(estimator, *args, **kwargs)


@dataclass
class _Target:
    client: TrackingClient
    info: RunInfo
    created: bool
    resolver: ConflictResolver


def _open_run(config: AutologConfig, what: str) -> _Target:
    client = TrackingClient(fluent.get_tracking_uri())
    active = fluent.active_run()
    if active is None:
        tags = {**config.extra_tags, AUTOLOGGING_TAG: INTEGRATION}
        run = fluent.start_run(tags=tags)
        info = client.get_run_info(run.info.run_id)
        return _Target(client, info, True, ConflictResolver(what=what))
    info = active.info
    held = client.get_run(info.run_id).data
    artifacts = [entry.path for entry in client.list_artifacts(info.run_id)]
    resolver = ConflictResolver(
        params=held.params, tags=held.tags, metrics=held.metrics, artifacts=artifacts, what=what
    )
    return _Target(client, info, False, resolver)


def _log(target: _Target, problems: Problems, *, params=None, tags=None, metrics=None) -> None:
    resolver = target.resolver
    settings = target.client.settings
    limited = resolver.params(limit_params(params or {}, settings, problems))
    cut = settings.max_tag_value_length
    named_tags = resolver.tags({k: str(v)[:cut] for k, v in (tags or {}).items()})
    stamp = int(time.time() * 1000)
    points = [Metric(resolver.metric(k), float(v), stamp, 0) for k, v in (metrics or {}).items()]
    named_tags.update(resolver.record())
    target.client.log_batch(
        target.info.run_id,
        params=[Param(k, v) for k, v in limited.items()],
        tags=[RunTag(k, v) for k, v in named_tags.items()],
        metrics=points,
    )


def _estimator_info(estimator: Any, names: dict[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if naming.has_hierarchy(estimator):
        info["hierarchy"] = naming.hierarchy(estimator, names)
    for node in naming.walk(estimator):
        if naming.is_tuner(node):
            info[names[node.uid]] = {
                "tuning_parameter_map_list": naming.tuning_param_maps(node, names),
                "tuned_estimator_parameter_map": naming.flatten_params(
                    node.getEstimator(), names, top=False
                ),
            }
    return info


def run_fit(original: Any, self: Any, args: tuple, kwargs: dict, config: AutologConfig) -> Any:
    """Train ``self`` with ``original`` and log it; see the module docstring."""
    dataset, params = fit_arguments(args, kwargs)
    what = f"{type(self).__name__}.fit()"
    problems = Problems(silent=config.silent)
    estimator, names, recorder, uids = self, None, None, frozenset()
    with problems.guard("reading the estimator"):
        estimator = self.copy(params) if isinstance(params, dict) and params else self
        names = naming.indexed_names(estimator)
        uids = frozenset(names)
        if naming.is_tuner(estimator):
            recorder = tuning.TrialRecorder(estimator, dataset)
    target = None
    if names is not None:
        with problems.guard("starting the run"):
            target = _open_run(config, what)
    if target is not None:
        with problems.guard("logging the estimator's params"):
            info = _estimator_info(estimator, names)
            if info:
                name = target.resolver.artifact("estimator_info.json")
                target.client.log_dict(target.info.run_id, info, name)
            _log(
                target,
                problems,
                params=naming.flatten_params(estimator, names),
                tags=naming.estimator_tags(estimator),
            )
    described = None
    if target is not None and config.log_datasets and dataset is not None:
        with problems.guard("describing the training data"):
            described = _describe_in_background(dataset)

    session = sessions.FitSession(estimator, uids, recorder)
    with sessions.open_session(session):
        try:
            model = original(self, *args, **kwargs)
        except BaseException as exc:
            if described is not None and isinstance(exc, Exception):
                _log_described(target, problems, described)
            if target is not None and target.created:
                status = RunStatus.FAILED if isinstance(exc, Exception) else RunStatus.KILLED
                with problems.guard("ending the run"):
                    fluent.end_run(status=status)
            try:
                problems.report(what=what, stacklevel=_STACKLEVEL)
            except Exception:  # noqa: BLE001 - warnings turned into errors must not mask exc
                pass
            raise

    if target is not None:
        _after_training(target, config, problems, estimator, names, recorder, model, dataset)
        if described is not None:
            _log_described(target, problems, described)
        if target.created:
            with problems.guard("ending the run"):
                fluent.end_run(status=RunStatus.FINISHED)
    problems.report(what=what, stacklevel=_STACKLEVEL)
    return model


def _describe_in_background(dataset: Any) -> Future:
    """Run ``describe_input``'s Spark job on a thread; Spark runs it beside the training jobs."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(training_input(dataset))
        except BaseException as exc:  # noqa: BLE001 - handed to the fit's thread
            future.set_exception(exc)

    target = _with_spark_session(work, dataset)
    threading.Thread(target=target, name="sparktrack-describe-input", daemon=True).start()
    return future


def _with_spark_session(work: Callable[[], None], dataset: Any) -> Callable[[], None]:
    """``work`` made to run on another thread with this thread's Spark session, job properties
    and tags (Spark Connect keeps the active session per thread, and its writers need one)."""
    session = getattr(dataset, "sparkSession", None)
    if session is None:
        return work
    from pyspark import inheritable_thread_target

    inherited = inheritable_thread_target(session)(work)

    def run() -> None:
        _activate_connect_session(session)
        inherited()

    return run


def _activate_connect_session(session: Any) -> None:
    """Make a Spark Connect ``session`` this thread's active one if nothing did.

    pyspark >= 4.1's ``inheritable_thread_target`` does it; 4.0's copies the client's thread
    state only, and its Connect model writer then finds no active session.
    """
    kind = type(session)
    activate = getattr(kind, "_set_default_and_active_session", None)
    if not kind.__module__.startswith("pyspark.sql.connect") or activate is None:
        return
    if kind.getActiveSession() is None:
        activate(session)


def _log_described(target: _Target, problems: Problems, described: Future) -> None:
    with problems.guard("describing the training data"):
        target.client.log_inputs(target.info.run_id, [described.result()])


def _after_training(target, config, problems, estimator, names, recorder, model, dataset):
    run_id = target.info.run_id
    if config.log_models:
        # First, so that a background save overlaps with the rest of the logging.
        with problems.guard("saving the model"):
            _log_model(target, config, problems, model, dataset)
    if naming.is_tuner(estimator) and naming.is_tuner_model(model):
        result = None
        with problems.guard("reading the tuning results"):
            result = tuning.search_result(estimator, model, names)
        if result is not None:
            with problems.guard("logging the tuning results"):
                best = result.param_maps[result.best_index]
                target.client.log_text(
                    run_id, tuning.search_results_csv(result),
                    target.resolver.artifact("search_results.csv"),
                )
                target.client.log_dict(
                    run_id, best, target.resolver.artifact("best_parameters.json")
                )
                _log(
                    target,
                    problems,
                    params={f"best_{key}": value for key, value in best.items()},
                    metrics={
                        f"best_{key}": values[result.best_index]
                        for key, values in result.columns.items()
                    },
                )
            with problems.guard("logging the child runs"):
                settings = target.client.settings
                tuning.log_child_runs(
                    target.client,
                    parent=target.client.get_run_info(run_id),
                    tuner=estimator,
                    result=result,
                    names=names,
                    recorder=recorder,
                    max_runs=config.max_tuning_runs,
                    base_tags={**config.extra_tags, AUTOLOGGING_TAG: INTEGRATION},
                    limit=lambda flat: limit_params(flat, settings, problems),
                )
    if config.log_post_training_metrics:
        with problems.guard("preparing post-training metrics"):
            post_training.mark_model(model, run_id)


def _log_model(
    target: _Target, config: AutologConfig, problems: Problems, model: Any, dataset: Any
) -> None:
    allowlist = config.log_model_allowlist
    if allowlist is None:
        allowlist = models.DEFAULT_ALLOWLIST
    if not models.is_allowed(model, allowlist):
        logger.warning(
            "Model %s (%s) is not saved: it or a model inside it is not on the allowlist. "
            "Pass log_model_allowlist=[...] to sparktrack.autolog to save it.",
            getattr(model, "uid", "?"),
            naming.class_path(model),
        )
        return
    save = models.ModelSave(
        client=target.client,
        run_id=target.info.run_id,
        model=model,
        artifact_path=target.resolver.artifact("model"),
        best_path=target.resolver.artifact("best_model") if naming.is_tuner_model(model) else None,
        training=dataset,
        log_signature=config.log_model_signatures,
        log_input_example=config.log_input_examples,
        registered_model_name=config.registered_model_name,
    )
    if target.resolver.suffix:
        _log(target, problems)  # records the renamed artifact names
    if not config.log_models_in_background:
        save()
        return
    silent = config.silent

    def save_or_warn() -> None:
        try:
            save()
        except Exception as exc:  # noqa: BLE001 - fit() has returned: log, never raise
            logger.debug("sparktrack autologging: background model save failed", exc_info=True)
            if not silent:
                logger.warning(
                    "sparktrack autologging could not save the model of run %s to %s/ in the "
                    "background: %s: %s. The model was trained and returned as usual and the "
                    "run keeps everything else it logged; save the model yourself with "
                    "model.write().save(path).",
                    save.run_id, save.artifact_path, type(exc).__name__, _brief(exc),
                )

    work = _with_spark_session(save_or_warn, dataset)
    pending.start(save.run_id, f"model save to {save.artifact_path}/", work)


def _brief(exc: BaseException) -> str:
    """An exception's message without a Java stack trace (Py4J puts it in the message)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith("at ")]
    return " ".join(kept[:3])[:1000]

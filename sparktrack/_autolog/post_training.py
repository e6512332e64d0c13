"""Metrics of ``evaluator.evaluate(model.transform(df))`` after ``fit()``, on the model's run.

``fit()`` marks the model it returns with its run. ``model.transform(df)`` then remembers
which run and which dataset variable (``df``'s name in the caller's frame) the predictions
came from; ``evaluate(predictions)`` logs ``<metricName>_<dataset>`` on that run. A second
evaluation of the same metric in the run is ``<metricName>-2_<dataset>``; another object under
an already used variable name is ``<dataset>-2``; no variable name gives ``unknown_dataset``.

As MLflow does, the run's artifact ``metric_info.json`` maps each such metric key to the
evaluator that produced it (``{"evaluator_class": ..., "params": {...}}``), keys sorted; it is
rewritten after each evaluation and covers the evaluations this process logged to the run.
"""

from __future__ import annotations

import numbers
import threading
import weakref
from collections import defaultdict
from typing import Any

__all__ = [
    "METRIC_INFO_FILE",
    "RUN_ATTRIBUTE",
    "UNKNOWN_DATASET",
    "dataset_variable_name",
    "evaluator_info",
    "is_loggable",
    "mark_model",
    "metric_key",
    "note_transform",
    "predictions_source",
    "record_metric_info",
    "run_of",
]

RUN_ATTRIBUTE = "_sparktrack_run_id"
UNKNOWN_DATASET = "unknown_dataset"
METRIC_INFO_FILE = "metric_info.json"
# MLflow cuts evaluator param names and values in metric_info.json to these lengths.
_MAX_KEY_LENGTH = 250
_MAX_VALUE_LENGTH = 6000

_lock = threading.Lock()
# id(predictions) -> (run_id, dataset name); entries go when the predictions are collected
_predictions: dict[int, tuple[str, str]] = {}
# run_id -> variable name -> the datasets seen under it (weak references, else ids)
_datasets: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
# run_id -> metric name -> number of evaluations logged
_evaluations: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
# run_id -> metric key -> the evaluator that produced it (metric_info.json)
_metric_info: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)


def mark_model(model: Any, run_id: str) -> None:
    """Tie a fitted model (and a tuner's best model) to the run its metrics go to."""
    setattr(model, RUN_ATTRIBUTE, run_id)
    best = getattr(model, "bestModel", None)
    if best is not None:
        setattr(best, RUN_ATTRIBUTE, run_id)


def run_of(model: Any) -> str | None:
    return getattr(model, RUN_ATTRIBUTE, None)


def dataset_variable_name(dataset: Any, frame: Any) -> str:
    """The name ``dataset`` has in the outermost caller frame that did not receive it as an
    argument (so a helper's parameter name does not hide the caller's variable)."""
    try:
        while frame is not None:
            code = frame.f_code
            nargs = code.co_argcount + code.co_kwonlyargcount
            nargs += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
            arguments = [frame.f_locals.get(name) for name in code.co_varnames[:nargs]]
            flattened = []
            for value in arguments:
                flattened.append(value)
                if isinstance(value, tuple):
                    flattened.extend(value)
                elif isinstance(value, dict):
                    flattened.extend(value.values())
            if any(value is dataset for value in flattened):
                frame = frame.f_back
                continue
            for name, value in frame.f_locals.items():
                if value is dataset:
                    return name
            return UNKNOWN_DATASET
    except Exception:  # noqa: BLE001 - naming is best effort
        return UNKNOWN_DATASET
    return UNKNOWN_DATASET


def _dataset_name(run_id: str, dataset: Any, variable: str) -> str:
    seen = _datasets[run_id][variable]
    for index, entry in enumerate(seen):
        target = entry() if isinstance(entry, weakref.ref) else entry
        if target is dataset or (isinstance(target, int) and target == id(dataset)):
            break
    else:
        try:
            seen.append(weakref.ref(dataset))
        except TypeError:
            seen.append(id(dataset))
        index = len(seen) - 1
    return variable if index == 0 else f"{variable}-{index + 1}"


def note_transform(model: Any, dataset: Any, predictions: Any, frame: Any) -> None:
    """Remember that ``predictions`` came from ``dataset`` through a logged model."""
    run_id = run_of(model)
    if run_id is None or predictions is None:
        return
    variable = dataset_variable_name(dataset, frame)
    with _lock:
        name = _dataset_name(run_id, dataset, variable)
        key = id(predictions)
        _predictions[key] = (run_id, name)
    try:
        weakref.finalize(predictions, _forget, key)
    except TypeError:
        pass


def _forget(key: int) -> None:
    with _lock:
        _predictions.pop(key, None)


def predictions_source(predictions: Any) -> tuple[str, str] | None:
    """(run_id, dataset name) of predictions made by a logged model, else None."""
    with _lock:
        return _predictions.get(id(predictions))


def metric_key(run_id: str, metric: str, dataset_name: str) -> str:
    """The key of the next evaluation of ``metric`` in the run: ``<metric>[-n]_<dataset>``."""
    with _lock:
        count = _evaluations[run_id][metric] = _evaluations[run_id][metric] + 1
    return f"{metric}_{dataset_name}" if count == 1 else f"{metric}-{count}_{dataset_name}"


def is_loggable(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)



def evaluator_info(evaluator: Any) -> dict[str, Any]:
    """What metric_info.json says of an evaluator: its class and its defined params."""
    cls = type(evaluator)
    params = {
        param.name: evaluator.getOrDefault(param)
        for param in evaluator.params
        if evaluator.isDefined(param)
    }
    return {"evaluator_class": f"{cls.__module__}.{cls.__name__}", "params": _truncated(params)}


def _truncated(params: dict[str, Any]) -> dict[str, Any]:
    def cut(value: Any, limit: int) -> Any:
        text = str(value)
        return text[: limit - 3] + "..." if len(text) > limit else value

    return {
        cut(key, _MAX_KEY_LENGTH): cut(value, _MAX_VALUE_LENGTH) for key, value in params.items()
    }


def record_metric_info(run_id: str, key: str, info: dict[str, Any]) -> dict[str, Any]:
    """Note which evaluator produced metric ``key``; returns the run's metric_info.json."""
    with _lock:
        entries = _metric_info[run_id]
        entries[key] = info
        return dict(sorted(entries.items()))

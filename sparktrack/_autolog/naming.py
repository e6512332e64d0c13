"""Names of the objects in an estimator tree, and their params flattened under those names.

MLflow 3.17's rules, which users' searches and dashboards rely on:

- every object in the tree (pipeline stages, a OneVsRest classifier, a tuner's estimator and
  evaluator) is named by its class, or ``Class_<n>`` (n from 1, depth-first pre-order) when
  the class occurs more than once;
- the top-level object's params are unprefixed, nested objects' params are ``<Name>.<param>``;
- a Pipeline's ``stages`` param is the list of stage names, an object-valued param is the
  object's name (its params follow under that name);
- a tuner logs its estimator by name only and leaves out ``estimatorParamMaps``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "class_path",
    "estimator_tags",
    "flatten_params",
    "has_hierarchy",
    "hierarchy",
    "indexed_names",
    "is_tuner",
    "is_tuner_model",
    "metric_name",
    "param_map",
    "tuning_param_maps",
    "walk",
]

NameMap = dict[str, str]  # uid -> indexed name


def class_path(obj: object) -> str:
    """The fully qualified class name, e.g. ``pyspark.ml.classification.LogisticRegression``."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_tuner(obj: object) -> bool:
    from pyspark.ml.tuning import CrossValidator, TrainValidationSplit

    return isinstance(obj, (CrossValidator, TrainValidationSplit))


def is_tuner_model(obj: object) -> bool:
    from pyspark.ml.tuning import CrossValidatorModel, TrainValidationSplitModel

    return isinstance(obj, (CrossValidatorModel, TrainValidationSplitModel))


def param_map(instance: Any, extra: Mapping[Any, Any] | None = None) -> dict[str, Any]:
    """The instance's defined params (set or defaulted), by param name.

    ``extra`` is a param map as given to ``copy(extra)``; its values for this instance win,
    so the result is that of ``instance.copy(extra)`` without copying (a JVM call per stage).
    """
    values = {}
    for param in instance.params:
        if extra and param in extra:
            values[param.name] = extra[param]
        elif instance.isDefined(param):
            values[param.name] = instance.getOrDefault(param)
    return values


def _object_params(instance: Any) -> dict[str, Any]:
    from pyspark.ml.param import Params

    return {name: value for name, value in param_map(instance).items() if isinstance(value, Params)}


def walk(stage: Any) -> Iterator[Any]:
    """The tree depth-first, pre-order: a Pipeline's stages, else its object-valued params."""
    from pyspark.ml import Pipeline

    yield stage
    if isinstance(stage, Pipeline):
        children = stage.getStages()
    else:
        children = list(_object_params(stage).values())
    for child in children:
        yield from walk(child)


def indexed_names(root: Any) -> NameMap:
    """uid -> ``Class`` or ``Class_<n>`` for every object of the tree."""
    order = [(node.uid, type(node).__name__) for node in walk(root)]
    totals = Counter(name for _, name in order)
    seen: Counter[str] = Counter()
    names: NameMap = {}
    for uid, name in order:
        seen[name] += 1
        names.setdefault(uid, f"{name}_{seen[name]}" if totals[name] > 1 else name)
    return names


def flatten_params(
    instance: Any, names: NameMap, *, top: bool = True, extra: Mapping[Any, Any] | None = None
) -> dict[str, Any]:
    """The instance's params and those of everything under it, under MLflow's names.

    ``extra`` (a param map of plain values) is applied to every object of the tree, as
    ``copy(extra)`` does for a Pipeline's stages and a OneVsRest's classifier.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.param import Params

    prefix = "" if top else names[instance.uid] + "."
    tuner = is_tuner(instance)
    flat: dict[str, Any] = {}
    for name, value in param_map(instance, extra).items():
        key = prefix + name
        if isinstance(instance, Pipeline) and name == "stages":
            flat[key] = [names[stage.uid] for stage in value]
            for stage in value:
                flat.update(flatten_params(stage, names, top=False, extra=extra))
        elif tuner and name == "estimator":
            flat[key] = names[value.uid]  # its params go to the child runs
        elif tuner and name == "estimatorParamMaps":
            continue  # in estimator_info.json and search_results.csv
        elif isinstance(value, Params):
            flat[key] = names[value.uid]
            flat.update(flatten_params(value, names, top=False, extra=extra))
        else:
            flat[key] = value
    return flat


def copied_params(estimator: Any, extra: Mapping[Any, Any], names: NameMap) -> dict[str, Any]:
    """``flatten_params(estimator.copy(extra), names)``, without the copy's JVM calls (about
    0.1 s per stage) when ``extra`` holds plain values; an object-valued entry (a tuned
    ``OneVsRest.classifier``) follows ``copy()``'s own rules, so it is really copied."""
    from pyspark.ml.param import Params

    if any(isinstance(value, Params) for value in extra.values()):
        return flatten_params(estimator.copy(extra), names)
    return flatten_params(estimator, names, extra=extra)


def hierarchy(stage: Any, names: NameMap) -> dict[str, Any]:
    """The tree as nested dicts of names (``estimator_info.json``'s ``hierarchy``)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import OneVsRest

    node: dict[str, Any] = {"name": names[stage.uid]}
    if isinstance(stage, Pipeline):
        node["stages"] = [hierarchy(child, names) for child in stage.getStages()]
    elif isinstance(stage, OneVsRest):
        node["classifier"] = hierarchy(stage.getClassifier(), names)
    elif is_tuner(stage):
        node["evaluator"] = hierarchy(stage.getEvaluator(), names)
        node["tuned_estimator"] = hierarchy(stage.getEstimator(), names)
    else:
        children = _object_params(stage)
        if children:
            node["params"] = {key: hierarchy(value, names) for key, value in children.items()}
    return node


def has_hierarchy(estimator: Any) -> bool:
    """Whether the estimator has anything nested (a hierarchy worth recording)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import OneVsRest

    return isinstance(estimator, (Pipeline, OneVsRest)) or is_tuner(estimator) or bool(
        _object_params(estimator)
    )


def tuning_param_maps(tuner: Any, names: NameMap) -> list[dict[str, Any]]:
    """The tuner's param maps as ``{"<Stage>.<param>": value}`` dicts, in grid order."""
    maps = []
    for grid_point in tuner.getEstimatorParamMaps():
        entry = {}
        for param, value in grid_point.items():
            owner = names.get(param.parent)
            if owner is None:
                raise ValueError(
                    f"The param map tunes {param.name!r} of {param.parent}, which is not part "
                    "of the tuned estimator."
                )
            entry[f"{owner}.{param.name}"] = value
        maps.append(entry)
    return maps


def estimator_tags(estimator: object) -> dict[str, str]:
    return {"estimator_name": type(estimator).__name__, "estimator_class": class_path(estimator)}


def metric_name(evaluator: Any) -> str:
    """The evaluator's metric name; a custom evaluator without ``metricName`` is named by class."""
    getter = getattr(evaluator, "getMetricName", None)
    if callable(getter):
        try:
            return str(getter())
        except Exception:  # noqa: BLE001 - a custom evaluator may declare but not set it
            pass
    return type(evaluator).__name__

"""CrossValidator / TrainValidationSplit: trials, child runs and the search artifacts.

The parent run gets ``best_<Stage>.<param>`` params, a ``best_<metric key>`` metric and the
artifacts ``best_parameters.json`` and ``search_results.csv``; each kept param map becomes a
child run with the flattened params of the estimator copied with that map, its average (and
for CrossValidator, standard deviation) metric, and its metric on each fold (``fold_<metric>``,
one step per fold, which the tuner computes but does not keep: :class:`TrialRecorder` catches
it on the way).
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from sparktrack import _tags
from sparktrack._autolog import naming
from sparktrack.entities import Metric, Param, RunTag

__all__ = ["SearchResult", "TrialRecorder", "log_child_runs", "search_result", "search_results_csv"]


class TrialRecorder:
    """Catches each (fold, param map) metric a tuner computes while it fits.

    The tuner fits ``estimator.fit(train_k, param_maps[j])`` and evaluates
    ``evaluator.evaluate(model.transform(validation_k, param_maps[j]))``. The param map is
    recognised by identity among the tuner's maps, the fold by the identity of its training
    DataFrame (folds run one after another); the model carries ``(fold, j)`` to its
    predictions, and the predictions to the evaluation.
    """

    def __init__(self, tuner: Any, input_df: Any) -> None:
        self._maps = list(tuner.getEstimatorParamMaps())  # held so ids stay unique
        self._index = {id(grid_point): j for j, grid_point in enumerate(self._maps)}
        self._tuned_uid = tuner.getEstimator().uid
        self._input = input_df
        self._lock = threading.Lock()
        self._folds: dict[int, int] = {}
        self._train_sets: list[Any] = []
        self._predictions: dict[int, tuple[Any, int, int]] = {}
        self.metrics: dict[tuple[int, int], float] = {}

    def trial_of_fit(self, estimator: Any, dataset: Any, params: Any) -> tuple[int, int] | None:
        if params is None or dataset is self._input or estimator.uid != self._tuned_uid:
            return None
        j = self._index.get(id(params))
        if j is None:
            return None
        with self._lock:
            fold = self._folds.get(id(dataset))
            if fold is None:
                fold = self._folds[id(dataset)] = len(self._folds)
                self._train_sets.append(dataset)
        return fold, j

    def note_predictions(self, predictions: Any, trial: tuple[int, int]) -> None:
        with self._lock:
            self._predictions[id(predictions)] = (predictions, *trial)

    def note_metric(self, predictions: Any, value: Any) -> bool:
        """Record an evaluation of predictions this recorder knows; False if unknown."""
        with self._lock:
            entry = self._predictions.pop(id(predictions), None)
            if entry is None or entry[0] is not predictions:
                return False
            try:
                self.metrics[(entry[1], entry[2])] = float(value)
            except (TypeError, ValueError):
                pass
            return True

    def fold_metrics(self, j: int) -> list[tuple[int, float]]:
        return sorted((fold, value) for (fold, index), value in self.metrics.items() if index == j)


@dataclass(frozen=True)
class SearchResult:
    """What a fitted tuner tells: metric name, per-map metric columns, best map."""

    metric_name: str
    columns: dict[str, list[float]]  # "avg_<m>", "std_<m>" or "<m>" -> one value per map
    ranking_key: str
    best_index: int
    larger_is_better: bool
    param_maps: list[dict[str, Any]]  # "<Stage>.<param>" -> value, grid order
    cross_validation: bool = False

    def ranked(self) -> list[int]:
        """Map indices from best to worst (ties keep grid order)."""
        values = self.columns[self.ranking_key]
        sign = -1.0 if self.larger_is_better else 1.0
        return sorted(range(len(values)), key=lambda j: (sign * values[j], j))


def search_result(tuner: Any, model: Any, names: dict[str, str]) -> SearchResult:
    from pyspark.ml.tuning import CrossValidatorModel

    evaluator = tuner.getEvaluator()
    metric = naming.metric_name(evaluator)
    if isinstance(model, CrossValidatorModel):
        columns = {f"avg_{metric}": [float(v) for v in model.avgMetrics]}
        std = getattr(model, "stdMetrics", None)
        if std:
            columns[f"std_{metric}"] = [float(v) for v in std]
        ranking_key = f"avg_{metric}"
    else:
        columns = {metric: [float(v) for v in model.validationMetrics]}
        ranking_key = metric
    larger = bool(evaluator.isLargerBetter())
    values = columns[ranking_key]
    best = 0
    for j, value in enumerate(values):  # the first of ties wins, as numpy.argmax/argmin
        if (value > values[best]) if larger else (value < values[best]):
            best = j
    return SearchResult(
        metric_name=metric,
        columns=columns,
        ranking_key=ranking_key,
        best_index=best,
        larger_is_better=larger,
        param_maps=naming.tuning_param_maps(tuner, names),
        cross_validation=isinstance(model, CrossValidatorModel),
    )


def search_results_csv(result: SearchResult) -> str:
    """One row per param map in grid order: the map as JSON, the metrics, ``param.<key>``."""
    import pandas as pd

    table: dict[str, list[Any]] = {
        "params": [json.dumps(m, default=str) for m in result.param_maps]
    }
    table.update(result.columns)
    keys: list[str] = []
    for grid_point in result.param_maps:
        keys.extend(k for k in grid_point if k not in keys)
    for key in keys:
        table[f"param.{key}"] = [grid_point.get(key) for grid_point in result.param_maps]
    out = io.StringIO()
    pd.DataFrame(table).to_csv(out, index=False)
    return out.getvalue()


def log_child_runs(
    client: Any,
    *,
    parent: Any,
    tuner: Any,
    result: SearchResult,
    names: dict[str, str],
    recorder: TrialRecorder | None,
    max_runs: int | None,
    base_tags: dict[str, str],
    limit: Any,
) -> list[str]:
    """Create one finished child run per kept param map; returns their run ids in grid order.

    ``limit`` turns a param dict into store-safe strings (truncating over-long values).
    """
    keep = result.ranked()
    if max_runs is not None:
        keep = keep[:max_runs]
    tuned = tuner.getEstimator()
    grid = tuner.getEstimatorParamMaps()
    end_time = int(time.time() * 1000)
    child_ids = []
    for j in sorted(keep):
        tags = {
            **base_tags,
            **naming.estimator_tags(tuned),
            _tags.AUTOLOG_PARAM_MAP_INDEX: str(j),
        }
        run = client.create_run(
            parent.experiment_id,
            run_name=f"{parent.run_name}-{j + 1}",
            tags=tags,
            parent_run_id=parent.run_id,
            start_time=parent.start_time,
        )
        run_id = run.info.run_id
        params = limit(naming.copied_params(tuned, grid[j], names))
        metrics = [
            Metric(key, values[j], end_time, 0) for key, values in result.columns.items()
        ]
        if recorder is not None and result.cross_validation:
            metrics += [
                Metric(f"fold_{result.metric_name}", value, end_time, fold)
                for fold, value in recorder.fold_metrics(j)
            ]
        client.log_batch(
            run_id,
            params=[Param(k, v) for k, v in params.items()],
            metrics=metrics,
            tags=[RunTag(_tags.NOTE, _describe(result.param_maps[j]))],
        )
        client.set_terminated(run_id, status="FINISHED", end_time=end_time)
        child_ids.append(run_id)
    return child_ids


def _describe(grid_point: dict[str, Any]) -> str:
    return "Param map: " + ", ".join(f"{k}={v}" for k, v in grid_point.items())

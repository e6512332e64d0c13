"""Autologging on a Spark standalone cluster: an autologged CrossValidator trains on the
executor (its own JVM and Python workers) while the driver logs; the store ends up as the
local session's does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spark_cluster import spark_cluster  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    label = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=n) > 0).astype(float)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": label})


# Module level: the cluster driver imports it by name and runs it with its own session.
def autologged_cv(spark, root: str) -> dict:
    """Fit an autologged CrossValidator on ``spark``; what it logged into ``root``."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    import sparktrack
    from sparktrack import TrackingClient
    from sparktrack.spark import load_model

    sparktrack.set_tracking_uri(root)
    sparktrack.autolog()
    try:
        # One partition: the folds (rand(seed) per partition) are the same in both sessions.
        data = spark.createDataFrame(_frame(120, 1)).coalesce(1)
        lr = LogisticRegression(maxIter=10)
        tuner = CrossValidator(
            estimator=Pipeline(stages=[VectorAssembler(inputCols=["a", "b", "c"],
                                                       outputCol="features"), lr]),
            estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.01, 1.0]).build(),
            evaluator=BinaryClassificationEvaluator(), numFolds=2, parallelism=2, seed=7)
        model = tuner.fit(data)
        sparktrack.flush()
    finally:
        sparktrack.autolog(disable=True)
    client = TrackingClient(root)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    reloaded = load_model(f"runs:/{parent.info.run_id}/best_model")
    return {
        "executors": spark.sparkContext._jsc.sc().getExecutorIds().size(),
        "avg_metrics": list(model.avgMetrics),
        "parent": {
            "status": parent.info.status,
            "params": parent.data.params,
            "metrics": parent.data.metrics,
            "tags": {k: parent.data.tags.get(k) for k in ("estimator_name", "estimator_class",
                                                           "mlflow.autologging")},
            "inputs": [(i.dataset.digest, i.dataset.profile)
                       for i in parent.inputs.dataset_inputs],
            "artifacts": sorted(f.path for f in client.list_artifacts(parent.info.run_id)),
        },
        "children": sorted(
            (r.data.tags["sparktrack.autolog.param_map_index"], r.info.status, r.data.params,
             r.data.metrics) for r in children),
        "reloaded_predictions": sorted(
            row.prediction for row in reloaded.transform(data).select("prediction").collect()),
    }


def _without_numbers(result: dict) -> dict:
    """The result with its metric values taken out (compared approximately)."""
    return {
        **result,
        "executors": None,
        "avg_metrics": None,
        "parent": {**result["parent"], "metrics": sorted(result["parent"]["metrics"])},
        "children": [(i, status, params, sorted(metrics))
                     for i, status, params, metrics in result["children"]],
    }


def test_autologged_cross_validator_on_the_cluster(spark, spark_cluster, tmp_path):
    remote = spark_cluster.driver.run(autologged_cv, str(tmp_path / "cluster-store"),
                                      timeout=420)
    local = autologged_cv(spark, str(tmp_path / "local-store"))
    assert remote["executors"] == 1  # the driver logged, the executor trained
    assert _without_numbers(remote) == _without_numbers(local)
    assert remote["avg_metrics"] == pytest.approx(local["avg_metrics"], rel=1e-9)
    assert remote["parent"]["metrics"] == pytest.approx(local["parent"]["metrics"], rel=1e-9)
    for (_, _, _, mine), (_, _, _, theirs) in zip(remote["children"], local["children"]):
        assert mine == pytest.approx(theirs, rel=1e-9)
    parent = remote["parent"]
    assert parent["status"] == "FINISHED" and len(remote["children"]) == 2
    assert parent["tags"]["estimator_name"] == "CrossValidator"
    assert "best_model" in parent["artifacts"]
    assert [m["avg_areaUnderROC"] for _, _, _, m in remote["children"]] == pytest.approx(
        remote["avg_metrics"])

"""Autologging on Spark Connect: the same tuner, logged the same way, without ``sparkContext``.

A Connect session and the classic test session cannot share a process, so the check runs in
a subprocess that starts a local Connect server (``remote("local[2]")``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pyspark")
pytest.importorskip("grpc", reason="Spark Connect needs pyspark[connect] (grpcio)")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import sparktrack
    from pyspark.sql import SparkSession, functions as F
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    spark = SparkSession.builder.remote("local[2]").getOrCreate()
    sparktrack.set_tracking_uri(sys.argv[1])
    sparktrack.autolog()
    df = spark.range(120).select(F.rand(1).alias("a"), F.rand(2).alias("b"))
    df = df.withColumn("label", ((F.col("a") + F.rand(3) * 0.5) > 0.7).cast("double"))
    train, test = df.limit(80), df.limit(120).subtract(df.limit(80))
    lr = LogisticRegression(maxIter=3)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"), lr])
    tuner = CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.01, 1.0]).build(),
        evaluator=BinaryClassificationEvaluator(),
        numFolds=2,
        parallelism=2,
    )
    model = tuner.fit(train)
    auc = BinaryClassificationEvaluator().evaluate(model.transform(test))
    sparktrack.flush()
    runs = sparktrack.search_runs(search_all_experiments=True)
    parent = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    client = sparktrack.TrackingClient(sys.argv[1])
    best = PipelineModel.load(parent["artifact_uri"] + "/best_model/sparkml")
    print(json.dumps({
        "session": type(spark).__module__,
        "runs": len(runs),
        "children": int((runs["tags.mlflow.parentRunId"] == parent["run_id"]).sum()),
        "status": parent["status"],
        "best": parent["params.best_LogisticRegression.regParam"],
        "expected_best": str([0.01, 1.0][max(range(2), key=lambda j: model.avgMetrics[j])]),
        "auc": parent["metrics.areaUnderROC_test"],
        "expected_auc": auc,
        "rows": json.loads(
            client.get_run(parent["run_id"]).inputs.dataset_inputs[0].dataset.profile
        )["num_rows"],
        "artifacts": [f.path for f in client.list_artifacts(parent["run_id"])],
        "best_stages": len(best.stages),
    }))
    spark.stop()
    """
)


@pytest.mark.slow
@pytest.mark.spark
def test_autolog_on_spark_connect(tmp_path):
    script = tmp_path / "connect_autolog.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["session"] == "pyspark.sql.connect.session"
    assert result["runs"] == 3 and result["children"] == 2
    assert result["status"] == "FINISHED"
    assert result["best"] == result["expected_best"]
    assert result["auc"] == pytest.approx(result["expected_auc"])
    assert result["rows"] == 80
    assert result["artifacts"] == [
        "best_model", "best_parameters.json", "estimator_info.json", "metric_info.json", "model",
        "search_results.csv",
    ]
    assert result["best_stages"] == 2

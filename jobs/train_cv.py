"""Tune a Spark MLlib Pipeline with CrossValidator, tracked by sparktrack's autologging.

    spark-submit jobs/train_cv.py --store ./sparktrack-store
    python jobs/train_cv.py --store s3://bucket/prefix --rows 20000

One line, ``sparktrack.autolog()``, and the unchanged training code yields a parent run (tuner
params, best params, search_results.csv, the best model) with one child run per param map
(flattened params, avg/std AUC, AUC per fold); evaluating on the test split afterwards logs
``areaUnderROC_test`` on the parent. The job prints the parent, its children and the best map.

Then the model lifecycle: the best model is registered (``--model-name``), pinned with the
alias ``champion``, and the held-out split is scored with ``models:/<name>@champion`` through
Spark; the predictions become a Delta table under ``--scores`` (the scoring is a run too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sparktrack  # noqa: E402
from sparktrack.spark import session  # noqa: E402

FEATURES = [f"x{i}" for i in range(6)]


def make_data(spark, *, rows: int, seed: int):
    """A synthetic churn-like table: 6 numeric features, a category, a noisy non-linear label."""
    from pyspark.sql import functions as F

    df = spark.range(rows).select(
        *[(F.rand(seed + i) * 2 - 1).alias(name) for i, name in enumerate(FEATURES)],
        F.when(F.rand(seed + 50) < 0.3, "gold").otherwise("basic").alias("plan"),
        F.randn(seed + 99).alias("noise"),
    )
    score = (
        F.col("x0") * 2.0 - F.col("x1") * 1.5 + F.col("x2") * F.col("x3")
        + F.when(F.col("plan") == "gold", 0.8).otherwise(0.0) + F.col("noise") * 0.6
    )
    return df.withColumn("label", (score > 0).cast("double")).drop("noise")


def build_cross_validator(*, parallelism: int = 2, folds: int = 3, seed: int = 7):
    """CrossValidator over StringIndexer, VectorAssembler, StandardScaler, LogisticRegression."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import StandardScaler, StringIndexer, VectorAssembler
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    indexer = StringIndexer(inputCol="plan", outputCol="plan_index")
    assembler = VectorAssembler(inputCols=[*FEATURES, "plan_index"], outputCol="raw")
    scaler = StandardScaler(inputCol="raw", outputCol="features")
    lr = LogisticRegression(maxIter=20)
    pipeline = Pipeline(stages=[indexer, assembler, scaler, lr])
    grid = (
        ParamGridBuilder()
        .addGrid(lr.regParam, [0.001, 0.05])
        .addGrid(lr.elasticNetParam, [0.0, 0.5])
        .build()
    )
    return CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=grid,
        evaluator=BinaryClassificationEvaluator(metricName="areaUnderROC"),
        numFolds=folds,
        parallelism=parallelism,
        seed=seed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="./sparktrack-store", help="store folder or URI")
    parser.add_argument("--experiment", default="train-cv", help="experiment name")
    parser.add_argument("--rows", type=int, default=4000, help="rows to generate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model-name", default="churn", help="registered model name")
    parser.add_argument("--scores", default="./sparktrack-scores",
                        help="folder for the held-out split and its predictions")
    args = parser.parse_args(argv)

    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    spark = session(app_name="sparktrack-train-cv")
    sparktrack.set_tracking_uri(args.store)
    sparktrack.set_experiment(args.experiment)
    sparktrack.autolog(extra_tags={"job": "train_cv"})

    data = make_data(spark, rows=args.rows, seed=args.seed)
    train, test = data.randomSplit([0.8, 0.2], seed=args.seed)
    train = train.cache()

    model = build_cross_validator().fit(train)  # logged: parent + one child per param map
    auc = BinaryClassificationEvaluator().evaluate(model.transform(test))  # areaUnderROC_test

    sparktrack.flush()
    parent = sparktrack.last_active_run()
    children = sparktrack.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["metrics.avg_areaUnderROC DESC"],
    )
    print(f"parent run {parent.info.run_id} ({parent.info.run_name}): {parent.info.status}")
    print(f"  artifacts: {parent.info.artifact_uri}")
    print(f"  test AUC (areaUnderROC_test): {auc:.4f}")
    print(f"  child runs ({len(children)}), best first:")
    for _, child in children.iterrows():
        reg = child["params.LogisticRegression.regParam"]
        mix = child["params.LogisticRegression.elasticNetParam"]
        avg, std = child["metrics.avg_areaUnderROC"], child["metrics.std_areaUnderROC"]
        name = child["tags.mlflow.runName"]
        print(f"    {name:<28} regParam={reg:<6} elasticNet={mix:<4} AUC={avg:.4f} +- {std:.4f}")
    best = {k[len("best_"):]: v for k, v in parent.data.params.items() if k.startswith("best_")}
    print(f"  best params: {best}")
    register_and_score(parent, test, name=args.model_name, scores=args.scores)
    train.unpersist()
    spark.stop()
    return 0


def register_and_score(parent, test, *, name: str, scores: str) -> None:
    """Register the tuned job's best model, make it the champion, score the held-out split."""
    from sparktrack._models.scoring import score

    version = sparktrack.register_model(f"runs:/{parent.info.run_id}/best_model", name)
    client = sparktrack.MlflowClient()
    client.set_registered_model_alias(name, "champion", version.version)
    folder = os.path.join(os.path.abspath(scores), time.strftime("%Y%m%d-%H%M%S"))
    held_out = os.path.join(folder, "held_out")
    test.drop("label").write.parquet(held_out)
    result = score(f"models:/{name}@champion", held_out, os.path.join(folder, "predictions"))
    print(f"registered {name} version {version.version} as {name}@champion")
    print(f"  scored {result.rows} held-out rows with models:/{name}@champion "
          f"in {result.duration_s:.1f} s (scoring run {result.run_id})")
    print(f"  predictions (Delta table): {result.output}")


if __name__ == "__main__":
    sys.exit(main())

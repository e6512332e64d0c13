"""Train Spark MLlib logistic regressions and track them with sparktrack's fluent API.

    spark-submit jobs/train.py --store ./sparktrack-store
    python jobs/train.py --store s3://bucket/prefix      # any store URI

One run per regularisation value: params, the per-iteration training loss as a metric history,
test AUC and accuracy, tags, the coefficients as a JSON artifact and the loss curve as a PNG.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sparktrack  # noqa: E402
from sparktrack.spark import session  # noqa: E402


def make_data(spark, *, rows: int, seed: int):
    """A synthetic binary classification set: 5 features, label from a noisy linear rule."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    df = spark.range(rows).select(
        *[(F.rand(seed + i) * 2 - 1).alias(f"x{i}") for i in range(5)],
        F.randn(seed + 99).alias("noise"),
    )
    score = F.col("x0") * 2.0 - F.col("x1") * 1.5 + F.col("x2") * 0.5 + F.col("noise") * 0.5
    df = df.withColumn("label", (score > 0).cast("double"))
    assembler = VectorAssembler(inputCols=[f"x{i}" for i in range(5)], outputCol="features")
    return assembler.transform(df).select("features", "label")


def train_one(train, test, *, reg_param: float, max_iter: int) -> dict[str, float]:
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import BinaryClassificationEvaluator, MulticlassClassificationEvaluator

    with sparktrack.start_run(run_name=f"logreg-reg{reg_param}") as run:
        sparktrack.log_params(
            {"model": "LogisticRegression", "regParam": reg_param, "maxIter": max_iter,
             "train_rows": train.count(), "test_rows": test.count()}
        )
        sparktrack.set_tags({"job": "train", "framework": "pyspark.ml"})
        model = LogisticRegression(regParam=reg_param, maxIter=max_iter).fit(train)
        history = model.summary.objectiveHistory
        for step, loss in enumerate(history):
            sparktrack.log_metric("train_loss", loss, step=step)
        predictions = model.transform(test)
        results = {
            "test_auc": BinaryClassificationEvaluator().evaluate(predictions),
            "test_accuracy": MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
                predictions
            ),
        }
        sparktrack.log_metrics(results)
        sparktrack.log_dict(
            {"coefficients": model.coefficients.toArray().tolist(),
             "intercept": model.intercept},
            "model/coefficients.json",
        )
        figure, axes = plt.subplots(figsize=(5, 3))
        axes.plot(range(len(history)), history)
        axes.set_xlabel("iteration")
        axes.set_ylabel("training loss")
        axes.set_title(f"regParam={reg_param}")
        figure.tight_layout()
        sparktrack.log_figure(figure, "plots/train_loss.png")
        plt.close(figure)
    return {"run_id": run.info.run_id, **results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="./sparktrack-store", help="store root URI")
    parser.add_argument("--experiment", default="train-logreg")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    spark = session(app_name="sparktrack-train")
    sparktrack.set_tracking_uri(args.store)
    experiment = sparktrack.set_experiment(args.experiment)
    train, test = make_data(spark, rows=args.rows, seed=args.seed).randomSplit(
        [0.8, 0.2], seed=args.seed
    )
    train, test = train.cache(), test.cache()
    results = [
        train_one(train, test, reg_param=reg, max_iter=30) for reg in (0.0, 0.01, 0.1)
    ]
    sparktrack.flush()

    client = sparktrack.TrackingClient(args.store)
    print(f"\nStore: {client.store_root}")
    print(f"Experiment: {experiment.name} (id {experiment.experiment_id})")
    print(f"{'run name':<20} {'status':<9} {'AUC':>7} {'accuracy':>9} {'loss points':>12}  run id")
    for result in results:
        run = client.get_run(result["run_id"])
        points = len(client.get_metric_history(run.info.run_id, "train_loss"))
        print(
            f"{run.info.run_name:<20} {run.info.status:<9} {run.data.metrics['test_auc']:>7.4f} "
            f"{run.data.metrics['test_accuracy']:>9.4f} {points:>12}  {run.info.run_id}"
        )
    print(f"Artifacts of the last run: {client.get_run_info(results[-1]['run_id']).artifact_uri}")
    spark.stop()


if __name__ == "__main__":
    main()

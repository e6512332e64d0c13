"""log_model cost: Spark's writer alone vs sparktrack.spark.log_model vs mlflow.spark.log_model.

    python jobs/bench_models.py --repeat 3

The model is a fitted Pipeline (VectorAssembler + LogisticRegression, a few KB). Per
repetition: ``writer`` is ``model.write().save(path)``; ``sparktrack`` is
``sparktrack.spark.log_model(model, "model", input_example=...)`` in a run (the writer plus
MLmodel, signature, example, environment files); ``MLflow`` is ``mlflow.spark.log_model`` with
the same example on its SQLite store, with its default requirement inference (a second
SparkSession, measured once: it takes about a minute) and with ``pip_requirements`` given.
The issue's bound: sparktrack's overhead over the writer at most 0.2 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import sparktrack  # noqa: E402
from sparktrack.spark import session  # noqa: E402


def _model(spark):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    df = spark.range(500).select(
        (F.rand(1) * 2 - 1).alias("a"), (F.rand(2) * 2 - 1).alias("b")
    ).withColumn("label", (F.col("a") + F.col("b") > 0).cast("double"))
    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                             LogisticRegression(maxIter=5)]).fit(df)
    return model, df.select("a", "b").limit(5).toPandas()


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(*, print_fn: Callable[[str], None] = print, repeat: int = 3,
        mlflow_inference: bool = True) -> list[dict]:
    """Measure each variant; print a table and return its rows."""
    import mlflow
    import mlflow.spark

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    spark = session(app_name="bench-models")
    model, example = _model(spark)
    times: dict[str, list[float]] = {"writer": [], "sparktrack": [], "MLflow, pip_requirements": [],
                                     "MLflow, inferred requirements": []}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as folder:
        sparktrack.set_tracking_uri(os.path.join(folder, "sparktrack-store"))
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        with mlflow.start_run():  # creates MLflow's database outside the timings
            pass
        for attempt in range(repeat):
            target = os.path.join(folder, f"plain-{attempt}")
            times["writer"].append(_timed(lambda: model.write().save(target)))
            with sparktrack.start_run():
                times["sparktrack"].append(_timed(lambda: sparktrack.spark.log_model(
                    model, "model", input_example=example)))
            with mlflow.start_run():
                times["MLflow, pip_requirements"].append(_timed(lambda: mlflow.spark.log_model(
                    model, "model", input_example=example, pip_requirements=["pyspark"])))
        if mlflow_inference:
            with mlflow.start_run():
                times["MLflow, inferred requirements"].append(_timed(
                    lambda: mlflow.spark.log_model(model, "model", input_example=example)))
        sparktrack.flush()
    writer = min(times["writer"])
    rows = []
    print_fn(f"{'variant':32} {'median s':>9} {'min s':>7} {'over writer s':>14}")
    for name, values in times.items():
        if not values:
            continue
        row = {"variant": name, "median_s": statistics.median(values), "min_s": min(values),
               "over_writer_s": min(values) - writer}
        rows.append(row)
        print_fn(f"{name:32} {row['median_s']:9.2f} {row['min_s']:7.2f} "
                 f"{row['over_writer_s']:14.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-mlflow-inference", action="store_true",
                        help="skip MLflow's default log_model (about a minute)")
    args = parser.parse_args()
    run(repeat=args.repeat, mlflow_inference=not args.no_mlflow_inference)


if __name__ == "__main__":
    main()

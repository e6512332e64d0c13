"""log_model cost: Spark's writer alone vs sparktrack.spark.log_model vs mlflow.spark.log_model.

    python jobs/bench_models.py --repeat 3

The model is a fitted Pipeline (VectorAssembler + LogisticRegression, a few KB). Per
repetition: ``writer`` is ``model.write().save(path)``; ``sparktrack`` is
``sparktrack.spark.log_model(model, "model", input_example=...)`` in a run (the writer plus
MLmodel, signature, example, environment files); ``MLflow`` is ``mlflow.spark.log_model`` with
the same example on its SQLite store, with its default requirement inference (a second
SparkSession, measured once: it takes about a minute) and with ``pip_requirements`` given.
The issue's bound: sparktrack's overhead over the writer at most 0.2 s.

Then the registry, both on one logged model, same run, MLflow on SQLite: the median latency
of ``register_model``, ``transition_model_version_stage``, ``set_registered_model_alias`` and
``get_model_version_by_alias`` over 30 versions (goal: each registry operation at least 10x
faster than MLflow), and of ``load_model("models:/<name>@<alias>")``: the first load in the
process (Spark's own reader, for both), then again over ``--repeat`` (sparktrack answers a
folder it loaded before, unchanged, with a copy of that model; MLflow reads it again).
sparktrack commits the registry's events in a background thread of the same process: the
calls are back to back, so its work (one commit per ~10 ms of changes) falls inside the
timings of the calls it overlaps.
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
        registry_rows = _registry(folder, model, repeat=repeat, print_fn=print_fn)
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
    print_fn("")
    print_fn(f"{'':24} {'in a row (warm)':^33} {'taking turns (cold)':^33}")
    print_fn(f"{'registry operation':24} "
             + f"{'sparktrack ms':>14} {'MLflow ms':>10} {'ratio':>7}  " * 2)
    for row in registry_rows:
        print_fn(f"{row['operation']:24} {row['sparktrack_s'] * 1000:14.2f} "
                 f"{row['mlflow_s'] * 1000:10.2f} {row['ratio']:6.1f}x  "
                 f"{row['turns_sparktrack_s'] * 1000:14.2f} "
                 f"{row['turns_mlflow_s'] * 1000:10.2f} {row['turns_ratio']:6.1f}x")
    return rows + registry_rows


def _registry(folder: str, model, *, repeat: int, print_fn) -> list[dict]:
    """Median latency of each registry operation, sparktrack against MLflow (SQLite).

    The registry operations run ``_REGISTRY_REPEAT`` times (they take milliseconds); loading
    the model by its alias, which is mostly Spark's reader for both, ``repeat`` times. Both
    are measured twice: each system's calls in a row, and the systems taking turns
    (:func:`_timings`).
    """
    import mlflow
    import mlflow.spark

    print_fn("measuring the registry ...")
    with sparktrack.start_run() as ours:
        sparktrack.spark.log_model(model, "model")
    with mlflow.start_run() as theirs:
        mlflow.spark.log_model(model, "model", pip_requirements=["pyspark"])
    sparktrack.flush()
    ours_client, theirs_client = sparktrack.MlflowClient(), mlflow.MlflowClient()
    systems = {
        "sparktrack": (sparktrack.register_model, ours_client, ours, sparktrack.spark.load_model),
        "mlflow": (mlflow.register_model, theirs_client, theirs, mlflow.spark.load_model),
    }
    first_load = {}
    for system, (register, client, run, loader) in systems.items():
        register(f"runs:/{run.info.run_id}/model", "bench-model")  # creates the model
        client.set_registered_model_alias("bench-model", "champion", 1)
        # The first load of the folder in this process: Spark reads it (sparktrack answers
        # later loads of the unchanged folder with a copy of the model loaded then).
        first_load[system] = _timed(lambda: loader("models:/bench-model@champion"))
    in_a_row = _timings(systems, repeat=repeat, taking_turns=False)
    taking_turns = _timings(systems, repeat=repeat, taking_turns=True)
    for medians in (in_a_row, taking_turns):
        for system in systems:
            medians[system] = {_FIRST_LOAD: first_load[system], **medians[system]}
    return [
        {"operation": name, **{
            f"{prefix}{system}_s": medians[system][name]
            for prefix, medians in (("", in_a_row), ("turns_", taking_turns))
            for system in systems},
         "ratio": in_a_row["mlflow"][name] / max(in_a_row["sparktrack"][name], 1e-9),
         "turns_ratio": taking_turns["mlflow"][name] / max(taking_turns["sparktrack"][name],
                                                           1e-9)}
        for name in (_FIRST_LOAD, *_REGISTRY_OPERATIONS)
    ]


def _timings(systems: dict, *, repeat: int, taking_turns: bool) -> dict[str, dict[str, float]]:
    """Median seconds of each operation of each system: all of one system's attempts in a row
    (warm: its code and data stay in the CPU's caches), or the systems taking turns at each
    attempt (each call follows the other system's: cold, as a call among other work is)."""
    timings = {system: {name: [] for name in _REGISTRY_OPERATIONS} for system in systems}
    attempts = range(max(_REGISTRY_REPEAT, repeat))
    order = ([(attempt, system) for attempt in attempts for system in systems] if taking_turns
             else [(attempt, system) for system in systems for attempt in attempts])
    for attempt, system in order:
        register, client, run, loader = systems[system]
        timed = timings[system]
        started = time.perf_counter()
        version = register(f"runs:/{run.info.run_id}/model", "bench-model").version
        timed["register_model"].append(time.perf_counter() - started)
        timed["transition stage"].append(_timed(lambda: client.transition_model_version_stage(
            "bench-model", version, "Production", archive_existing_versions=True)))
        timed["set alias"].append(_timed(lambda: client.set_registered_model_alias(
            "bench-model", "champion", version)))
        timed["get version by alias"].append(_timed(
            lambda: client.get_model_version_by_alias("bench-model", "champion")))
        if attempt < repeat:
            timed["load by alias again"].append(_timed(
                lambda: loader("models:/bench-model@champion")))
    return {system: {name: statistics.median(values) for name, values in timed.items()}
            for system, timed in timings.items()}


_REGISTRY_OPERATIONS = ("register_model", "transition stage", "set alias",
                        "get version by alias", "load by alias again")
_FIRST_LOAD = "load by alias, first"
_REGISTRY_REPEAT = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-mlflow-inference", action="store_true",
                        help="skip MLflow's default log_model (about a minute)")
    args = parser.parse_args()
    run(repeat=args.repeat, mlflow_inference=not args.no_mlflow_inference)


if __name__ == "__main__":
    main()

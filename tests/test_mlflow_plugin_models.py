"""Models through MLflow on a sparktrack store: ``mlflow.spark.log_model`` with
``registered_model_name`` (loaded back by sparktrack and by MLflow), an MLflow autologger for
another library, and ``mlflow models serve`` answering from the registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402

import sparktrack  # noqa: E402
from mlflow_server import (  # noqa: E402,F401  (fixtures)
    free_port,
    mlflow_plugin,
    mlflow_store,
    plugin_env,
)

# MLflow's log_model warns about its own type-hint inference (not about the store).
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")


def _train(spark):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    frame = spark.createDataFrame(
        [(float(x), float(x % 3), 1.0 if x > 5 else 0.0) for x in range(12)], ["a", "b", "label"])
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                                LogisticRegression(maxIter=5)])
    return pipeline.fit(frame), frame


def _predictions(model, frame):
    return [row.prediction for row in model.transform(frame).orderBy("a").collect()]


@pytest.fixture()
def registered_spark_model(mlflow_store, spark):
    """A Spark pipeline logged with MLflow's own log_model into the store and registered as
    ``churn`` version 1, alias ``champion``."""
    model, frame = _train(spark)
    with mlflow.start_run() as run:
        # Listing the requirements skips MLflow's inference, a second SparkSession (~1 min).
        info = mlflow.spark.log_model(model, "model", registered_model_name="churn",
                                      pip_requirements=["pyspark"])
    MlflowClient().set_registered_model_alias("churn", "champion", "1")
    return run, info, model, frame


@pytest.mark.spark
def test_spark_log_model_registers_into_the_store(registered_spark_model, mlflow_store, spark):
    run, info, model, frame = registered_spark_model
    ours = sparktrack.TrackingClient(str(mlflow_store))
    version = ours.get_model_version_by_alias("churn", "champion")
    assert (version.version, version.run_id) == (1, run.info.run_id)
    history = json.loads(ours.get_run(run.info.run_id).data.tags["mlflow.log-model.history"])
    assert [entry["artifact_path"] for entry in history] == ["model"]
    expected = _predictions(model, frame)
    by_sparktrack = sparktrack.spark.load_model("models:/churn@champion",
                                                tracking_uri=str(mlflow_store))
    by_mlflow = mlflow.spark.load_model("models:/churn@champion")
    assert _predictions(by_sparktrack, frame) == expected == _predictions(by_mlflow, frame)


def test_sklearn_autolog_writes_into_the_store(mlflow_store):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LinearRegression

    mlflow.sklearn.autolog(log_models=False, log_datasets=False)
    try:
        with mlflow.start_run() as run:
            LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 2.0, 4.0])
    finally:
        mlflow.sklearn.autolog(disable=True)
    ours = sparktrack.TrackingClient(str(mlflow_store)).get_run(run.info.run_id)
    assert ours.data.params["fit_intercept"] == "True"
    assert ours.data.metrics["training_r2_score"] == pytest.approx(1.0)
    assert ours.data.tags["estimator_class"] == "sklearn.linear_model._base.LinearRegression"
    assert sklearn.__version__


def _post_json(url, body, timeout):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
@pytest.mark.spark
def test_mlflow_models_serve_answers_from_the_registry(registered_spark_model, mlflow_store,
                                                       mlflow_plugin, tmp_path):
    """``mlflow models serve -m models:/churn@champion --env-manager local`` on the store."""
    run, info, model, frame = registered_spark_model
    expected = _predictions(model, frame)
    port = free_port()
    uri = f"sparktrack://{mlflow_store}"
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/churn@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=plugin_env(mlflow_plugin, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows = frame.orderBy("a").select("a", "b").toPandas()
    body = {"dataframe_split": {"columns": ["a", "b"], "data": rows.values.tolist()}}
    try:
        deadline = time.monotonic() + 300  # the server starts its own SparkSession
        answer = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = _post_json(f"http://127.0.0.1:{port}/invocations", body, 120)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        assert answer is not None, (tmp_path / "serve.log").read_text()[-4000:]
        assert answer["predictions"] == expected
        latencies = []
        for _ in range(5):  # the README's figure: the median of a one-row request
            started = time.perf_counter()
            small = _post_json(f"http://127.0.0.1:{port}/invocations", {
                "dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}, 60)
            latencies.append(time.perf_counter() - started)
            assert len(small["predictions"]) == 1
        print(f"one-row /invocations latency, median of 5: "
              f"{sorted(latencies)[2] * 1000:.0f} ms")
    finally:
        import os
        import signal

        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(30)
        log.close()

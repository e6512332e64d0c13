"""MLflow on an object-store store through the plugin: ``sparktrack+s3://bucket/prefix`` with
the endpoint and credentials in the ``AWS_*`` environment variables, against the test
session's local S3 endpoint (``tests/s3_server.py``). What MLflow's fluent API, client and
server write and read, sparktrack's own client reads the same; failures reach MLflow as
``MlflowException``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack.errors import InvalidStateError  # noqa: E402
from mlflow_server import MlflowServer, mlflow_plugin, mlflow_tracking  # noqa: E402,F401
from s3_server import s3, s3_store  # noqa: E402,F401  (fixtures)


def _plugin_uri(store: str) -> str:
    """``s3://bucket/prefix`` as the plugin's URI ``sparktrack+s3://bucket/prefix``."""
    return "sparktrack+" + store


@pytest.fixture()
def s3_env(s3, monkeypatch):
    """The endpoint and credentials as ``AWS_*`` environment variables (the documented way
    for MLflow, which gives a store nothing but its URI)."""
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    return s3.environment()


@pytest.fixture()
def mlflow_on_s3(mlflow_plugin, s3_env, s3_store, monkeypatch):
    """MLflow's tracking URI set to a fresh ``sparktrack+s3://`` store; yields the store's
    ``s3://`` root. Afterwards open runs end and MLflow's URI and experiment are put back."""
    # Start without the experiment an earlier test chose (setenv first: a delenv of an unset
    # variable would not be undone after the test).
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with mlflow_tracking(_plugin_uri(s3_store)):
        yield s3_store


def _history(points):
    return [(m.key, m.value, m.timestamp, m.step) for m in points]


def test_mlflow_writes_to_s3_and_sparktrack_reads_the_same(mlflow_on_s3, s3, tmp_path):
    store = mlflow_on_s3
    mlflow.set_experiment("s3-mlflow")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"lr": 0.1, "depth": 3})
        for step in range(4):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tag("team", "spark")
        mlflow.log_text("flavors: {}\n", "model/MLmodel")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_param("lr", 0.2)
            mlflow.log_metric("loss", 0.9, step=0)
    client = MlflowClient()
    parent_id, child_id = parent.info.run_id, child.info.run_id
    experiment_id = parent.info.experiment_id

    # Search with a filter, through the fluent API (a DataFrame) and the client.
    frame = mlflow.search_runs(experiment_ids=[experiment_id],
                               filter_string="params.lr = '0.1' AND metrics.loss < 0.5")
    assert list(frame["run_id"]) == [parent_id]
    found = client.search_runs([experiment_id], "tags.team = 'spark' OR params.lr = '0.2'",
                               order_by=["params.lr DESC"])
    assert [r.info.run_id for r in found] == [child_id, parent_id]
    assert [(m.step, m.value) for m in client.get_metric_history(parent_id, "loss")] == [
        (step, 1.0 / (step + 1)) for step in range(4)]

    # The registry: a model, a version from the run's model folder, an alias.
    client.create_registered_model("churn", description="on S3")
    version = client.create_model_version("churn", f"runs:/{parent_id}/model", run_id=parent_id)
    client.set_registered_model_alias("churn", "champion", version.version)
    by_alias = client.get_model_version_by_alias("churn", "champion")
    assert (by_alias.version, by_alias.run_id, by_alias.aliases) == ("1", parent_id, ["champion"])
    # MLflow's artifact repository (boto3, the same AWS_* variables) reads the run's files.
    assert mlflow.artifacts.load_text(f"runs:/{parent_id}/model/MLmodel") == "flavors: {}\n"
    downloaded = mlflow.artifacts.download_artifacts("models:/churn@champion",
                                                     dst_path=str(tmp_path / "model"))
    assert (tmp_path / "model" / "MLmodel").exists(), downloaded

    # sparktrack's own client, given the same settings as storage options, reads the same.
    ours = sparktrack.TrackingClient(store, storage_options=s3.storage_options())
    for run_id in (parent_id, child_id):
        theirs, mine = client.get_run(run_id), ours.get_run(run_id)
        assert (theirs.info.run_name, theirs.info.status, theirs.info.start_time,
                theirs.info.end_time, theirs.info.artifact_uri) == (
            mine.info.run_name, mine.info.status, mine.info.start_time, mine.info.end_time,
            mine.info.artifact_uri)
        assert (theirs.data.params, theirs.data.metrics, theirs.data.tags) == (
            mine.data.params, mine.data.metrics, mine.data.tags)
        assert _history(client.get_metric_history(run_id, "loss")) == _history(
            ours.get_metric_history(run_id, "loss"))
    assert parent.info.artifact_uri.startswith(store + "/")
    assert ours.get_run_info(child_id).parent_run_id == parent_id
    assert [r.info.run_id for r in ours.search_runs(
        [experiment_id], "params.lr = '0.1' AND metrics.loss < 0.5")] == [parent_id]
    mine = ours.get_model_version_by_alias("churn", "champion")
    assert (mine.version, mine.run_id, mine.source) == (1, parent_id, by_alias.source)
    assert ours.get_registered_model("churn").description == "on S3"
    assert client.get_model_version_download_uri("churn", "1") == (
        ours.get_model_version_download_uri("churn", 1))
    # The rows are Delta tables in the bucket, under the store's prefix.
    assert any(key.endswith("/runs/_delta_log/00000000000000000000.json")
               for key in s3.keys(store))


def test_storage_options_after_mlflow_opened_the_store(mlflow_on_s3, s3):
    """The plugin opened the store from the environment: options repeating (part of) the
    environment are the same configuration; options that say something else are refused, as
    for any store open in the process."""
    MlflowClient().search_experiments()  # the plugin opens the store
    region = {"AWS_REGION": s3.environment()["AWS_REGION"]}
    assert sparktrack.TrackingClient(mlflow_on_s3, storage_options=region).search_experiments()
    with pytest.raises(InvalidStateError, match="AWS_REGION"):
        sparktrack.TrackingClient(mlflow_on_s3,
                                  storage_options=s3.storage_options(AWS_REGION="eu-west-1"))
    with pytest.raises(InvalidStateError, match="max_retries"):
        sparktrack.TrackingClient(mlflow_on_s3,
                                  storage_options=s3.storage_options(max_retries="1"))


def test_store_failures_reach_mlflow_as_mlflow_exceptions(mlflow_plugin, s3, s3_env,
                                                          monkeypatch, tmp_path):
    """Opening a store that cannot be read fails in the plugin's constructor: MLflow's
    callers get an ``MlflowException`` naming the cause, for both stores."""
    missing = f"sparktrack+s3://no-such-bucket-{s3.bucket}/store"
    for call in (lambda: MlflowClient(missing).search_experiments(),
                 lambda: MlflowClient(registry_uri=missing).search_registered_models()):
        with pytest.raises(MlflowException, match="missing bucket s3://no-such-bucket-"):
            call()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
    with s3.enforce_credentials():
        with pytest.raises(MlflowException, match=r"access denied .*AWS_ACCESS_KEY_ID") as caught:
            MlflowClient(_plugin_uri(s3.new_prefix())).search_experiments()
    assert "not-a-key" not in str(caught.value)
    # A bad URI is MLflow's INVALID_PARAMETER_VALUE, with how to write it.
    with pytest.raises(MlflowException, match="three slashes") as caught:
        MlflowClient(f"sparktrack://host{tmp_path}").search_experiments()
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")  # MLflow's import
def test_mlflow_spark_flavor_logs_and_loads_a_model_on_s3(mlflow_on_s3, s3, spark):
    """``mlflow.spark.log_model`` into an S3 store: Spark's writer cannot write ``s3://``
    without Hadoop's S3A jars, so MLflow saves the model locally and uploads it (boto3);
    ``load_model`` by ``runs:/`` and ``models:/`` downloads it and scores the same."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import LinearRegression

    frame = spark.createDataFrame([(1.0, 2.0, 3.0), (2.0, 1.0, 4.0), (3.0, 5.0, 9.0)],
                                  ["a", "b", "y"])
    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                             LinearRegression(labelCol="y")]).fit(frame)
    with mlflow.start_run() as run:
        # Listed requirements: MLflow's inference of them would load the model in a new process.
        mlflow.spark.log_model(model, artifact_path="model", registered_model_name="s3-spark",
                               pip_requirements=["pyspark"])
    folder = f"{mlflow_on_s3}/artifacts/{run.info.experiment_id}/{run.info.run_id}/model"
    keys = s3.keys(folder)
    assert any(key.endswith("/model/MLmodel") for key in keys)
    assert any("/model/sparkml/stages/" in key for key in keys)
    expected = [row.prediction for row in model.transform(frame).collect()]
    for uri in (f"runs:/{run.info.run_id}/model", "models:/s3-spark/1"):
        loaded = mlflow.spark.load_model(uri)
        assert [row.prediction for row in loaded.transform(frame).collect()] == expected


def _post(url: str, body: dict) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.slow
def test_mlflow_server_on_s3_answers_the_runs_table(mlflow_on_s3, mlflow_plugin, tmp_path):
    """``mlflow server --backend-store-uri sparktrack+s3://...`` (its workers get the
    ``AWS_*`` environment) answers the runs table's search with what MLflow logged, the
    artifacts tab's calls with the run's files and the models page with the registry; an edit
    made through one worker is what every worker's search finds next."""
    experiment_id = mlflow.create_experiment("s3-server")
    ids = []
    for index in range(3):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"r{index}") as run:
            mlflow.log_param("alpha", str(index))
            mlflow.log_metric("loss", 0.5 + index, step=index)
            mlflow.log_text(f"run {index}", "notes/readme.txt")
        ids.append(run.info.run_id)
    MlflowClient().create_model_version(
        MlflowClient().create_registered_model("s3-model").name, f"runs:/{ids[0]}/notes",
        run_id=ids[0])

    server = MlflowServer(mlflow.get_tracking_uri(), shim=mlflow_plugin, workers=2,
                          log_path=tmp_path / "server.log")
    try:
        status, answer = _post(f"{server.url}/ajax-api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment_id], "max_results": 100, "filter": "",
            "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"})
        assert status == 200, (answer, server.output()[-3000:])
        runs = {r["info"]["run_name"]: r for r in answer["runs"]}
        assert set(runs) == {"r0", "r1", "r2"}
        for index, run_id in enumerate(ids):
            row = runs[f"r{index}"]
            assert row["info"]["run_id"] == run_id and row["info"]["status"] == "FINISHED"
            assert {p["key"]: p["value"] for p in row["data"]["params"]} == {"alpha": str(index)}
            assert [(m["key"], m["value"], m["step"]) for m in row["data"]["metrics"]] == [
                ("loss", 0.5 + index, index)]
        status, answer = _post(f"{server.url}/api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment_id], "filter": "params.alpha = '1'"})
        assert status == 200 and [r["info"]["run_id"] for r in answer["runs"]] == [ids[1]]
        # The artifacts tab: the server reads the run's s3:// folder.
        with urllib.request.urlopen(f"{server.url}/get-artifact?path=notes/readme.txt"
                                    f"&run_uuid={ids[2]}", timeout=60) as answer:
            assert answer.read() == b"run 2"
        with urllib.request.urlopen(f"{server.url}/ajax-api/2.0/mlflow/registered-models/"
                                    "search?max_results=25", timeout=60) as answer:
            models = json.loads(answer.read())["registered_models"]
        assert [(m["name"], m["latest_versions"][0]["run_id"]) for m in models] == [
            ("s3-model", ids[0])]
        # An edit in the UI (a tag), then the runs table again: each worker finds it.
        status, answer = _post(f"{server.url}/ajax-api/2.0/mlflow/runs/set-tag",
                               {"run_id": ids[1], "key": "reviewed", "value": "yes"})
        assert status == 200, answer
        for _ in range(4):
            status, answer = _post(f"{server.url}/ajax-api/2.0/mlflow/runs/search", {
                "experiment_ids": [experiment_id], "filter": "tags.reviewed = 'yes'"})
            assert status == 200 and [r["info"]["run_id"] for r in answer["runs"]] == [ids[1]]
        assert "Traceback" not in server.output()
    finally:
        server.stop()

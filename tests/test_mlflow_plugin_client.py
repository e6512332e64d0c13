"""MLflow's fluent API and MlflowClient on a ``sparktrack:`` store, through the plugin: what
they write, sparktrack's own API and the Spark data source read back identically, and what
they read, sparktrack wrote."""

from __future__ import annotations

import pytest

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

import sparktrack  # noqa: E402
from mlflow_server import mlflow_plugin, mlflow_store  # noqa: E402,F401  (fixtures)


def _same_run(mlflow_run, ours):
    """An MLflow run and sparktrack's record of it hold the same values."""
    info, data = mlflow_run.info, mlflow_run.data
    assert (info.run_id, info.experiment_id, info.run_name, info.status, info.user_id,
            info.start_time, info.end_time, info.lifecycle_stage) == (
        ours.info.run_id, ours.info.experiment_id, ours.info.run_name, ours.info.status,
        ours.info.user_id, ours.info.start_time, ours.info.end_time, ours.info.lifecycle_stage)
    assert info.artifact_uri == sparktrack.mlflow_plugin.artifact_uri_for_mlflow(
        ours.info.artifact_uri)
    assert (data.params, data.tags, data.metrics) == (
        ours.data.params, ours.data.tags, ours.data.metrics)


def _history(points):
    return [(m.key, m.value, m.timestamp, m.step) for m in points]


def test_fluent_api_writes_what_sparktrack_reads(mlflow_store):
    mlflow.set_experiment("fluent")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 3, "kind": "gbt"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.5, "f1": 0.25}, step=2)
        mlflow.set_tag("team", "spark")
        mlflow.set_tags({"gone": "soon", "stays": "yes"})
        mlflow.delete_tag("gone")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.75)
    client = MlflowClient()
    client.log_batch(parent.info.run_id, metrics=[Metric("batch", 2.5, 1_700_000_000_000, 7)],
                     params=[Param("batched", "x")], tags=[RunTag("bt", "y")])

    ours = sparktrack.TrackingClient(str(mlflow_store))
    for run_id in (parent.info.run_id, child.info.run_id):
        _same_run(client.get_run(run_id), ours.get_run(run_id))
    run = ours.get_run(parent.info.run_id)
    assert run.data.params == {"lr": "0.1", "depth": "3", "kind": "gbt", "batched": "x"}
    assert {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")} == {
        "team": "spark", "stays": "yes", "bt": "y"}
    assert run.info.status == "FINISHED" and run.info.run_name == "parent"
    assert ours.get_run_info(child.info.run_id).parent_run_id == parent.info.run_id
    for key in ("loss", "acc", "batch"):
        assert _history(client.get_metric_history(parent.info.run_id, key)) == _history(
            ours.get_metric_history(parent.info.run_id, key))
    assert [m.step for m in ours.get_metric_history(parent.info.run_id, "loss")] == [0, 1, 2, 3, 4]
    # MLflow's run data keeps each metric's latest point with its step and time.
    latest = {m.key: (m.value, m.step) for m in client.get_run(parent.info.run_id).data._metric_objs}
    assert latest["loss"] == (0.2, 4) and latest["batch"] == (2.5, 7)


@pytest.mark.spark
def test_spark_data_source_reads_what_mlflow_wrote(mlflow_store, spark):
    with mlflow.start_run(run_name="sparky") as run:
        mlflow.log_param("p", "1")
        mlflow.log_metric("m", 3.0, step=1)
        mlflow.log_metric("m", 4.0, step=2)
        mlflow.set_tag("t", "v")
    mlflow_run = MlflowClient().get_run(run.info.run_id)
    sparktrack.TrackingClient(str(mlflow_store)).flush()
    row = (spark.read.format("sparktrack").load(str(mlflow_store))
           .where(f"run_id = '{run.info.run_id}'").collect()[0])
    assert (row.run_name, row.status, dict(row.params), dict(row.tags), dict(row.metrics)) == (
        "sparky", "FINISHED", mlflow_run.data.params, mlflow_run.data.tags,
        mlflow_run.data.metrics)
    points = (spark.read.format("sparktrack").option("table", "metrics").load(str(mlflow_store))
              .where(f"run_id = '{run.info.run_id}'").orderBy("step").collect())
    assert [(p.key, p.value, p.step) for p in points] == [("m", 3.0, 1), ("m", 4.0, 2)]


def _fill_search_runs(count=6):
    experiment_id = mlflow.create_experiment("search")
    ids = []
    for index in range(count):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"r{index}") as run:
            mlflow.log_param("lr", str(0.1 * (index % 3)))
            mlflow.log_metric("loss", float(index), step=index)
            mlflow.set_tag("parity", "even" if index % 2 == 0 else "odd")
        ids.append(run.info.run_id)
    return experiment_id, ids


@pytest.mark.parametrize("filter_string, order_by", [
    ("", ["metrics.loss DESC"]),
    ("metrics.loss > 1", ["attributes.start_time DESC"]),
    ("tags.parity = 'even'", ["params.lr ASC", "metrics.loss DESC"]),
    ("params.lr = '0.0' or metrics.loss >= 4", None),
    ("attributes.run_name LIKE 'r%' AND tags.`parity` != 'odd'", ["attributes.run_name"]),
])
def test_search_runs_is_sparktracks_search(mlflow_store, filter_string, order_by):
    experiment_id, ids = _fill_search_runs()
    ours = sparktrack.TrackingClient(str(mlflow_store))
    theirs = MlflowClient().search_runs([experiment_id], filter_string, order_by=order_by)
    expected = ours.search_runs([experiment_id], filter_string, order_by=order_by)
    assert [r.info.run_id for r in theirs] == [r.info.run_id for r in expected]
    assert theirs  # every case matches something
    frame = mlflow.search_runs([experiment_id], filter_string, order_by=order_by)
    assert list(frame["run_id"]) == [r.info.run_id for r in expected]


def test_search_runs_pages_and_view_types(mlflow_store):
    experiment_id, ids = _fill_search_runs()
    client = MlflowClient()
    client.delete_run(ids[0])
    seen, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=2, page_token=token,
                                  order_by=["attributes.run_name ASC"])
        assert len(page) <= 2
        seen += [r.info.run_name for r in page]
        token = page.token
        if not token:
            break
    assert seen == ["r1", "r2", "r3", "r4", "r5"]
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids[0]]
    assert len(client.search_runs([experiment_id], run_view_type=ViewType.ALL)) == 6


def test_rename_delete_restore_runs_and_experiments(mlflow_store):
    client = MlflowClient()
    ours = sparktrack.TrackingClient(str(mlflow_store))
    experiment_id = client.create_experiment("before", tags={"k": "v"})
    run = client.create_run(experiment_id, run_name="old")
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": run.info.run_id})
    client.update_run(run.info.run_id, name="new")
    assert ours.get_run(run.info.run_id).info.run_name == "new"
    assert ours.get_run(run.info.run_id).data.tags["mlflow.runName"] == "new"
    client.delete_run(run.info.run_id)
    # MLflow deletes just the run; its nested run stays.
    assert ours.get_run_info(run.info.run_id).lifecycle_stage == "deleted"
    assert ours.get_run_info(child.info.run_id).lifecycle_stage == "active"
    client.restore_run(run.info.run_id)
    assert ours.get_run_info(run.info.run_id).lifecycle_stage == "active"
    client.set_terminated(run.info.run_id, "KILLED")
    assert ours.get_run_info(run.info.run_id).status == "KILLED"

    client.rename_experiment(experiment_id, "after")
    assert ours.get_experiment(experiment_id).name == "after"
    assert client.get_experiment_by_name("after").tags == {"k": "v"}
    client.set_experiment_tag(experiment_id, "k2", "v2")
    client.delete_experiment_tag(experiment_id, "k")
    assert ours.get_experiment(experiment_id).tags == {"k2": "v2"}
    client.delete_experiment(experiment_id)
    assert ours.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert ours.get_run_info(run.info.run_id).lifecycle_stage == "deleted"
    assert [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)] == [
        "after"]
    client.restore_experiment(experiment_id)
    assert ours.get_experiment(experiment_id).lifecycle_stage == "active"
    assert client.get_experiment_by_name("missing") is None
    assert client.get_experiment("0").name == "Default"


def test_artifacts_through_mlflow(mlflow_store, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source), "docs")
        mlflow.log_dict({"a": 1}, "conf/params.json")
    ours = sparktrack.TrackingClient(str(mlflow_store))
    assert [f.path for f in ours.list_artifacts(run.info.run_id, "docs")] == ["docs/notes.txt"]
    assert run.info.artifact_uri.startswith("file:///")
    got = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="docs",
                                              dst_path=str(tmp_path / "down"))
    assert (tmp_path / "down" / "docs" / "notes.txt").read_text() == "hello", got
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/conf/params.json") == {"a": 1}


# Stages and get_latest_versions are deprecated in MLflow (FutureWarning), still supported.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_registry_calls(mlflow_store):
    client = MlflowClient()
    ours = sparktrack.TrackingClient(str(mlflow_store))
    with mlflow.start_run() as run:
        mlflow.log_text("model", "model/MLmodel")
    client.create_registered_model("churn", tags={"team": "ml"}, description="first")
    v1 = mlflow.register_model(f"runs:/{run.info.run_id}/model", "churn")
    v2 = client.create_model_version("churn", f"{run.info.artifact_uri}/model",
                                     run_id=run.info.run_id, tags={"k": "v"})
    assert (v1.version, v2.version) == ("1", "2")
    client.set_registered_model_alias("churn", "champion", "1")
    client.transition_model_version_stage("churn", "2", "production")
    client.set_model_version_tag("churn", "1", "checked", "yes")
    client.set_registered_model_tag("churn", "owner", "me")
    client.delete_registered_model_tag("churn", "team")
    client.update_model_version("churn", "2", description="second")
    client.update_registered_model("churn", description="updated")

    assert client.get_model_version_by_alias("churn", "champion").version == "1"
    assert ours.get_model_version_by_alias("churn", "champion").version == 1
    assert ours.get_model_version("churn", 2).current_stage == "Production"
    assert ours.get_model_version("churn", 1).tags == {"checked": "yes"}
    model = client.get_registered_model("churn")
    assert (model.description, model.tags, model.aliases) == ("updated", {"owner": "me"},
                                                               {"champion": "1"})
    mine = ours.get_registered_model("churn")
    assert (mine.description, mine.tags, mine.aliases) == ("updated", {"owner": "me"},
                                                           {"champion": 1})
    assert [v.version for v in client.get_latest_versions("churn", ["Production"])] == ["2"]
    found = client.search_model_versions(f"run_id = '{run.info.run_id}'",
                                         order_by=["version_number DESC"])
    assert [(v.version, v.aliases) for v in found] == [("2", []), ("1", ["champion"])]
    assert [m.name for m in client.search_registered_models("name LIKE 'ch%'")] == ["churn"]
    assert client.get_model_version_download_uri("churn", "2").startswith("file:///")
    client.delete_registered_model_alias("churn", "champion")
    assert ours.get_registered_model("churn").aliases == {}
    client.delete_model_version("churn", "1")
    client.rename_registered_model("churn", "churn2")
    assert [v.version for v in ours.search_model_versions("name = 'churn2'")] == [2]
    client.delete_registered_model("churn2")
    assert client.search_registered_models() == []


def test_model_searches_follow_mlflows_prompt_tag_rule(mlflow_store):
    """MlflowClient adds ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every model search;
    as in MLflow, a model without the tag matches it (and ``= 'false'``)."""
    client = MlflowClient()
    client.create_registered_model("plain")
    # MLflow's client refuses the tag on models: write them with sparktrack's.
    ours = sparktrack.TrackingClient(str(mlflow_store))
    ours.create_registered_model("not-a-prompt", tags={"mlflow.prompt.is_prompt": "false"})
    ours.create_registered_model("a-prompt", tags={"mlflow.prompt.is_prompt": "true"})
    assert sorted(m.name for m in client.search_registered_models()) == ["not-a-prompt", "plain"]
    assert [m.name for m in client.search_registered_models("name = 'plain'")] == ["plain"]
    store = mlflow.tracking._model_registry.utils._get_store()
    assert sorted(m.name for m in store.search_registered_models(
        "tags.`mlflow.prompt.is_prompt` = 'false'")) == ["not-a-prompt", "plain"]
    assert [m.name for m in store.search_registered_models(
        "tags.`mlflow.prompt.is_prompt` = 'true'")] == ["a-prompt"]


def _code(call):
    with pytest.raises(MlflowException) as caught:
        call()
    return caught.value.error_code


def test_errors_carry_mlflow_error_codes(mlflow_store):
    client = MlflowClient()
    run = client.create_run("0")
    client.create_registered_model("m")
    assert _code(lambda: client.get_run("0" * 32)) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: client.get_experiment("123")) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: client.get_registered_model("nope")) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: client.get_model_version("m", "3")) == "RESOURCE_DOES_NOT_EXIST"
    assert _code(lambda: client.search_runs(["0"], "metrics.loss >>> 1")) == (
        "INVALID_PARAMETER_VALUE")
    assert _code(lambda: client.search_runs(["0"], order_by=["bogus.x"])) == (
        "INVALID_PARAMETER_VALUE")
    assert _code(lambda: client.log_param(run.info.run_id, "bad key?!", 1)) == (
        "INVALID_PARAMETER_VALUE")
    # MLflow's rule: an unknown alias is INVALID_PARAMETER_VALUE, not "not found".
    assert _code(lambda: client.get_model_version_by_alias("m", "nope")) == (
        "INVALID_PARAMETER_VALUE")
    assert _code(lambda: client.create_registered_model("m")) == "RESOURCE_ALREADY_EXISTS"
    assert _code(lambda: client.create_experiment("Default")) == "RESOURCE_ALREADY_EXISTS"
    assert _code(lambda: client.get_logged_model("m-123")) == "NOT_IMPLEMENTED"
    assert _code(lambda: client.get_trace("tr-1")) == "NOT_IMPLEMENTED"

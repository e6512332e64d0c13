"""``mlflow server`` on a sparktrack store: the REST and GraphQL calls MLflow's UI makes answer
200 with the store's data, and the UI's writes land as sparktrack rows."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("mlflow")

import sparktrack  # noqa: E402
from mlflow_server import mlflow_plugin, mlflow_server  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.slow
API = "/ajax-api/2.0/mlflow"


def _call(server, path, body=None, *, method=None, params=None):
    url = server.url + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            text = answer.read().decode()
            status = answer.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def _ok(server, path, body=None, **kwargs):
    status, answer = _call(server, path, body, **kwargs)
    assert status == 200, (path, status, answer, server.server.output()[-3000:])
    return answer


def test_experiments_and_runs_table(mlflow_server):
    store = mlflow_server.store
    found = _ok(mlflow_server, f"{API}/experiments/search", {
        "max_results": 25, "order_by": ["last_update_time DESC"],
        "filter": "tags.`mlflow.experiment.isGateway` IS NULL"})
    assert {e["name"] for e in found["experiments"]} >= {"ui-demo", "Default"}
    runs = _ok(mlflow_server, f"{API}/runs/search", {
        "experiment_ids": [store.experiment_id], "max_results": 100, "filter": "",
        "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"})["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    assert set(by_name) == {"cv-parent", "fold-0", "fold-1"}
    parent = by_name["cv-parent"]
    assert {p["key"]: p["value"] for p in parent["data"]["params"]} == {
        "numFolds": "3", "regParam": "0.1"}
    metrics = {m["key"]: (m["value"], m["step"]) for m in parent["data"]["metrics"]}
    assert metrics == {"loss": (0.1, 9), "areaUnderROC": (0.875, 0)}
    # The search box, and the nested runs the UI groups under their parent.
    searched = _ok(mlflow_server, f"{API}/runs/search", {
        "experiment_ids": [store.experiment_id], "filter": "metrics.areaUnderROC < 0.85",
        "order_by": ["metrics.areaUnderROC DESC"]})["runs"]
    assert [r["info"]["run_name"] for r in searched] == ["fold-1", "fold-0"]
    children = _ok(mlflow_server, f"{API}/runs/search", {
        "experiment_ids": [store.experiment_id],
        "filter": f"tags.`mlflow.parentRunId` = '{store.parent}'"})["runs"]
    assert sorted(r["info"]["run_id"] for r in children) == sorted(store.children)
    ids = ", ".join(f"'{i}'" for i in [store.parent, *store.children])
    compared = _ok(mlflow_server, f"{API}/runs/search", {
        "experiment_ids": [store.experiment_id], "filter": f"attributes.run_id IN ({ids})",
        "run_view_type": "ALL"})["runs"]
    assert len(compared) == 3
    for path, body in ((f"{API}/experiments/search-datasets",
                        {"experiment_ids": [store.experiment_id]}),
                       (f"{API}/logged-models/search", {"experiment_ids": [store.experiment_id]})):
        _ok(mlflow_server, path, body)


def test_run_page_charts_and_artifacts(mlflow_server):
    store = mlflow_server.store
    history = _ok(mlflow_server, f"{API}/metrics/get-history-bulk-interval", params={
        "run_ids": [store.parent], "metric_key": "loss", "max_results": 320})["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(s, 1.0 / (s + 1)) for s in range(10)]
    query = """query GetRun($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) { run {
        info { runName status } data { params { key value } tags { key value } }
        experiment { name } modelVersions { name version } } apiError { code message } } }"""
    answer = _ok(mlflow_server, "/graphql", {"query": query, "operationName": "GetRun",
                                             "variables": {"data": {"runId": store.parent}}})
    run = answer["data"]["mlflowGetRun"]["run"]
    assert run["info"] == {"runName": "cv-parent", "status": "FINISHED"}
    assert run["experiment"]["name"] == "ui-demo"
    assert {"key": "mlflow.note.content",
            "value": "The parent run of a cross-validation."} in run["data"]["tags"]
    assert sorted(v["version"] for v in run["modelVersions"]) == ["1", "2"]
    root = _ok(mlflow_server, f"{API}/artifacts/list", params={"run_id": store.parent})
    assert root["root_uri"].startswith("file:///")
    assert {(f["path"], f["is_dir"]) for f in root["files"]} == {("model", True),
                                                                 ("notes", True)}
    notes = _ok(mlflow_server, f"{API}/artifacts/list",
                params={"run_id": store.parent, "path": "notes"})
    assert [f["path"] for f in notes["files"]] == ["notes/readme.txt"]
    status, text = _call(mlflow_server, "/get-artifact",
                         params={"path": "notes/readme.txt", "run_uuid": store.parent})
    assert (status, text) == (200, "readme")


def test_registry_pages(mlflow_server):
    models = _ok(mlflow_server, f"{API}/registered-models/search",
                 params={"max_results": 25, "order_by": "name ASC"})["registered_models"]
    churn = next(m for m in models if m["name"] == "churn")
    assert churn["aliases"] == [{"alias": "champion", "version": "1"}]
    versions = _ok(mlflow_server, f"{API}/model-versions/search", params={
        "filter": "name='churn'", "max_results": 25,
        "order_by": "creation_timestamp DESC"})["model_versions"]
    assert [(v["version"], v["current_stage"], v.get("aliases", [])) for v in versions] == [
        ("2", "Staging", []), ("1", "None", ["champion"])]
    version = _ok(mlflow_server, f"{API}/model-versions/get",
                  params={"name": "churn", "version": "1"})["model_version"]
    assert version["run_id"] == mlflow_server.store.parent
    status, mlmodel = _call(mlflow_server, "/model-versions/get-artifact",
                            params={"path": "MLmodel", "name": "churn", "version": "1"})
    assert (status, mlmodel) == (200, "flavors: {}\n")


def test_ui_writes_land_as_sparktrack_rows(mlflow_server):
    store = mlflow_server.store
    client = sparktrack.TrackingClient(str(store.root))
    run_id = store.children[0]
    # get_run reads the store; get_run_info would answer from what this process (which
    # filled the store) cached of the run when it created it.
    _ok(mlflow_server, f"{API}/runs/update", {"run_id": run_id, "run_name": "renamed"})
    _ok(mlflow_server, f"{API}/runs/set-tag", {"run_id": run_id, "key": "ui", "value": "yes"})
    _ok(mlflow_server, f"{API}/runs/set-tag", {"run_id": run_id, "key": "mlflow.note.content",
                                               "value": "written in the UI"})
    _ok(mlflow_server, f"{API}/runs/delete-tag", {"run_id": run_id, "key": "ui"})
    run = client.get_run(run_id)
    assert run.info.run_name == "renamed"
    assert run.data.tags["mlflow.note.content"] == "written in the UI"
    assert "ui" not in run.data.tags
    _ok(mlflow_server, f"{API}/runs/delete", {"run_id": run_id})
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    _ok(mlflow_server, f"{API}/runs/restore", {"run_id": run_id})
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    _ok(mlflow_server, f"{API}/experiments/set-experiment-tag", {
        "experiment_id": store.experiment_id, "key": "mlflow.experimentKind",
        "value": "custom_model_development"})
    assert client.get_experiment(store.experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development")

    _ok(mlflow_server, f"{API}/registered-models/alias",
        {"name": "churn", "alias": "challenger", "version": "2"})
    _ok(mlflow_server, f"{API}/model-versions/transition-stage", {
        "name": "churn", "version": "1", "stage": "Production",
        "archive_existing_versions": False})
    _ok(mlflow_server, f"{API}/registered-models/update",
        {"name": "churn", "description": "edited in the UI"}, method="PATCH")
    _ok(mlflow_server, f"{API}/model-versions/set-tag",
        {"name": "churn", "version": "2", "key": "reviewed", "value": "yes"})
    assert client.get_model_version_by_alias("churn", "challenger").version == 2
    assert client.get_model_version("churn", 1).current_stage == "Production"
    assert client.get_model_version("churn", 2).tags == {"reviewed": "yes"}
    assert client.get_registered_model("churn").description == "edited in the UI"
    _ok(mlflow_server, f"{API}/registered-models/alias",
        {"name": "churn", "alias": "challenger"}, method="DELETE")
    assert "challenger" not in client.get_registered_model("churn").aliases


def test_errors_keep_their_http_status(mlflow_server):
    status, answer = _call(mlflow_server, f"{API}/runs/get", params={"run_id": "0" * 32})
    assert (status, answer["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    status, answer = _call(mlflow_server, f"{API}/runs/search", {
        "experiment_ids": [mlflow_server.store.experiment_id], "filter": "metrics.x >>> 1"})
    assert (status, answer["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    status, answer = _call(mlflow_server, f"{API}/logged-models/m-0123")
    assert (status, answer["error_code"]) == (501, "NOT_IMPLEMENTED")
    assert "sparktrack" in answer["message"]

"""`sparktrack import` from MLflow 3.17: a SQLite store and an mlruns folder, both filled by
MLflow's own client, read back through sparktrack's API and compared with MLflow's view."""

from __future__ import annotations

import math
import os
import shutil
import warnings

import pytest

mlflow = pytest.importorskip("mlflow")

from sparktrack import TrackingClient  # noqa: E402
from sparktrack.cli import main  # noqa: E402
from sparktrack.entities import ViewType  # noqa: E402
from sparktrack.errors import InvalidInputError, NotFoundError  # noqa: E402
from sparktrack._transfer import import_mlflow  # noqa: E402


# -- filling an MLflow store with MLflow's client (shared with the other transfer tests) ----------
def fill_mlflow(uri: str, artifact_file: str, *, extra_runs: int = 0) -> dict:
    """Experiments, nested runs, histories, tags, an artifact, a deleted run and experiment,
    and a registered model with versions, an alias, a stage and a deleted version."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated in MLflow; the file store too
        experiment = client.create_experiment("churn", tags={"team": "ml", "nested/key": "x"})
        parent = client.create_run(experiment, run_name="cv-parent", start_time=1_000,
                                   tags={"mlflow.user": "ana", "mlflow.source.git.commit": "abc"})
        pid = parent.info.run_id
        client.log_batch(pid, params=[Param("numFolds", "3"), Param("path/like", "v")],
                         tags=[RunTag("phase", "tuning")], metrics=[
                             Metric("loss", 1.0 / (s + 1), 2_000 + s, s) for s in range(6)
                         ] + [Metric("loss", 0.05, 2_100, 3),  # a second point at step 3
                              Metric("odd", float("nan"), 2_200, 0),
                              Metric("big", float("inf"), 2_300, 0)])
        client.log_artifact(pid, artifact_file, "reports")
        children = []
        for i in range(2):
            child = client.create_run(experiment, run_name=f"child-{i}", start_time=1_100 + i,
                                      tags={"mlflow.parentRunId": pid})
            client.log_batch(child.info.run_id, params=[Param("regParam", str(0.1 * i))],
                             metrics=[Metric("avg_auc", 0.7 + i / 10, 3_000, 0)])
            client.set_terminated(child.info.run_id, "FINISHED", end_time=4_000 + i)
            children.append(child.info.run_id)
        client.set_terminated(pid, "FINISHED", end_time=5_000)
        doomed = client.create_run(experiment, run_name="deleted-run", start_time=1_200)
        client.set_terminated(doomed.info.run_id, "FAILED", end_time=1_300)
        client.delete_run(doomed.info.run_id)
        for i in range(extra_runs):
            run = client.create_run(experiment, run_name=f"bulk-{i}", start_time=10_000 + i)
            client.log_batch(run.info.run_id, params=[Param("i", str(i))],
                             metrics=[Metric("m", float(i), 10_000 + i, s) for s in range(3)])
        old = client.create_experiment("old-experiment")
        old_run = client.create_run(old, run_name="in-deleted-experiment", start_time=1_500)
        client.delete_experiment(old)

        client.create_registered_model("churn-model", tags={"owner": "ana"},
                                       description="the churn model")
        for _ in range(3):
            client.create_model_version("churn-model", f"runs:/{pid}/reports", run_id=pid,
                                        tags={"data": "v1"}, description="a version")
        client.set_registered_model_alias("churn-model", "champion", "2")
        client.transition_model_version_stage("churn-model", "1", "Production")
        client.delete_model_version("churn-model", "3")
    return {"experiment": experiment, "parent": pid, "children": children,
            "deleted": doomed.info.run_id, "old": old, "old_run": old_run.info.run_id}


@pytest.fixture(scope="module")
def artifact_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("artifact") / "report.txt"
    path.write_text("auc 0.81\n")
    return str(path)


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory, artifact_file):
    """A SQLite MLflow store (artifacts under the same folder), filled once per module."""
    folder = tmp_path_factory.mktemp("mlflow_sql")
    cwd = os.getcwd()
    os.chdir(folder)  # MLflow puts a SQLite store's artifacts under ./mlruns
    try:
        uri = f"sqlite:///{folder}/mlflow.db"
        ids = fill_mlflow(uri, artifact_file)
    finally:
        os.chdir(cwd)
    return uri, ids


@pytest.fixture(scope="module")
def mlruns_folder(tmp_path_factory, artifact_file):
    """An mlruns folder written by MLflow's (deprecated) file store, then moved elsewhere as
    an rsync to a cluster would: its meta.yaml files keep the old absolute artifact paths."""
    folder = tmp_path_factory.mktemp("mlflow_files")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        ids = fill_mlflow(str(folder / "mlruns"), artifact_file)
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]
    moved = folder / "moved-mlruns"
    shutil.move(str(folder / "mlruns"), str(moved))
    return str(moved), ids


# -- comparing with MLflow's view ---------------------------------------------------------------
def _same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or (
        a == b)


def assert_matches_mlflow(source_uri: str, store_uri: str) -> None:
    """Every experiment, run, history and registry entry MLflow sees at ``source_uri`` is in
    the store, with the same ids and values."""
    from mlflow import MlflowClient

    theirs = MlflowClient(tracking_uri=source_uri, registry_uri=source_uri)
    ours = TrackingClient(store_uri)
    for experiment in theirs.search_experiments(view_type=3):
        mine = ours.get_experiment(experiment.experiment_id)
        assert (mine.name, mine.lifecycle_stage, mine.creation_time, mine.tags) == (
            experiment.name, experiment.lifecycle_stage, experiment.creation_time,
            experiment.tags)
        for run in theirs.search_runs([experiment.experiment_id], run_view_type=3):
            got = ours.get_run(run.info.run_id)
            for name in ("run_id", "experiment_id", "run_name", "status", "start_time",
                         "end_time", "lifecycle_stage", "user_id"):
                assert getattr(got.info, name) == getattr(run.info, name), name
            assert got.info.parent_run_id == run.data.tags.get("mlflow.parentRunId")
            assert got.data.params == run.data.params
            assert got.data.tags == run.data.tags
            assert got.data.metrics.keys() == run.data.metrics.keys()
            for key, value in run.data.metrics.items():
                assert _same(got.data.metrics[key], value), key
                history = sorted((m.step, m.timestamp, m.value)
                                 for m in theirs.get_metric_history(run.info.run_id, key))
                mine_history = sorted((m.step, m.timestamp, m.value)
                                      for m in ours.get_metric_history(run.info.run_id, key))
                assert len(history) == len(mine_history)
                assert all(all(_same(x, y) for x, y in zip(a, b, strict=True))
                           for a, b in zip(history, mine_history, strict=True)), key
    for model in theirs.search_registered_models():
        mine = ours.get_registered_model(model.name)
        assert (mine.description, mine.tags, mine.creation_timestamp) == (
            model.description, model.tags, model.creation_timestamp)
        # MLflow's entity holds the version as text, sparktrack's as a number.
        assert mine.aliases == {alias: int(v) for alias, v in model.aliases.items()}
        for found in theirs.search_model_versions(f"name = '{model.name}'"):
            # MLflow's search leaves aliases out (mlflow#9783): its get has them.
            version = theirs.get_model_version(model.name, found.version)
            got = ours.get_model_version(model.name, version.version)
            for name in ("current_stage", "source", "run_id", "tags", "description",
                         "creation_timestamp", "last_updated_timestamp", "aliases"):
                assert getattr(got, name) == getattr(version, name), name


# -- SQLite --------------------------------------------------------------------------------------
def test_import_from_sqlite_matches_mlflow(mlflow_db, store_uri):
    uri, ids = mlflow_db
    summary = import_mlflow(uri, store_uri=store_uri, progress=False)

    assert (summary.experiments, summary.runs, summary.models, summary.versions,
            summary.aliases) == (3, 5, 1, 3, 1)  # Default, churn, old-experiment
    assert summary.metric_rows == 6 + 3 + 2 and summary.artifact_files == 1
    assert_matches_mlflow(uri, store_uri)
    client = TrackingClient(store_uri)
    parent = client.get_run(ids["parent"])
    assert parent.info.parent_run_id is None
    assert {client.get_run(c).info.parent_run_id for c in ids["children"]} == {ids["parent"]}
    assert client.get_run(ids["deleted"]).info.lifecycle_stage == "deleted"
    assert client.get_experiment(ids["old"]).lifecycle_stage == "deleted"
    # The artifact is copied into the store, and the registry points at the copy.
    assert [f.path for f in client.list_artifacts(ids["parent"], "reports")] == [
        "reports/report.txt"]
    downloaded = client.download_artifacts(ids["parent"], "reports/report.txt",
                                           str(os.path.dirname(store_uri)))
    assert open(downloaded).read() == "auc 0.81\n"
    location = client.get_model_version_download_uri("churn-model", 2)
    assert location == os.path.join(parent.info.artifact_uri, "reports")
    assert location.startswith(client.store_root)
    # The deleted version is gone but its number is not given again; the alias resolves.
    with pytest.raises(NotFoundError):
        client.get_model_version("churn-model", 3)
    assert client.get_model_version_by_alias("churn-model", "champion").version == 2
    assert client.create_model_version("churn-model", "runs:/" + ids["parent"] + "/reports"
                                       ).version == 4
    # Search sees the imported runs like logged ones (metric summaries were written).
    found = client.search_runs([ids["experiment"]], "metrics.loss < 0.2")
    assert [r.info.run_id for r in found] == [ids["parent"]]
    assert found[0].data.metrics["loss"] == pytest.approx(1 / 6)  # latest: the greatest step


def test_import_again_copies_nothing_twice(mlflow_db, store_uri):
    uri, ids = mlflow_db
    import_mlflow(uri, store_uri=store_uri, progress=False)
    again = import_mlflow(uri, store_uri=store_uri, progress=False)

    assert (again.experiments, again.runs, again.params, again.metric_rows, again.models,
            again.versions, again.aliases, again.artifact_files) == (0,) * 8
    assert (again.experiments_skipped, again.runs_skipped, again.models_skipped,
            again.versions_skipped) == (3, 5, 1, 3)
    assert again.runs_changed == []
    assert_matches_mlflow(uri, store_uri)  # histories not doubled, tags not repeated
    client = TrackingClient(store_uri)
    assert len(client.get_metric_history(ids["parent"], "loss")) == 7


def test_a_run_changed_in_mlflow_since_is_kept_and_reported(tmp_path, artifact_file, store_uri):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    theirs = MlflowClient(tracking_uri=uri)
    experiment = theirs.create_experiment("live")
    run = theirs.create_run(experiment, run_name="still-running")
    import_mlflow(uri, store_uri=store_uri, progress=False)
    theirs.log_metric(run.info.run_id, "late", 1.0)
    theirs.set_terminated(run.info.run_id, "FINISHED")

    again = import_mlflow(uri, store_uri=store_uri, progress=False)

    assert again.runs_changed == [run.info.run_id]
    assert any(run.info.run_id in line for line in again.lines())
    kept = TrackingClient(store_uri).get_run(run.info.run_id)
    assert kept.info.status == "RUNNING" and "late" not in kept.data.metrics


def test_an_experiment_whose_name_the_store_has_receives_the_runs(mlflow_db, store_uri):
    uri, ids = mlflow_db
    client = TrackingClient(store_uri)
    mine = client.create_experiment("churn")  # a store id differs from MLflow's "1"

    summary = import_mlflow(uri, store_uri=store_uri, progress=False)

    assert summary.experiment_ids[ids["experiment"]] == mine != ids["experiment"]
    assert client.get_run(ids["parent"]).info.experiment_id == mine
    assert any(f"{ids['experiment']} -> {mine}" in line for line in summary.lines())


# -- the mlruns folder ---------------------------------------------------------------------------
def test_import_from_an_mlruns_folder_matches_mlflow(mlruns_folder, store_uri):
    folder, ids = mlruns_folder
    summary = import_mlflow(folder, store_uri=store_uri, progress=False)

    assert (summary.runs, summary.models, summary.versions, summary.artifact_files) == (5, 1, 3, 1)
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_matches_mlflow(folder, store_uri)
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]
    client = TrackingClient(store_uri)
    # The folder moved: the artifacts are found beside each run's meta.yaml.
    assert [f.path for f in client.list_artifacts(ids["parent"], "reports")] == [
        "reports/report.txt"]
    assert client.get_run(ids["old_run"]).info.experiment_id == ids["old"]
    assert client.get_experiment(ids["old"]).lifecycle_stage == "deleted"
    assert import_mlflow(folder, store_uri=store_uri, progress=False).runs == 0


# -- bad sources -----------------------------------------------------------------------------------
@pytest.mark.parametrize("make_uri, says", [
    (lambda tmp: f"sqlite:///{tmp}/missing.db", "does not exist"),
    (lambda tmp: "http://localhost:5000", "tracking server"),
    (lambda tmp: f"{tmp}/no-such-folder", "not a folder"),
    (lambda tmp: str(tmp), "not an mlruns folder"),
    (lambda tmp: _not_mlflow_db(tmp), "not an MLflow tracking database"),
    (lambda tmp: "", "Invalid MLflow tracking URI"),
])
def test_a_bad_source_is_a_typed_error_naming_it(tmp_path, store_uri, make_uri, says):
    uri = make_uri(tmp_path)
    with pytest.raises(InvalidInputError) as caught:
        import_mlflow(uri, store_uri=store_uri, progress=False)
    message = str(caught.value)
    assert says in message and repr(uri)[1:-1][:100] in message
    assert "sqlite:///" in message or "mlruns" in message  # how to fix it
    assert not os.path.exists(f"{tmp_path}/missing.db")  # nothing created on the way


def _not_mlflow_db(tmp) -> str:
    import sqlite3

    path = f"{tmp}/other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    return f"sqlite:///{path}"


# -- the command line ----------------------------------------------------------------------------
def test_the_cli_imports_with_a_progress_bar_and_a_summary(mlflow_db, store_uri, capsys):
    uri, ids = mlflow_db
    assert main(["import", "--from", uri, "--store", store_uri]) == 0
    out, err = capsys.readouterr()
    assert "runs                 5" in out and "versions             3" in out
    assert "importing runs [" in err and "5/5" in err
    assert TrackingClient(store_uri).get_run(ids["parent"]).info.run_name == "cv-parent"

    assert main(["--store", store_uri, "import", "--from", uri, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "skipped (already there) 5" in out and err == ""


def test_the_cli_reports_a_bad_source_in_one_line(tmp_path, store_uri, capsys):
    assert main(["import", "--from", f"sqlite:///{tmp_path}/nope.db", "--store", store_uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sparktrack: error: No MLflow database at") and err.count("\n") == 1


def test_deleted_runs_are_found_with_their_lifecycle(mlflow_db, store_uri):
    uri, ids = mlflow_db
    import_mlflow(uri, store_uri=store_uri, progress=False)
    client = TrackingClient(store_uri)
    deleted = client.search_runs([ids["experiment"]], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids["deleted"]]
    assert deleted[0].info.deleted_time is not None


def test_imported_runs_take_new_logging_like_logged_ones(mlflow_db, store_uri):
    uri, ids = mlflow_db
    import_mlflow(uri, store_uri=store_uri, progress=False)
    client = TrackingClient(store_uri)

    client.log_metric(ids["parent"], "loss", 0.01, step=10)
    client.log_param(ids["parent"], "new", "1")
    with pytest.raises(InvalidInputError):  # the imported value is the param's value
        client.log_param(ids["parent"], "numFolds", "5")

    run = client.get_run(ids["parent"])
    assert run.data.metrics["loss"] == 0.01 and run.data.params["new"] == "1"
    assert len(client.get_metric_history(ids["parent"], "loss")) == 8
    found = client.search_runs([ids["experiment"]], "metrics.loss < 0.02")
    assert [r.info.run_id for r in found] == [ids["parent"]]

"""Scripts written for MLflow pass arguments by position: every name sparktrack shares with MLflow
takes MLflow's positional parameters in MLflow's order, and sparktrack-only options by keyword.
"""

from __future__ import annotations

import inspect
import os

import pytest
from deltalake import DeltaTable

import sparktrack
from sparktrack import Metric, Param, RunTag, TrackingClient, ViewType
from sparktrack.config import Settings
from sparktrack.errors import InvalidInputError
from sparktrack._store import open_store
from sparktrack._store.schemas import METRICS

# Shared names whose parameters are not MLflow's on purpose.
NOT_COMPARED = {
    # Spark ML's autologging options, all keyword-only; MLflow's first positional parameters
    # (log_input_examples, log_model_signatures) mean nothing for Spark ML models.
    "autolog",
    # Takes a Spark DataFrame and a name, not an mlflow.data Dataset.
    "log_input",
}


def _positional(function) -> list[str]:
    return [
        p.name for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name != "self"
    ]


def _mismatch(ours, theirs) -> str | None:
    """Why ``ours`` would break an MLflow call of ``theirs`` by position (None when it would not)."""
    our_positional, their_positional = _positional(ours), _positional(theirs)
    if our_positional != their_positional[: len(our_positional)]:
        return f"positional {our_positional}, MLflow's start {their_positional}"
    keyword_only = [
        name for name in inspect.signature(ours).parameters
        if name in their_positional and name not in our_positional
    ]
    if keyword_only:
        return f"{keyword_only} keyword-only, MLflow takes them by position {their_positional}"
    return None


def _shared_functions(mlflow) -> dict[str, tuple]:
    return {
        name: (getattr(sparktrack, name), getattr(mlflow, name))
        for name in sparktrack.__all__
        if name not in NOT_COMPARED and inspect.isfunction(getattr(sparktrack, name))
        and callable(getattr(mlflow, name, None))
    }


def _shared_client_methods(mlflow) -> dict[str, tuple]:
    return {
        name: (getattr(TrackingClient, name), getattr(mlflow.MlflowClient, name))
        for name in dir(TrackingClient)
        if not name.startswith("_") and callable(getattr(TrackingClient, name))
        and callable(getattr(mlflow.MlflowClient, name, None))
    }


def test_shared_names_take_mlflows_positional_parameters():
    mlflow = pytest.importorskip("mlflow")
    functions, methods = _shared_functions(mlflow), _shared_client_methods(mlflow)
    # The comparison covers the calls scripts make most (guards against an empty comparison).
    assert {"start_run", "log_metric", "log_metrics", "log_artifact"} <= functions.keys()
    assert {"set_terminated", "log_batch", "log_metric", "create_run"} <= methods.keys()
    problems = {
        f"sparktrack.{name}": why for name, (ours, theirs) in functions.items()
        if (why := _mismatch(ours, theirs))
    } | {
        f"TrackingClient.{name}": why for name, (ours, theirs) in methods.items()
        if (why := _mismatch(ours, theirs))
    }
    assert problems == {}


def test_the_comparison_catches_a_keyword_only_parameter_and_a_reordering():
    def theirs(run_id, status=None, end_time=None): ...

    def keyword_only(run_id, *, status=None, end_time=None): ...

    def reordered(run_id, end_time=None, status=None): ...

    def own_option_by_keyword(run_id, status=None, *, descendants=True): ...

    assert "keyword-only" in _mismatch(keyword_only, theirs)
    assert "positional" in _mismatch(reordered, theirs)
    assert _mismatch(own_option_by_keyword, theirs) is None


# -- MLflow calls by position, on the client ------------------------------------------------------
def test_set_terminated_by_position(store_uri):
    client = TrackingClient(store_uri)
    killed = client.create_run("0").info.run_id
    client.set_terminated(killed, "KILLED")
    ended = client.create_run("0").info.run_id
    client.set_terminated(ended, "FAILED", 1_700_000_000_000)
    default = client.create_run("0").info.run_id
    client.set_terminated(default)
    assert client.get_run(killed).info.status == "KILLED"
    assert (client.get_run(ended).info.status, client.get_run(ended).info.end_time) == (
        "FAILED", 1_700_000_000_000,
    )
    assert client.get_run(default).info.status == "FINISHED"


def test_client_logging_by_position(store_uri):
    client = TrackingClient(store_uri)
    run_id = client.create_run("0").info.run_id
    client.log_batch(run_id, [Metric("m", 1.0, 1_000, 2)], [Param("p", "1")], [RunTag("t", "v")])
    client.log_metric(run_id, "n", 3.0, 2_000, 7)
    client.log_param(run_id, "q", "2", False)
    client.set_tag(run_id, "u", "w", False)
    run = client.get_run(run_id)
    assert run.data.metrics == {"m": 1.0, "n": 3.0}
    assert run.data.params == {"p": "1", "q": "2"}
    assert run.data.tags["t"] == "v" and run.data.tags["u"] == "w"
    [point] = client.get_metric_history(run_id, "n")
    assert (point.timestamp, point.step) == (2_000, 7)


def test_client_experiments_and_runs_by_position(store_uri, tmp_path):
    client = TrackingClient(store_uri)
    location = str(tmp_path / "art")
    experiment_id = client.create_experiment("pos", location, {"team": "ml"})
    experiment = client.get_experiment(experiment_id)
    assert (experiment.artifact_location, experiment.tags) == (location, {"team": "ml"})
    run = client.create_run(experiment_id, 1_600_000_000_000, {"k": "v"}, "named")
    info = client.get_run(run.info.run_id).info
    assert (info.start_time, info.run_name) == (1_600_000_000_000, "named")
    client.update_run(run.info.run_id, "FAILED", "renamed")
    info = client.get_run(run.info.run_id).info
    assert (info.status, info.run_name) == ("FAILED", "renamed")
    client.delete_experiment(client.create_experiment("gone"))
    names = {e.name for e in client.search_experiments(ViewType.DELETED_ONLY, 10)}
    assert names == {"gone"}


# -- MLflow calls by position, on the module ------------------------------------------------------
def test_fluent_logging_by_position(tracking, tmp_path):
    with sparktrack.start_run() as run:
        sparktrack.log_metric("loss", 0.5, 3, None, 1_700_000_000_000)
        sparktrack.log_metrics({"acc": 0.9}, 4, None, None, 1_700_000_000_001)
        sparktrack.log_param("p", 1, None)
        sparktrack.log_params({"q": 2}, None)
        sparktrack.set_tag("t", "v", None)
        sparktrack.set_tags({"u": "w"}, None)
    run_id = run.info.run_id
    [loss] = sparktrack.get_metric_history("loss", run_id=run_id)
    [acc] = sparktrack.get_metric_history("acc", run_id=run_id)
    assert (loss.step, loss.timestamp, acc.step, acc.timestamp) == (
        3, 1_700_000_000_000, 4, 1_700_000_000_001,
    )
    data = sparktrack.get_run(run_id).data
    assert data.params == {"p": "1", "q": "2"}
    assert (data.tags["t"], data.tags["u"]) == ("v", "w")


def test_fluent_calls_name_a_run_that_is_not_active(tracking, tmp_path):
    """MLflow's ``run_id`` argument logs to that run without making it active."""
    with sparktrack.start_run() as target:
        pass
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "g.txt").write_text("y")
    run_id = target.info.run_id
    sparktrack.log_metric("m", 1.0, run_id=run_id)
    sparktrack.log_metrics({"n": 2.0}, 0, None, run_id)
    sparktrack.log_params({"p": 1}, None, run_id)
    sparktrack.log_artifact(str(tmp_path / "f.txt"), "a", run_id)
    sparktrack.log_artifacts(str(tmp_path / "dir"), "b", run_id)
    sparktrack.log_text("t", "c/t.txt", run_id)
    sparktrack.log_dict({"k": 1}, "c/d.json", run_id)
    assert sparktrack.active_run() is None
    run = sparktrack.get_run(run_id)
    assert run.data.metrics == {"m": 1.0, "n": 2.0} and run.data.params == {"p": "1"}
    client = TrackingClient()
    files = {f.path for folder in ("a", "b", "c") for f in client.list_artifacts(run_id, folder)}
    assert files == {"a/f.txt", "b/g.txt", "c/t.txt", "c/d.json"}


def test_start_run_takes_the_parent_by_position(tracking):
    with sparktrack.start_run() as parent:
        pass
    with sparktrack.start_run(None, None, "child", False, parent.info.run_id, {"k": "v"}) as child:
        pass
    tags = sparktrack.get_run(child.info.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["k"] == "v"
    assert sparktrack.get_run(child.info.run_id).info.run_name == "child"


# -- synchronous ---------------------------------------------------------------------------------
def _metric_rows_on_disk(store_uri: str) -> int:
    path = os.path.join(store_uri, METRICS.name)
    return DeltaTable(path).to_pyarrow_table().num_rows if DeltaTable.is_deltatable(path) else 0


def test_synchronous_true_commits_before_returning(store_uri):
    open_store(store_uri, settings=Settings(flush_interval_seconds=3600.0))
    client = TrackingClient(store_uri)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "buffered", 1.0)
    client.log_metric(run_id, "buffered", 2.0, synchronous=False)
    before = _metric_rows_on_disk(store_uri)
    client.log_metric(run_id, "committed", 3.0, synchronous=True)
    assert (before, _metric_rows_on_disk(store_uri)) == (0, 3)


def test_a_timestamp_in_synchronous_position_is_refused_before_writing(tracking):
    """``log_metric(key, value, step, timestamp)`` was sparktrack's order; MLflow's 4th
    positional parameter is ``synchronous``, so an old call must not log a wrong point."""
    with sparktrack.start_run() as run:
        with pytest.raises(InvalidInputError, match=r"synchronous .*1700000000000.*timestamp="):
            sparktrack.log_metric("m", 1.0, 0, 1_700_000_000_000)
        with pytest.raises(InvalidInputError, match="synchronous"):
            TrackingClient().log_batch(run.info.run_id, [Metric("m", 1.0, 0, 0)], (), (), "yes")
    assert sparktrack.get_metric_history("m", run_id=run.info.run_id) == []

"""Params, metrics, tags and log_batch: what is stored and what is refused."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from deltalake import DeltaTable

import sparktrack
from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.errors import (
    InvalidInputError,
    InvalidKeyError,
    LimitExceededError,
    ParamOverwriteError,
)

MAX_DOUBLE = 1.7976931348623157e308


def _table_rows(store_uri: str, table: str, run_id: str) -> list[dict]:
    """Rows of a table for one run, read straight from the Delta table on disk."""
    sparktrack.flush()
    try:
        rows = DeltaTable(f"{store_uri}/{table}").to_pyarrow_table().to_pylist()
    except Exception:  # noqa: BLE001 - table not created yet: nothing was written
        return []
    return [row for row in rows if row["run_id"] == run_id]


# -- params --------------------------------------------------------------------------------------
def test_log_param_returns_the_value_and_stores_text(tracking):
    with sparktrack.start_run() as run:
        assert sparktrack.log_param("lr", 0.01) == 0.01
        sparktrack.log_param("layers", [64, 32])
        sparktrack.log_param("none", None)
    assert sparktrack.get_run(run.info.run_id).data.params == {
        "lr": "0.01", "layers": "[64, 32]", "none": "None",
    }


def test_relogging_a_param_with_the_same_value_is_a_no_op(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_param("alpha", 0.5)
        sparktrack.log_param("alpha", 0.5)
        sparktrack.log_params({"alpha": "0.5", "beta": 1})
    assert sparktrack.get_run(run.info.run_id).data.params == {"alpha": "0.5", "beta": "1"}
    rows = _table_rows(tracking, "params", run.info.run_id)
    assert sorted(row["key"] for row in rows) == ["alpha", "beta"]


def test_changing_a_param_is_refused_naming_the_key(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_param("alpha", 0.5)
        with pytest.raises(ParamOverwriteError) as caught:
            sparktrack.log_param("alpha", 0.7)
        message = str(caught.value)
        assert "'alpha'" in message and "'0.5'" in message and "'0.7'" in message
        assert isinstance(caught.value, ValueError)
    assert sparktrack.get_run(run.info.run_id).data.params == {"alpha": "0.5"}
    assert [row["value"] for row in _table_rows(tracking, "params", run.info.run_id)] == ["0.5"]


def test_a_changed_param_in_log_params_writes_none_of_them(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_param("alpha", 1)
        with pytest.raises(ParamOverwriteError, match="'alpha'"):
            sparktrack.log_params({"beta": 2, "alpha": 3, "gamma": 4})
    assert sparktrack.get_run(run.info.run_id).data.params == {"alpha": "1"}


def test_params_are_write_once_across_processes_views(tracking):
    """A second client instance (fresh state, e.g. after a restart) still enforces write-once."""
    with sparktrack.start_run() as run:
        sparktrack.log_param("k", "v1")
    sparktrack.flush()
    from sparktrack._store import TrackingStore

    fresh = TrackingStore(tracking)
    fresh.log_batch(run.info.run_id, params=[Param("k", "v1")])
    with pytest.raises(ParamOverwriteError, match="'k'"):
        fresh.log_batch(run.info.run_id, params=[Param("k", "v2")])


# -- metrics -------------------------------------------------------------------------------------
def test_metrics_with_step_and_timestamp(tracking):
    before = int(time.time() * 1000)
    with sparktrack.start_run() as run:
        sparktrack.log_metric("loss", 0.5, step=3, timestamp=1_700_000_000_000)
        sparktrack.log_metric("acc", 0.9)
        sparktrack.log_metrics({"f1": 0.8, "auc": 0.85}, step=7)
    after = int(time.time() * 1000)
    client = TrackingClient(tracking)
    (loss,) = client.get_metric_history(run.info.run_id, "loss")
    assert loss == Metric("loss", 0.5, 1_700_000_000_000, 3)
    (acc,) = client.get_metric_history(run.info.run_id, "acc")
    assert acc.step == 0 and before <= acc.timestamp <= after
    (f1,) = client.get_metric_history(run.info.run_id, "f1")
    (auc,) = client.get_metric_history(run.info.run_id, "auc")
    assert (f1.step, auc.step) == (7, 7) and f1.timestamp == auc.timestamp
    assert client.get_metric_history(run.info.run_id, "never-logged") == []


def test_metric_history_keeps_every_point_in_step_order(tracking):
    with sparktrack.start_run() as run:
        for step in (3, 0, 2, 1):
            sparktrack.log_metric("loss", 1.0 / (step + 1), step=step)
        sparktrack.flush()  # history spans several commits
        sparktrack.log_metric("loss", 0.1, step=4)
        sparktrack.log_metric("loss", 0.05, step=4, timestamp=int(time.time() * 1000) + 10)
    history = sparktrack.get_metric_history("loss", run_id=run.info.run_id)
    assert [(m.step, m.value) for m in history] == [
        (0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25), (4, 0.1), (4, 0.05),
    ]
    assert all(m.key == "loss" for m in history)


def test_latest_value_is_the_greatest_step_then_timestamp_then_value(tracking):
    client = TrackingClient(tracking)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "by_step", 1.0, step=5, timestamp=100)
    client.log_metric(run_id, "by_step", 9.0, step=2, timestamp=200)  # logged later, lower step
    client.log_metric(run_id, "by_time", 1.0, step=1, timestamp=300)
    client.log_metric(run_id, "by_time", 9.0, step=1, timestamp=200)
    client.log_metric(run_id, "by_value", 3.0, step=1, timestamp=100)
    client.log_metric(run_id, "by_value", 2.0, step=1, timestamp=100)
    assert client.get_run(run_id).data.metrics == {"by_step": 1.0, "by_time": 1.0, "by_value": 3.0}


def test_latest_value_holds_across_commits(tracking):
    """The summary of one commit must not override a greater step committed earlier."""
    client = TrackingClient(tracking)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 10.0, step=10, timestamp=1)
    client.flush()
    client.log_metric(run_id, "m", 1.0, step=1, timestamp=2)
    client.flush()
    client.log_metric(run_id, "m", 5.0, step=10, timestamp=1)
    assert client.get_run(run_id).data.metrics == {"m": 10.0}
    client.log_metric(run_id, "m", 11.0, step=11, timestamp=0)
    assert client.get_run(run_id).data.metrics == {"m": 11.0}


def test_nan_is_kept_and_infinities_are_clamped(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_metric("nan", float("nan"))
        sparktrack.log_metric("pos", float("inf"), step=0)
        sparktrack.log_metric("neg", -math.inf, step=0)
        sparktrack.log_metrics({"batch_inf": np.inf})
    metrics = sparktrack.get_run(run.info.run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert metrics["pos"] == MAX_DOUBLE == 1.7976931348623157e308
    assert metrics["neg"] == -MAX_DOUBLE
    assert metrics["batch_inf"] == MAX_DOUBLE
    (point,) = sparktrack.get_metric_history("nan", run_id=run.info.run_id)
    assert math.isnan(point.value)
    (point,) = sparktrack.get_metric_history("neg", run_id=run.info.run_id)
    assert point.value == -MAX_DOUBLE


def test_numpy_numbers_are_accepted(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_metric("f32", np.float32(0.5), step=np.int64(2))
        sparktrack.log_metric("i64", np.int64(7))
    (point,) = sparktrack.get_metric_history("f32", run_id=run.info.run_id)
    assert (point.value, point.step) == (0.5, 2)
    assert sparktrack.get_run(run.info.run_id).data.metrics["i64"] == 7.0


@pytest.mark.parametrize("value", ["0.5", None, True, [1.0]])
def test_metric_values_must_be_numbers(tracking, value):
    with sparktrack.start_run() as run:
        with pytest.raises(InvalidInputError, match="'loss'"):
            sparktrack.log_metric("loss", value)
    assert sparktrack.get_run(run.info.run_id).data.metrics == {}


@pytest.mark.parametrize(("step", "timestamp"), [(1.5, None), ("1", None), (0, 1.5), (0, "now")])
def test_metric_step_and_timestamp_must_be_integers(tracking, step, timestamp):
    with sparktrack.start_run():
        with pytest.raises(InvalidInputError, match="'loss'"):
            sparktrack.log_metric("loss", 1.0, step=step, timestamp=timestamp)


# -- tags ----------------------------------------------------------------------------------------
def test_set_overwrite_and_delete_tags(tracking):
    with sparktrack.start_run() as run:
        sparktrack.set_tag("stage", "dev")
        sparktrack.set_tags({"owner": "ana", "priority": 2})
        sparktrack.set_tag("stage", "prod")
        sparktrack.delete_tag("owner")
    tags = sparktrack.get_run(run.info.run_id).data.tags
    assert tags["stage"] == "prod" and tags["priority"] == "2"
    assert "owner" not in tags


def test_a_deleted_tag_can_be_set_again(tracking):
    with sparktrack.start_run() as run:
        sparktrack.set_tag("t", "1")
        sparktrack.flush()
        sparktrack.delete_tag("t")
        sparktrack.flush()
        sparktrack.set_tag("t", "2")
    assert sparktrack.get_run(run.info.run_id).data.tags["t"] == "2"


def test_deleting_a_missing_tag_is_an_error_naming_it(tracking):
    with sparktrack.start_run():
        with pytest.raises(InvalidInputError, match="'nope'"):
            sparktrack.delete_tag("nope")


def test_logging_without_an_active_run_starts_one(tracking):
    sparktrack.log_metric("m", 1.0)
    run = sparktrack.active_run()
    assert run is not None
    sparktrack.set_tag("t", "v")
    sparktrack.end_run()
    result = sparktrack.get_run(run.info.run_id)
    assert result.data.metrics == {"m": 1.0} and result.data.tags["t"] == "v"


# -- log_batch -----------------------------------------------------------------------------------
def test_log_batch_stores_everything(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_batch(
            metrics=[Metric("m", float(i), 1000 + i, i) for i in range(5)],
            params=[Param("p", "1"), Param("q", 2)],
            tags=[RunTag("t", "x")],
        )
    result = sparktrack.get_run(run.info.run_id)
    assert result.data.metrics == {"m": 4.0}
    assert result.data.params == {"p": "1", "q": "2"}
    assert result.data.tags["t"] == "x"
    assert len(sparktrack.get_metric_history("m", run_id=run.info.run_id)) == 5


_GOOD_METRICS = [Metric("m", 1.0, 1000, 0), Metric("m", 2.0, 1001, 1)]
_GOOD_PARAMS = [Param("p", "1")]
_GOOD_TAGS = [RunTag("t", "x")]


@pytest.mark.parametrize(
    ("bad", "error", "named"),
    [
        ({"metrics": [Metric("bad key!", 1.0, 0, 0)]}, InvalidKeyError, "bad key!"),
        ({"metrics": [Metric("m2", "high", 0, 0)]}, InvalidInputError, "m2"),
        ({"params": [Param("p2", "x" * 6001)]}, LimitExceededError, "p2"),
        ({"params": [Param("p2", "a"), Param("p2", "b")]}, ParamOverwriteError, "p2"),
        ({"params": [Param("p0", "changed")]}, ParamOverwriteError, "p0"),
        ({"tags": [RunTag("/abs", "v")]}, InvalidKeyError, "/abs"),
        ({"tags": [RunTag("t2", "v" * 8001)]}, LimitExceededError, "t2"),
    ],
)
def test_log_batch_is_all_or_nothing(tracking, bad, error, named):
    client = TrackingClient(tracking)
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "p0", "original")
    client.flush()
    before = client.get_run(run_id).data
    batch = {
        "metrics": _GOOD_METRICS + bad.get("metrics", []),
        "params": _GOOD_PARAMS + bad.get("params", []),
        "tags": _GOOD_TAGS + bad.get("tags", []),
    }
    with pytest.raises(error, match=named.replace("!", ".")):
        client.log_batch(run_id, **batch)
    client.flush()
    after = client.get_run(run_id).data
    assert after == before
    assert after.metrics == {} and after.params == {"p0": "original"} and "t" not in after.tags
    assert _table_rows(tracking, "metrics", run_id) == []
    assert [row["key"] for row in _table_rows(tracking, "params", run_id)] == ["p0"]
    # The run is still usable afterwards, and the same good batch goes through.
    client.log_batch(run_id, metrics=_GOOD_METRICS, params=_GOOD_PARAMS, tags=_GOOD_TAGS)
    assert client.get_run(run_id).data.metrics == {"m": 2.0}

"""The data source over time: time travel (versionAsOf/timestampAsOf) and streaming reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from sparktrack.maintenance import compact

pytestmark = pytest.mark.spark


def _version(uri, table):
    return DeltaTable(f"{uri}/{table}").version()


def test_time_travel_by_version_and_timestamp(spark, store_uri):
    client = TrackingClient(store_uri)
    experiment = client.create_experiment("travel")
    first = client.create_run(experiment, run_name="first").info.run_id
    for step in range(3):
        client.log_metric(first, "loss", 1.0 - step * 0.1, step=step)
    client.log_param(first, "lr", "0.1")
    client.flush()
    runs_version, metrics_version = _version(store_uri, "runs"), _version(store_uri, "metrics")
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    for step in range(3, 5):
        client.log_metric(first, "loss", 0.2, step=step)
    second = client.create_run(experiment, run_name="second").info.run_id
    client.log_metric(second, "loss", 5.0, step=0)
    client.flush()

    def runs(**options):
        frame = spark.read.format("sparktrack")
        for key, value in options.items():
            frame = frame.option(key, value)
        return {r.run_id: r for r in frame.load(store_uri).collect()}

    now = runs()
    assert set(now) == {first, second} and now[first].metrics == {"loss": 0.2}
    for past in (runs(versionAsOf=runs_version), runs(timestampAsOf=between.isoformat())):
        assert set(past) == {first}
        assert past[first].metrics == {"loss": 1.0 - 2 * 0.1}
        assert past[first].params == {"lr": "0.1"}
    old_points = (
        spark.read.format("sparktrack").option("table", "metrics")
        .option("versionAsOf", metrics_version).load(store_uri)
    )
    assert sorted(r.step for r in old_points.collect()) == [0, 1, 2]
    assert runs(timestampAsOf="2001-01-01") == {}  # before the store existed
    with pytest.raises(Exception, match="has no version 999"):
        runs(versionAsOf=999)


def test_stream_of_metric_points_follows_new_commits(spark, store_uri, tmp_path):
    client = TrackingClient(store_uri)
    experiment = client.create_experiment("live")
    run_id = client.create_run(experiment, run_name="training").info.run_id
    for step in range(4):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.flush()

    stream = (
        spark.readStream.format("sparktrack").option("table", "metrics")
        .option("experiment_ids", experiment).load(store_uri)
    )
    query = (
        stream.writeStream.format("memory").queryName("live_points")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(processingTime="200 milliseconds").start()
    )
    try:
        query.processAllAvailable()
        assert sorted(r.step for r in spark.table("live_points").collect()) == [0, 1, 2, 3]
        for step in range(4, 7):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        client.flush()
        # Compaction re-adds the same rows (dataChange=false): they must not arrive twice.
        compact(store_uri, tables=["metrics"])
        query.processAllAvailable()
        rows = spark.table("live_points").collect()
        assert sorted(r.step for r in rows) == list(range(7))
        assert {r.run_id for r in rows} == {run_id}
    finally:
        query.stop()

"""Maintenance: compaction, checkpoints, vacuum, runs_latest; safe beside a live writer."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
import time

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from sparktrack.maintenance import Maintenance, materialize_runs_latest
from sparktrack._store.schemas import RUNS_LATEST

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _small_commits(uri: str, *, runs: int = 3, commits: int = 4) -> TrackingClient:
    client = TrackingClient(uri)
    experiment = client.create_experiment("maint")
    ids = [client.create_run(experiment, run_name=f"r{i}").info.run_id for i in range(runs)]
    for commit in range(commits):
        for run_id in ids:
            client.log_metric(run_id, "loss", 1.0 / (commit + 1), step=commit)
        client.flush()
    client.delete_run(ids[-1])
    for run_id in ids[:-1]:
        client.set_terminated(run_id)
    client.flush()
    return client


def _stored_points(uri: str) -> list[tuple]:
    table = DeltaTable(f"{uri}/metrics").to_pyarrow_table()
    return sorted(zip(*(table.column(c).to_pylist() for c in ("run_id", "key", "step"))))


def test_maintenance_job_compacts_vacuums_and_materializes(store_uri, capsys):
    sys.path.insert(0, ROOT)
    from jobs.maintain import main

    _small_commits(store_uri)
    before = _stored_points(store_uri)
    files_before = len(DeltaTable(f"{store_uri}/metrics").file_uris())
    assert main(["--store", store_uri, "--no-vacuum", "--no-materialize"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["compacted"]["metrics"]["numFilesRemoved"] == files_before
    live = DeltaTable(f"{store_uri}/metrics").file_uris()
    assert len(live) == 1 and _stored_points(store_uri) == before
    # The old files are still on disk: a plain parquet read would count every point twice.
    on_disk = glob.glob(f"{store_uri}/metrics/experiment_id=*/*.parquet")
    assert sum(pq.read_metadata(f).num_rows for f in on_disk) == 2 * len(before)

    report = Maintenance(store_uri).run(steps=("checkpoint", "vacuum", "materialize"),
                                        retention_hours=0)
    assert report.vacuumed["metrics"] == files_before
    assert sorted(glob.glob(f"{store_uri}/metrics/experiment_id=*/*.parquet")) == sorted(live)
    assert report.checkpoints["metrics"] >= 1
    assert glob.glob(f"{store_uri}/metrics/_delta_log/*.checkpoint.parquet")
    latest = DeltaTable(f"{store_uri}/runs_latest").to_pyarrow_table()
    assert latest.schema.equals(RUNS_LATEST.schema)
    assert report.runs_latest_rows == latest.num_rows == 3
    assert sorted(pc.unique(latest.column("lifecycle_stage")).to_pylist()) == ["active", "deleted"]


@pytest.mark.spark
def test_runs_latest_equals_the_data_source_runs_table(spark, store_uri):
    from chispa import assert_df_equality

    _small_commits(store_uri, runs=4, commits=2)
    materialize_runs_latest(store_uri)
    # Read as any plain Delta reader would: the snapshot's live files.
    plain = spark.read.option("basePath", f"{store_uri}/runs_latest").parquet(
        *DeltaTable(f"{store_uri}/runs_latest").file_uris()
    )
    # Partition discovery guesses a number from the folder names: Delta readers know better.
    plain = plain.withColumn("experiment_id", plain.experiment_id.cast("string"))
    source = (spark.read.format("sparktrack").option("include_deleted", "true")
              .load(store_uri))
    assert_df_equality(plain.select(source.columns).orderBy("run_id"), source.orderBy("run_id"),
                       ignore_nullable=True)


_WRITER = textwrap.dedent(
    """
    import json, sys
    from sparktrack import TrackingClient
    uri, batches = sys.argv[1], int(sys.argv[2])
    client = TrackingClient(uri)
    experiment = client.create_experiment("concurrent")
    runs = [client.create_run(experiment, run_name=f"w{i}").info.run_id for i in range(4)]
    client.flush()
    for batch in range(batches):
        for run_id in runs:
            for step in range(batch * 10, batch * 10 + 10):
                client.log_metric(run_id, "loss", step * 0.5, step=step)
            client.log_param(run_id, f"p{batch}", str(batch))
        client.flush()
    for run_id in runs:
        client.set_terminated(run_id)
    client.flush()
    print(json.dumps({"runs": runs, "points": len(runs) * batches * 10}))
    """
)


@pytest.mark.slow
def test_maintenance_beside_a_concurrent_writer_loses_nothing(store_uri):
    TrackingClient(store_uri).create_experiment("warmup")  # the tables exist before the race
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_uri, "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    rounds = 0
    while writer.poll() is None or rounds < 2:
        Maintenance(store_uri).run(retention_hours=0)
        rounds += 1
        time.sleep(0.2)
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    written = json.loads(out.strip().splitlines()[-1])
    Maintenance(store_uri).run(retention_hours=0)

    points = _stored_points(store_uri)
    assert len(points) == written["points"] == len(set(points))  # nothing lost, nothing doubled
    params = DeltaTable(f"{store_uri}/params").to_pyarrow_table()
    assert params.num_rows == 4 * 60
    latest = DeltaTable(f"{store_uri}/runs_latest").to_pyarrow_table()
    assert sorted(latest.column("run_id").to_pylist()) == sorted(written["runs"])
    assert set(latest.column("status").to_pylist()) == {"FINISHED"}
    # Every file the snapshot references still exists after vacuum.
    for uri in DeltaTable(f"{store_uri}/metrics").file_uris():
        assert os.path.exists(uri)


@pytest.mark.parametrize("damage", ["garbage-data-file", "garbage-log-entry"])
def test_maintenance_on_a_damaged_table_fails_at_once_naming_the_cause(store_uri, damage):
    """Only lost commit races are retried: a damaged table is a StoreError, cause first."""
    from sparktrack.errors import StoreError

    _small_commits(store_uri)
    table = os.path.join(store_uri, "metrics")
    if damage == "garbage-data-file":
        path = sorted(glob.glob(os.path.join(table, "*", "*.parquet")))[0]
        expected = "corrupt data file"
    else:
        path = sorted(glob.glob(os.path.join(table, "_delta_log", "*.json")))[-1]
        expected = "broken Delta log of"
    with open(path, "wb") as damaged:
        damaged.write(b"garbage")
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        Maintenance(store_uri, tables=["metrics"]).run(steps=("compact", "checkpoint", "vacuum"))
    assert time.monotonic() - started < 3  # not 9 attempts with backoff
    assert str(raised.value).startswith(expected), raised.value
    assert table in str(raised.value)

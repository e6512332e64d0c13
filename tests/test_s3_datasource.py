"""The Spark data source reading an S3 store: the ``storage.<key>`` options reach deltalake on
the planner and the executors (Spark reads through sparktrack's Python reader, not Hadoop's
S3A connector, which this machine does not have)."""

from __future__ import annotations

import pytest

from sparktrack import TrackingClient
from s3_server import s3, s3_store  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.spark, pytest.mark.slow]  # about 45 s on 2 shared cores


def _storage(s3) -> dict[str, str]:
    return {f"storage.{key}": value for key, value in s3.storage_options().items()}


def test_read_runs_and_metrics_from_s3(spark, s3, s3_store):
    client = TrackingClient(s3_store, storage_options=s3.storage_options())
    experiment_id = client.create_experiment("spark-s3")
    run_ids = []
    for index in range(3):
        run = client.create_run(experiment_id)
        client.log_param(run.info.run_id, "i", str(index))
        for step in range(4):
            client.log_metric(run.info.run_id, "loss", float(index * 10 + step), step=step)
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    client.flush()

    runs = spark.read.format("sparktrack").options(**_storage(s3)).load(s3_store)
    rows = {row.run_id: row for row in runs.collect()}
    assert set(rows) == set(run_ids)
    assert rows[run_ids[2]].params["i"] == "2"
    assert rows[run_ids[2]].metrics["loss"] == 23.0

    history = (spark.read.format("sparktrack").options(table="metrics", **_storage(s3))
               .load(s3_store).where(f"run_id = '{run_ids[1]}'"))
    assert sorted(r.step for r in history.collect()) == [0, 1, 2, 3]
    top = (spark.read.format("sparktrack").options(**_storage(s3)).load(s3_store)
           .where("metrics['loss'] > 5").count())
    assert top == 2

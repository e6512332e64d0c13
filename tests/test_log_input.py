"""log_input records a training DataFrame's source, size and fingerprints on the active run."""

from __future__ import annotations

import pytest

import sparktrack
from sparktrack.repro import fingerprint


@pytest.mark.spark
def test_log_input_tags_the_active_run(spark, tracking, tmp_path):
    path = str(tmp_path / "data.parquet")
    spark.range(50).selectExpr("id", "id * 2 AS y").write.parquet(path)
    df = spark.read.parquet(path)
    with sparktrack.start_run() as run:
        sparktrack.log_input(df, name="train", context="training")
    tags = sparktrack.get_run(run.info.run_id).data.tags
    assert tags["input.train.rows"] == "50"
    assert tags["input.train.format"] == "parquet"
    assert tags["input.train.context"] == "training"
    assert tags["input.train.content_hash"] == fingerprint(df).content_hash
    assert tags["input.train.source"].endswith("data.parquet")

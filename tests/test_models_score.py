"""jobs/score.py end to end (a real process): a Delta table scored by a logged model, the
predictions a Delta table, the scoring a run; in-process scoring to parquet; bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
from deltalake import DeltaTable, write_deltalake  # noqa: E402
from pyspark.ml import Pipeline  # noqa: E402
from pyspark.ml.classification import LogisticRegression  # noqa: E402
from pyspark.ml.feature import VectorAssembler  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack._models.scoring import score  # noqa: E402
from sparktrack.errors import AlreadyExistsError, InvalidInputError, NotFoundError  # noqa: E402

pytestmark = pytest.mark.spark
JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "score.py")


@pytest.fixture()
def logged(tracking, spark, tmp_path):
    """A model logged in the store, and a Delta table of rows to score (two commits)."""
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30)})
    frame["label"] = (frame["a"] > 0).astype(float)
    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                             LogisticRegression(maxIter=2)]).fit(spark.createDataFrame(frame))
    with sparktrack.start_run():
        info = sparktrack.spark.log_model(model, "model")
    sparktrack.flush()
    table = str(tmp_path / "customers")
    write_deltalake(table, frame[["a", "b"]].iloc[:20])
    write_deltalake(table, frame[["a", "b"]].iloc[20:], mode="append")
    expected = model.transform(spark.createDataFrame(frame[["a", "b"]])).toPandas()
    return info, table, expected


@pytest.mark.slow
def test_score_job_writes_a_delta_table_and_records_a_run(logged, tracking, tmp_path):
    info, table, expected = logged
    output = str(tmp_path / "scores")
    done = subprocess.run(
        [sys.executable, JOB, "--model", info.model_uri, "--input", table, "--output", output,
         "--store", tracking],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(JOB))},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    scored = DeltaTable(output).to_pandas().sort_values(["a", "b"]).reset_index(drop=True)
    expected = expected.sort_values(["a", "b"]).reset_index(drop=True)
    assert len(scored) == 30 == result["rows"]
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert len(scored["probability"][0]) == 2  # a vector, written as an array
    run = TrackingClient(tracking).get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model_uri"] == info.model_uri
    assert run.data.params["input_kind"] == "delta"
    assert run.data.metrics["rows"] == 30 and run.data.metrics["duration_s"] > 0
    assert run.data.tags["input.scoring.delta_version"] == "1"
    assert len(run.data.tags["input.scoring.content_hash"]) > 8


def test_score_in_process_to_parquet_from_parquet(logged, spark, tmp_path):
    info, table, expected = logged
    source = str(tmp_path / "in.parquet")
    spark.createDataFrame(expected[["a", "b"]]).write.parquet(source)
    result = score(info.model_uri, source, str(tmp_path / "out"), output_format="parquet",
                   spark=spark)
    assert result.rows == 30 and result.model_version is None
    scored = pd.read_parquet(str(tmp_path / "out"))
    assert sorted(scored["prediction"]) == sorted(expected["prediction"])


def test_score_refuses_bad_arguments_before_writing(logged, spark, tmp_path):
    info, table, _ = logged
    with pytest.raises(InvalidInputError, match="'models:/nope'"):
        score("models:/nope", table, str(tmp_path / "o1"), spark=spark)
    with pytest.raises(InvalidInputError, match="output_format 'csv'"):
        score(info.model_uri, table, str(tmp_path / "o2"), output_format="csv", spark=spark)
    (tmp_path / "taken").mkdir()
    with pytest.raises(AlreadyExistsError, match="taken already exists"):
        score(info.model_uri, table, str(tmp_path / "taken"), spark=spark)
    with pytest.raises(NotFoundError, match="does not exist"):
        score(info.model_uri, str(tmp_path / "missing"), str(tmp_path / "o3"), spark=spark)
    assert sorted(os.listdir(tmp_path)) == sorted(["customers", "store", "taken"])

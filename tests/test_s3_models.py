"""Spark ML models on an S3 store: Spark's writer saves into a local folder that is uploaded
through the store's filesystem, and loading downloads the folder first (Spark itself would
need the Hadoop S3A jars, which this machine does not have)."""

from __future__ import annotations

import pytest

import sparktrack
import sparktrack.spark
from sparktrack._models import loader
from s3_server import s3, s3_store  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _fitted(spark):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    frame = spark.createDataFrame(
        [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.2, 0.9, 0.0), (0.9, 0.1, 1.0)], ["a", "b", "label"])
    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                             LogisticRegression(maxIter=5)]).fit(frame)
    return model, frame


def test_log_register_and_load_a_model_on_s3(spark, s3, s3_store, monkeypatch, tmp_path):
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    model, frame = _fitted(spark)
    expected = [row.prediction for row in model.transform(frame).collect()]
    sparktrack.set_tracking_uri(s3_store)
    try:
        with sparktrack.start_run():
            info = sparktrack.spark.log_model(model, "model", registered_model_name="s3-churn",
                                              input_example=frame.select("a", "b").limit(2))
        keys = s3.keys(s3_store)
        for name in ("MLmodel", "requirements.txt", "input_example.json", "sparkml/metadata"):
            assert any(f"/model/{name}" in key for key in keys), name
        client = sparktrack.MlflowClient()
        client.set_registered_model_alias("s3-churn", "champion", 1)
        downloads = []
        real = loader._downloaded
        monkeypatch.setattr(loader, "_downloaded", lambda *args: downloads.append(args) or real(
            *args))
        for uri in (info.model_uri, "models:/s3-churn@champion", info.model_uri):
            loaded = sparktrack.spark.load_model(uri)
            assert [row.prediction for row in loaded.transform(frame).collect()] == expected
        # The folder's listing (sizes, modification times) says it has not changed: loading it
        # again takes no new download.
        assert len(downloads) == 1
        assert info.flavors["spark"]["model_class"].endswith("PipelineModel")
    finally:
        sparktrack.set_tracking_uri(str(tmp_path / "local-store"))

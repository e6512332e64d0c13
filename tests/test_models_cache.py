"""Loading a model folder again answers from the models already loaded (``sparktrack._models
.cache``): a copy of its own for every caller, a folder written again is read again, a moved
alias loads the other version, and models over the size bound are not kept."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from pyspark.ml import Pipeline, PipelineModel  # noqa: E402
from pyspark.ml.classification import LogisticRegression  # noqa: E402
from pyspark.ml.feature import VectorAssembler  # noqa: E402
from pyspark.ml.regression import LinearRegression  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack._models import cache, loader  # noqa: E402

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def train(spark):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 2))
    return spark.createDataFrame(pd.DataFrame({
        "a": x[:, 0], "b": x[:, 1], "label": (x[:, 0] - x[:, 1] > 0).astype(float)}))


@pytest.fixture(scope="module")
def classifier(train):
    return Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                            LogisticRegression(maxIter=3)]).fit(train)


@pytest.fixture(scope="module")
def regressor(train):
    return Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                            LinearRegression(maxIter=3)]).fit(train)


@pytest.fixture()
def reads(monkeypatch):
    """The folders Spark's reader was asked to read (each a miss of the cache)."""
    cache.clear()
    read: list[str] = []
    real = loader._load_local

    def counted(location):
        read.append(location)
        return real(location)

    monkeypatch.setattr(loader, "_load_local", counted)
    yield read
    cache.clear()


def _predictions(model, df) -> list[float]:
    return [row.prediction for row in model.transform(df).select("prediction").collect()]


def test_a_folder_loaded_again_is_not_read_again_and_each_caller_gets_its_own_model(
        tmp_path, train, classifier, reads):
    folder = str(tmp_path / "model")
    sparktrack.spark.save_model(classifier, folder)
    first = sparktrack.spark.load_model(folder)
    second = sparktrack.spark.load_model(folder)
    assert len(reads) == 1
    assert isinstance(second, PipelineModel) and second is not first
    assert second.stages[-1]._java_obj != first.stages[-1]._java_obj  # not one JVM object
    assert _predictions(second, train) == _predictions(first, train) == _predictions(
        classifier, train)
    # A caller that changes its model changes nothing for the next one.
    first.stages[-1].setThreshold(0.99)
    second.stages[-1].setThreshold(0.98)
    third = sparktrack.spark.load_model(folder)
    assert third.stages[-1].getThreshold() == 0.5
    assert len(reads) == 1


def test_a_folder_written_again_is_read_again(tmp_path, train, classifier, regressor, reads):
    folder = str(tmp_path / "model")
    sparktrack.spark.save_model(classifier, folder)
    sparktrack.spark.load_model(folder)
    shutil.rmtree(folder)
    sparktrack.spark.save_model(regressor, folder)
    reloaded = sparktrack.spark.load_model(folder)
    assert len(reads) == 2
    assert type(reloaded.stages[-1]).__name__ == "LinearRegressionModel"
    assert _predictions(reloaded, train) == _predictions(regressor, train)


def test_a_file_rewritten_with_the_same_name_changes_the_fingerprint(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "part-0").write_bytes(b"0.5")
    before = cache.fingerprint(str(folder))
    (folder / "sub" / "part-0").write_bytes(b"0.7")  # same size
    stat = (folder / "sub" / "part-0").stat()
    os.utime(folder / "sub" / "part-0", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = cache.fingerprint(str(folder))
    (folder / "sub" / "part-0").write_bytes(b"0.75")
    assert len({before, touched, cache.fingerprint(str(folder))}) == 3
    assert cache.fingerprint(str(tmp_path / "missing")) is None


def test_a_moved_alias_loads_the_version_it_points_to(tracking, train, classifier, regressor,
                                                      reads):
    client = TrackingClient()
    for model in (classifier, regressor):
        with sparktrack.start_run():
            sparktrack.spark.log_model(model, "model", registered_model_name="cached")
    client.set_registered_model_alias("cached", "champion", 1)
    assert type(sparktrack.spark.load_model("models:/cached@champion").stages[-1]).__name__ == (
        "LogisticRegressionModel")
    client.set_registered_model_alias("cached", "champion", 2)
    moved = sparktrack.spark.load_model("models:/cached@champion")
    assert _predictions(moved, train) == _predictions(regressor, train)
    assert sparktrack.spark.load_model("models:/cached/1").stages[-1].getThreshold() == 0.5
    assert len(reads) == 2  # version 1 was loaded before


def test_models_over_the_size_bound_are_not_kept(tmp_path, classifier, reads, monkeypatch):
    folder = str(tmp_path / "model")
    sparktrack.spark.save_model(classifier, folder)
    monkeypatch.setattr(cache, "MAX_BYTES", 1000)  # the folder holds several KB
    sparktrack.spark.load_model(folder)
    sparktrack.spark.load_model(folder)
    assert len(reads) == 2


def test_the_least_recently_loaded_model_leaves_first(tmp_path, classifier, reads, monkeypatch):
    folders = [str(tmp_path / name) for name in ("a", "b", "c")]
    for folder in folders:
        sparktrack.spark.save_model(classifier, folder)
    size = sum(size for _, size, _ in cache.fingerprint(folders[0]))
    monkeypatch.setattr(cache, "MAX_BYTES", 2 * size + size // 2)  # room for two
    for folder in (folders[0], folders[1], folders[0], folders[2]):
        sparktrack.spark.load_model(folder)
    assert reads == [folders[0], folders[1], folders[2]]
    sparktrack.spark.load_model(folders[0])  # kept: loaded after b
    sparktrack.spark.load_model(folders[1])  # b left when c came
    assert reads == [folders[0], folders[1], folders[2], folders[1]]

"""Spark models in MLflow's own format: what log_model writes, that MLflow loads it and that
sparktrack loads MLflow's, signatures equal to MLflow's, input examples, runs:/ and path URIs,
predict on Spark and pandas frames, and a loader that never imports code named by a folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("pyspark")
mlflow = pytest.importorskip("mlflow")

import mlflow.spark  # noqa: E402
from pyspark.ml import Pipeline, PipelineModel  # noqa: E402
from pyspark.ml.classification import LogisticRegression  # noqa: E402
from pyspark.ml.feature import StringIndexer, VectorAssembler  # noqa: E402
from pyspark.ml.linalg import Vectors  # noqa: E402
from pyspark.ml.regression import LinearRegression, LinearRegressionModel  # noqa: E402
from pyspark.sql import Row  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack.errors import (  # noqa: E402
    AlreadyExistsError,
    ArtifactNotFoundError,
    InvalidArtifactPathError,
    InvalidInputError,
)

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def train(spark):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 2))
    return spark.createDataFrame(pd.DataFrame({
        "a": x[:, 0], "b": x[:, 1], "color": rng.choice(["red", "blue"], size=40),
        "label": (x[:, 0] + x[:, 1] > 0).astype(float),
    }))


@pytest.fixture(scope="module")
def classifier(train):
    """A Pipeline with feature stages and a classifier, fitted."""
    return Pipeline(stages=[
        StringIndexer(inputCol="color", outputCol="color_index"),
        VectorAssembler(inputCols=["a", "b", "color_index"], outputCol="features"),
        LogisticRegression(maxIter=3),
    ]).fit(train)


@pytest.fixture(scope="module")
def regressor(train):
    """A bare regressor (not a Pipeline)."""
    assembled = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(train)
    return LinearRegression(maxIter=3).fit(assembled)


def _mlmodel(folder) -> dict:
    with open(os.path.join(folder, "MLmodel")) as stream:
        return yaml.safe_load(stream)


def _predictions(model, df) -> list[float]:
    return [row.prediction for row in model.transform(df).select("prediction").collect()]


def test_log_model_writes_mlflows_format_and_mlflow_loads_it(tracking, spark, train, classifier):
    example = train.select("a", "b", "color").limit(3).toPandas()
    with sparktrack.start_run() as run:
        info = sparktrack.spark.log_model(classifier, "model", input_example=example)
    folder = os.path.join(run.info.artifact_uri, "model")
    assert info.model_uri == f"runs:/{run.info.run_id}/model"
    assert sorted(os.listdir(folder)) == [
        "MLmodel", "conda.yaml", "input_example.json", "python_env.yaml", "requirements.txt",
        "serving_input_example.json", "sparkml",
    ]
    content = _mlmodel(folder)
    assert content["flavors"]["spark"] == {
        "code": None, "model_class": "pyspark.ml.pipeline.PipelineModel",
        "model_data": "sparkml", "pyspark_version": __import__("pyspark").__version__,
    }
    pyfunc = content["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.spark" and pyfunc["data"] == "sparkml"
    assert pyfunc["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert content["run_id"] == run.info.run_id and content["artifact_path"] == "model"
    assert content["saved_input_example_info"] == {
        "artifact_path": "input_example.json", "pandas_orient": "split",
        "serving_input_path": "serving_input_example.json", "type": "dataframe",
    }
    assert content["model_size_bytes"] > 1000
    requirements = open(os.path.join(folder, "requirements.txt")).read().splitlines()
    assert f"pyspark=={__import__('pyspark').__version__}" in requirements
    assert any(line.startswith("sparktrack==") for line in requirements)
    assert json.load(open(os.path.join(folder, "input_example.json"))) == {
        "columns": ["a", "b", "color"], "data": example.values.tolist(),
    }

    # MLflow reads all of it with its own code.
    from mlflow.models import Model

    assert Model.load(folder).signature.inputs.input_names() == ["a", "b", "color"]
    loaded = mlflow.spark.load_model(folder)
    assert isinstance(loaded, PipelineModel)
    assert _predictions(loaded, train) == _predictions(classifier, train)
    tags = TrackingClient(tracking).get_run(run.info.run_id).data.tags
    assert tags["sparktrack.model.model"] == "pyspark.ml.pipeline.PipelineModel"


def test_runs_uri_and_path_load_the_same_model(tracking, train, classifier):
    with sparktrack.start_run() as run:
        sparktrack.spark.log_model(classifier, "nested/clf")
    by_run = sparktrack.spark.load_model(f"runs:/{run.info.run_id}/nested/clf")
    path = os.path.join(run.info.artifact_uri, "nested", "clf")
    by_path = sparktrack.spark.load_model(path)
    expected = _predictions(classifier, train)
    for model in (by_run, by_path):
        assert isinstance(model, PipelineModel)
        assert _predictions(model, train) == expected


def test_a_bare_model_is_saved_wrapped_in_a_pipeline_as_mlflow_does(tracking, train, regressor):
    assembled = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(train)
    with sparktrack.start_run() as run:
        info = sparktrack.spark.log_model(regressor, "reg")
    loaded = sparktrack.spark.load_model(info.model_uri)
    assert isinstance(loaded, PipelineModel)
    (stage,) = loaded.stages
    assert isinstance(stage, LinearRegressionModel)
    assert stage.coefficients == regressor.coefficients
    theirs = mlflow.spark.load_model(os.path.join(run.info.artifact_uri, "reg"))
    assert _predictions(theirs, assembled) == _predictions(regressor, assembled)


def test_log_model_without_a_run_starts_one_as_mlflow_does(tracking, train, regressor):
    info = sparktrack.spark.log_model(regressor, "model")
    assert sparktrack.active_run().info.run_id == info.run_id
    sparktrack.end_run()


def _spark_example(spark):
    schema = T.StructType([
        T.StructField("a", T.DoubleType()),
        T.StructField("b", T.DoubleType()),
        T.StructField("n_long", T.LongType()),
        T.StructField("n_int", T.IntegerType()),
        T.StructField("n_short", T.ShortType()),
        T.StructField("f", T.FloatType()),
        T.StructField("flag", T.BooleanType()),
        T.StructField("s", T.StringType()),
        T.StructField("raw", T.BinaryType()),
        T.StructField("day", T.DateType()),
        T.StructField("at", T.TimestampType()),
        T.StructField("xs", T.ArrayType(T.DoubleType())),
        T.StructField("nested", T.StructType([
            T.StructField("k", T.StringType(), nullable=False),
            T.StructField("v", T.ArrayType(T.LongType())),
        ])),
        T.StructField("vec", __import__("pyspark.ml.linalg", fromlist=["VectorUDT"]).VectorUDT()),
    ])
    row = (0.5, -1.0, 3, 4, 5, 1.5, True, "x", b"\x00\x01", dt.date(2026, 1, 2),
           dt.datetime(2026, 1, 2, 3, 4, 5), [1.0, 2.0], Row(k="k", v=[1, 2]),
           Vectors.dense([1.0, 2.0]))
    return spark.createDataFrame([row, row], schema)


def test_signature_equals_mlflows_for_the_same_dataframe(tracking, spark, train):
    model = Pipeline(stages=[
        VectorAssembler(inputCols=["a", "b"], outputCol="features"), LogisticRegression(maxIter=2)
    ]).fit(train)
    example = _spark_example(spark)
    with sparktrack.start_run() as run:
        info = sparktrack.spark.log_model(model, "model", input_example=example)
    from mlflow.models import Model
    from mlflow.pyspark.ml import _infer_spark_model_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hint about integer columns
        theirs = _infer_spark_model_signature(model.copy(), example).to_dict()
    assert info.signature == theirs
    ours = Model.load(os.path.join(run.info.artifact_uri, "model")).signature
    assert ours.to_dict() == theirs
    stored = json.load(open(os.path.join(run.info.artifact_uri, "model", "input_example.json")))
    assert stored["columns"] == example.columns
    assert stored["data"][0][-1] == [1.0, 2.0]  # the vector, as a list (MLflow's autolog)
    assert stored["data"][0][9] == "2026-01-02"


def test_signature_from_a_pandas_example_and_an_explicit_one(tracking, train, classifier):
    from mlflow.models import infer_signature
    from mlflow.pyspark.ml import _infer_spark_model_signature

    example = pd.DataFrame({"a": [0.1, 0.2], "b": [1.0, 2.0], "color": ["red", "blue"]})
    with sparktrack.start_run():
        inferred = sparktrack.spark.log_model(classifier, "inferred", input_example=example)
        explicit_signature = infer_signature(example, pd.Series([1.0, 0.0]))
        explicit = sparktrack.spark.log_model(classifier, "explicit",
                                              signature=explicit_signature)
        none = sparktrack.spark.log_model(classifier, "none", input_example=example,
                                          signature=False)
        plain = sparktrack.spark.log_model(classifier, "plain")
    spark_example = train.sparkSession.createDataFrame(example)
    assert inferred.signature == _infer_spark_model_signature(
        classifier.copy(), spark_example).to_dict()
    assert explicit.signature == explicit_signature.to_dict()
    assert none.signature is None and none.saved_input_example_info is not None
    assert plain.signature is None and plain.saved_input_example_info is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # MLflow's own hints while it logs
def test_a_model_mlflow_logged_loads_with_sparktrack(tmp_path, spark, train, classifier):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        with mlflow.start_run() as run:
            # pip_requirements skips MLflow's requirement inference (a second SparkSession).
            info = mlflow.spark.log_model(classifier, "model", pip_requirements=["pyspark"])
        folder = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "d"))
    finally:
        mlflow.set_tracking_uri(None)
    assert run.info.run_id in info.model_uri
    loaded = sparktrack.spark.load_model(folder)
    assert isinstance(loaded, PipelineModel)
    assert _predictions(loaded, train) == _predictions(classifier, train)

    saved = str(tmp_path / "saved")
    mlflow.spark.save_model(classifier, saved, pip_requirements=["pyspark"])
    assert _predictions(sparktrack.spark.load_model(saved), train) == _predictions(
        classifier, train)


def test_save_model_to_a_path_and_never_over_an_existing_one(tmp_path, train, regressor):
    target = tmp_path / "m"
    sparktrack.spark.save_model(regressor, target)
    assert (target / "MLmodel").exists() and (target / "sparkml").is_dir()
    assert "run_id" not in _mlmodel(target)
    before = sorted(os.listdir(target))
    with pytest.raises(AlreadyExistsError, match="already exists"):
        sparktrack.spark.save_model(regressor, target)
    assert sorted(os.listdir(target)) == before
    assert sparktrack.spark.load_model(str(target)).stages[0].coefficients == (
        regressor.coefficients)


def test_bad_arguments_are_typed_errors_before_anything_is_written(tracking, regressor):
    with sparktrack.start_run() as run:
        with pytest.raises(InvalidInputError, match="fitted pyspark.ml Model"):
            sparktrack.spark.log_model(LinearRegression(), "model")  # an estimator
        with pytest.raises(InvalidInputError, match="fitted pyspark.ml Model"):
            sparktrack.spark.log_model({"not": "a model"}, "model")
        with pytest.raises(InvalidArtifactPathError, match="escape"):
            sparktrack.spark.log_model(regressor, "../outside")
        with pytest.raises(InvalidArtifactPathError, match="artifact_path"):
            sparktrack.spark.log_model(regressor, "")
        with pytest.raises(InvalidInputError, match="input_example"):
            sparktrack.spark.log_model(regressor, "model", input_example=42)
        with pytest.raises(InvalidInputError, match="signature"):
            sparktrack.spark.log_model(regressor, "model", signature="inputs: a")
    assert not os.path.exists(run.info.artifact_uri) or os.listdir(run.info.artifact_uri) == []


def test_load_model_errors_name_the_uri_or_folder(tracking, tmp_path):
    with pytest.raises(InvalidInputError, match="'models:/m-abc'"):
        sparktrack.spark.load_model("models:/m-abc")
    with pytest.raises(InvalidInputError, match="'runs:/abc'"):
        sparktrack.spark.load_model("runs:/abc")
    with pytest.raises(ArtifactNotFoundError, match="No model at .*empty"):
        (tmp_path / "empty").mkdir()
        sparktrack.spark.load_model(str(tmp_path / "empty"))
    (tmp_path / "sk").mkdir()
    (tmp_path / "sk" / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    with pytest.raises(InvalidInputError, match="no 'spark' flavor .*sklearn"):
        sparktrack.spark.load_model(str(tmp_path / "sk"))


EVIL_MODULE = """
import pathlib
pathlib.Path(__file__).with_name("imported.marker").write_text("imported")

class Model:
    @classmethod
    def load(cls, path):
        return "loaded"
"""


@pytest.fixture()
def evil_module(tmp_path, monkeypatch):
    """An importable module that leaves a marker file when imported."""
    (tmp_path / "evil_stage_module.py").write_text(EVIL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imported.marker"
    sys.modules.pop("evil_stage_module", None)


def _copy_of_saved(tmp_path, model, name) -> str:
    folder = str(tmp_path / name)
    sparktrack.spark.save_model(model, folder)
    return folder


@pytest.mark.parametrize(
    "model_class",
    ["evil_stage_module.Model", "os.system", "builtins.eval", "pyspark.ml.connect.base.Model",
     "pyspark.ml.nonexistent.Model", "pyspark.ml.linalg.Vectors"],
)
def test_loading_refuses_a_model_class_outside_pyspark_ml(tmp_path, regressor, evil_module,
                                                          model_class):
    folder = _copy_of_saved(tmp_path, regressor, "m")
    content = _mlmodel(folder)
    content["flavors"]["spark"]["model_class"] = model_class
    with open(os.path.join(folder, "MLmodel"), "w") as stream:
        yaml.safe_dump(content, stream)
    with pytest.raises(InvalidInputError, match="names .*" + model_class.split(".")[-1]):
        sparktrack.spark.load_model(folder)
    assert not evil_module.exists() and "evil_stage_module" not in sys.modules


def test_loading_refuses_a_stage_of_a_class_outside_pyspark_ml(tmp_path, classifier, evil_module):
    folder = _copy_of_saved(tmp_path, classifier, "m")
    stages = os.path.join(folder, "sparkml", "stages")
    stage = sorted(os.listdir(stages))[1]
    metadata = os.path.join(stages, stage, "metadata")
    (part,) = [name for name in os.listdir(metadata) if name.startswith("part-")]
    with open(os.path.join(metadata, part)) as stream:
        meta = json.loads(stream.readline())
    meta["class"] = "evil_stage_module.Model"
    meta["language"] = "Python"
    with open(os.path.join(metadata, part), "w") as stream:
        stream.write(json.dumps(meta) + "\n")
    for crc in [n for n in os.listdir(metadata) if n.endswith(".crc")]:
        os.remove(os.path.join(metadata, crc))
    with pytest.raises(InvalidInputError, match="stage of class 'evil_stage_module.Model'"):
        sparktrack.spark.load_model(folder)
    assert not evil_module.exists() and "evil_stage_module" not in sys.modules


def test_loading_never_constructs_python_objects_from_mlmodel(tmp_path, regressor):
    folder = _copy_of_saved(tmp_path, regressor, "m")
    with open(os.path.join(folder, "MLmodel"), "a") as stream:
        stream.write("evil: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(InvalidInputError, match="not a valid MLmodel file"):
        sparktrack.spark.load_model(folder)
    assert not os.path.exists("pwned")


def test_loading_refuses_model_data_outside_the_folder(tmp_path, regressor):
    folder = _copy_of_saved(tmp_path, regressor, "m")
    content = _mlmodel(folder)
    content["flavors"]["spark"]["model_data"] = "../elsewhere"
    with open(os.path.join(folder, "MLmodel"), "w") as stream:
        yaml.safe_dump(content, stream)
    with pytest.raises(InvalidInputError, match="model_data path that leaves"):
        sparktrack.spark.load_model(folder)


def test_a_folder_spark_wrote_directly_still_loads(tmp_path, train, classifier, regressor):
    """Runs autologged before the MLflow format hold Spark's folder as it is."""
    classifier.write().save(str(tmp_path / "pipeline"))
    regressor.write().save(str(tmp_path / "bare"))
    assert _predictions(sparktrack.spark.load_model(str(tmp_path / "pipeline")), train) == (
        _predictions(classifier, train))
    assert isinstance(sparktrack.spark.load_model(str(tmp_path / "bare")), LinearRegressionModel)


def test_predict_on_spark_and_pandas_frames(tracking, spark, train, classifier):
    with sparktrack.start_run():
        info = sparktrack.spark.log_model(classifier, "model")
    scored = sparktrack.spark.predict(info.model_uri, train)
    assert "probability" in scored.columns  # a Spark DataFrame, every column of transform
    assert [r.prediction for r in scored.collect()] == _predictions(classifier, train)
    frame = train.select("a", "b", "color").toPandas()
    out = sparktrack.spark.predict(info.model_uri, frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["a", "b", "color", "prediction"]
    assert out["prediction"].tolist() == _predictions(classifier, train)
    loaded = sparktrack.spark.load_model(info.model_uri)
    assert sparktrack.spark.predict(loaded, frame)["prediction"].tolist() == (
        out["prediction"].tolist())
    with pytest.raises(InvalidInputError, match="Spark or pandas DataFrame"):
        sparktrack.spark.predict(info.model_uri, [[1.0, 2.0]])


def test_registered_model_name_registers_the_logged_model(tracking, regressor):
    client = TrackingClient(tracking)
    with sparktrack.start_run() as run:
        info = sparktrack.spark.log_model(regressor, "model", registered_model_name="reg")
    assert info.registered_model_version == "1"
    version = client.get_model_version("reg", "1")
    assert version.run_id == run.info.run_id

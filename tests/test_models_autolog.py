"""Autologged model/ and best_model/ are in MLflow's format: mlflow.spark.load_model and
sparktrack.spark.load_model read them, with a signature (and an input example on request), and
registered_model_name registers model/."""

from __future__ import annotations

import json
import os
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
from pyspark.ml.evaluation import BinaryClassificationEvaluator  # noqa: E402
from pyspark.ml.feature import VectorAssembler  # noqa: E402
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack import _pending as pending  # noqa: E402

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def train(spark):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    label = (x[:, 0] > 0).astype(float)
    return spark.createDataFrame(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": label}))


@pytest.fixture()
def tracked(store_uri):
    sparktrack.set_tracking_uri(store_uri)
    yield TrackingClient(store_uri)
    sparktrack.autolog(disable=True)
    pending.wait_all()
    while sparktrack.active_run() is not None:
        sparktrack.end_run()


def _cv():
    lr = LogisticRegression(maxIter=2)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"), lr])
    return CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.01, 1.0]).build(),
        evaluator=BinaryClassificationEvaluator(), numFolds=2, seed=1,
    )


def _predictions(model, df):
    return [row.prediction for row in model.transform(df).select("prediction").collect()]


def test_autologged_model_and_best_model_load_with_mlflow(tracked, train):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every option is honoured now: no warning
        sparktrack.autolog(log_datasets=False, log_input_examples=True)
    fitted = _cv().fit(train)
    run = sparktrack.last_active_run()
    sparktrack.flush()
    model_folder = os.path.join(run.info.artifact_uri, "model")
    best_folder = os.path.join(run.info.artifact_uri, "best_model")

    theirs = mlflow.spark.load_model(model_folder)
    (tuner,) = theirs.stages
    assert isinstance(tuner, CrossValidatorModel)
    assert tuner.avgMetrics == pytest.approx(fitted.avgMetrics)
    best = mlflow.spark.load_model(best_folder)
    assert isinstance(best, PipelineModel)
    assert _predictions(best, train) == _predictions(fitted.bestModel, train)
    ours = sparktrack.spark.load_model(f"runs:/{run.info.run_id}/best_model")
    assert _predictions(ours, train) == _predictions(fitted.bestModel, train)

    with open(os.path.join(model_folder, "MLmodel")) as stream:
        content = yaml.safe_load(stream)
    inputs = json.loads(content["signature"]["inputs"])
    assert inputs == [{"type": "double", "name": "a", "required": True},
                      {"type": "double", "name": "b", "required": True}]  # not the label
    assert json.loads(content["signature"]["outputs"]) == [{"type": "double", "required": True}]
    with open(os.path.join(model_folder, "input_example.json")) as stream:
        example = json.load(stream)
    assert example["columns"] == ["a", "b"] and len(example["data"]) == 5
    tags = tracked.get_run(run.info.run_id).data.tags
    assert tags["sparktrack.model.model"] == "pyspark.ml.tuning.CrossValidatorModel"
    assert tags["sparktrack.model.best_model"] == "pyspark.ml.pipeline.PipelineModel"


def test_signatures_and_examples_can_be_turned_off(tracked, train):
    sparktrack.autolog(log_datasets=False, log_model_signatures=False,
                       log_models_in_background=False)
    assembled = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(train)
    LogisticRegression(maxIter=2).fit(assembled)
    run = sparktrack.last_active_run()
    folder = os.path.join(run.info.artifact_uri, "model")
    with open(os.path.join(folder, "MLmodel")) as stream:
        content = yaml.safe_load(stream)
    assert "signature" not in content and "saved_input_example_info" not in content
    assert not os.path.exists(os.path.join(folder, "input_example.json"))
    (stage,) = mlflow.spark.load_model(folder).stages
    assert stage.numFeatures == 2


def test_registered_model_name_registers_model(tracked, train):
    sparktrack.autolog(log_datasets=False, registered_model_name="churn")
    assembled = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(train)
    LogisticRegression(maxIter=2).fit(assembled)
    run = sparktrack.last_active_run()
    sparktrack.flush()
    version = tracked.get_model_version("churn", "1")
    assert version.run_id == run.info.run_id
    assert isinstance(sparktrack.spark.load_model("models:/churn/1"), PipelineModel)

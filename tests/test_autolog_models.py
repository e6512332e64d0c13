"""Autologged models saved in the background: there once read, loadable with Spark, waited for
by flush, SparkSession.stop and exit; a failed save is one log warning; inline still works."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from pyspark.ml import Pipeline, PipelineModel  # noqa: E402
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel  # noqa: E402
from pyspark.ml.evaluation import BinaryClassificationEvaluator  # noqa: E402
from pyspark.ml.feature import VectorAssembler  # noqa: E402
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack import _pending as pending  # noqa: E402
from sparktrack._autolog import hooks, models  # noqa: E402
from sparktrack._autolog.patching import is_patched  # noqa: E402

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def train(spark):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 2))
    label = (x[:, 0] + rng.normal(scale=0.5, size=60) > 0).astype(float)
    return spark.createDataFrame(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": label}))


@pytest.fixture()
def tracked(store_uri):
    sparktrack.set_tracking_uri(store_uri)
    yield TrackingClient(store_uri)
    sparktrack.autolog(disable=True)
    pending.wait_all()
    while sparktrack.active_run() is not None:
        sparktrack.end_run()


@pytest.fixture()
def gate(monkeypatch):
    """Holds every model save until the test opens it (the save itself is Spark's, unchanged)."""
    opened = threading.Event()
    real = models.ModelSave.__call__

    def held(self):
        opened.wait(30)
        real(self)

    monkeypatch.setattr(models.ModelSave, "__call__", held)
    yield opened
    opened.set()


def _assembled(train):
    return VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(train)


def _cv():
    lr = LogisticRegression(maxIter=3)
    pipeline = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"), lr])
    return CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.01, 1.0]).build(),
        evaluator=BinaryClassificationEvaluator(),
        numFolds=2,
        seed=3,
    )


def test_fit_returns_before_the_save_and_list_artifacts_waits_for_it(tracked, train, gate):
    sparktrack.autolog(log_datasets=False)
    model = _cv().fit(train)
    run = sparktrack.last_active_run()
    run_id, artifact_uri = run.info.run_id, run.info.artifact_uri
    assert run.info.status == "FINISHED"  # ended before fit() returned, save still pending
    assert pending.pending_runs() == [run_id]
    assert not os.path.exists(f"{artifact_uri}/model")
    threading.Timer(0.3, gate.set).start()
    names = [f.path for f in tracked.list_artifacts(run_id)]  # waits for the save
    assert names == [
        "best_model", "best_parameters.json", "estimator_info.json", "model", "search_results.csv"
    ]
    # MLflow's model format: Spark's folder in sparkml/, a bare model wrapped in a Pipeline.
    best = PipelineModel.load(f"{artifact_uri}/best_model/sparkml")
    assert best.stages[-1].getRegParam() == model.bestModel.stages[-1].getRegParam()
    (loaded,) = PipelineModel.load(f"{artifact_uri}/model/sparkml").stages
    assert isinstance(loaded, CrossValidatorModel)
    assert loaded.avgMetrics == pytest.approx(model.avgMetrics)
    tags = tracked.get_run(run_id).data.tags
    assert tags["sparktrack.model.model"] == "pyspark.ml.tuning.CrossValidatorModel"
    assert tags["sparktrack.model.best_model"] == "pyspark.ml.pipeline.PipelineModel"


def test_flush_waits_for_the_save(tracked, train):
    sparktrack.autolog(log_datasets=False)
    model = LogisticRegression(maxIter=3).fit(_assembled(train))
    run = sparktrack.last_active_run()
    sparktrack.flush()
    assert pending.pending_runs() == []
    (loaded,) = PipelineModel.load(f"{run.info.artifact_uri}/model/sparkml").stages
    assert isinstance(loaded, LogisticRegressionModel)
    assert loaded.coefficients == model.coefficients
    tags = tracked.get_run(run.info.run_id).data.tags
    assert tags["sparktrack.model.model"] == (
        "pyspark.ml.classification.LogisticRegressionModel"
    )


def test_a_failed_background_save_is_one_log_warning_and_the_run_is_intact(
    tracked, train, gate, caplog
):
    sparktrack.autolog(log_datasets=True)
    with caplog.at_level(logging.WARNING, logger="sparktrack"):
        LogisticRegression(maxIter=3).fit(_assembled(train))
        run = sparktrack.last_active_run()
        # Something else takes the model's folder before Spark writes it: a real Spark error.
        os.makedirs(f"{run.info.artifact_uri}/model/taken")
        gate.set()
        sparktrack.flush()
    warned = [r for r in caplog.records if r.name.startswith("sparktrack")]
    assert len(warned) == 1 and warned[0].name == "sparktrack.autolog"
    message = warned[0].getMessage()
    assert run.info.run_id in message and "model/" in message and "already exists" in message
    after = tracked.get_run(run.info.run_id)
    assert after.info.status == "FINISHED"
    assert after.data.params["maxIter"] == "3"
    assert after.data.tags["estimator_name"] == "LogisticRegression"
    (training,) = after.inputs.dataset_inputs
    assert json.loads(training.dataset.profile)["num_rows"] == 60
    assert "sparktrack.model.model" not in after.data.tags
    assert os.listdir(f"{run.info.artifact_uri}/model") == ["taken"]


def test_inline_option_saves_before_fit_returns(tracked, train):
    sparktrack.autolog(log_datasets=False, log_models_in_background=False)
    model = _cv().fit(train)
    run = sparktrack.last_active_run()
    assert pending.pending_runs() == []
    assert os.path.isdir(f"{run.info.artifact_uri}/model")  # no read, no wait: already there
    assert os.path.isdir(f"{run.info.artifact_uri}/best_model")
    best = PipelineModel.load(f"{run.info.artifact_uri}/best_model/sparkml")
    assert len(best.stages) == len(model.bestModel.stages)
    assert tracked.get_run(run.info.run_id).data.tags["sparktrack.model.best_model"] == (
        "pyspark.ml.pipeline.PipelineModel"
    )


def _held_job(run_id: str) -> None:
    opened = threading.Event()
    pending.start(run_id, "model save to model/", lambda: opened.wait(30))
    threading.Timer(0.3, opened.set).start()


def test_spark_session_stop_waits_for_saves_and_disable_restores_it(tracked):
    original = SparkSession.__dict__["stop"]
    sparktrack.autolog()
    assert is_patched(SparkSession, "stop")
    assert SparkSession.stop.__sparktrack_original__ is original
    _held_job("b" * 32)
    sparktrack.autolog(disable=True)  # waits: the restored stop() would not
    assert pending.pending_runs() == []
    assert SparkSession.__dict__["stop"] is original

    # The wrapper itself, around a stand-in for the original (the shared session stays up).
    seen: list[list[str]] = []
    stop = hooks.wrap_stop(lambda session: seen.append(pending.pending_runs()))
    _held_job("a" * 32)
    stop(object())
    assert seen == [[]]


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import sparktrack
    from sparktrack._autolog import models
    from sparktrack.spark import session
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    real = models.ModelSave.__call__
    models.ModelSave.__call__ = lambda self: (time.sleep(2), real(self))  # still saving at exit

    spark = session(app_name="exit-wait")
    sparktrack.set_tracking_uri(sys.argv[1])
    sparktrack.autolog(log_datasets=False)
    df = spark.createDataFrame([(float(i % 7), float(i % 2)) for i in range(40)], ["a", "label"])
    df = VectorAssembler(inputCols=["a"], outputCol="features").transform(df)
    LogisticRegression(maxIter=2).fit(df)
    print(sparktrack.last_active_run().info.run_id, sparktrack._pending.pending_runs(), flush=True)
    """  # exits at once: no flush, no stop
)


@pytest.mark.slow
def test_interpreter_exit_waits_for_the_save(tmp_path, spark):
    script = tmp_path / "exit_wait.py"
    script.write_text(EXIT_SCRIPT)
    store = str(tmp_path / "store")
    done = subprocess.run(
        [sys.executable, str(script), store], capture_output=True, text=True, timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_id, pending_then = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert pending_then == str([run_id])  # the script ended with the save still running
    run = TrackingClient(store).get_run(run_id)
    assert run.data.tags["sparktrack.model.model"].endswith("LogisticRegressionModel")
    (loaded,) = PipelineModel.load(f"{run.info.artifact_uri}/model/sparkml").stages
    assert loaded.numFeatures == 1

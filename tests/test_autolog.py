"""Autologging with real MLlib estimators on tiny data: what a fit, a tuner and an evaluation
record, under MLflow 3.17's names."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from pyspark.ml import Pipeline, PipelineModel  # noqa: E402
from pyspark.ml.classification import (  # noqa: E402
    LogisticRegression,
    LogisticRegressionModel,
    OneVsRest,
)
from pyspark.ml.evaluation import (  # noqa: E402
    BinaryClassificationEvaluator,
    Evaluator,
    RegressionEvaluator,
)
from pyspark.ml.feature import StringIndexer, VectorAssembler  # noqa: E402
from pyspark.ml.regression import LinearRegression  # noqa: E402
from pyspark.ml.tuning import (  # noqa: E402
    CrossValidator,
    CrossValidatorModel,
    ParamGridBuilder,
    TrainValidationSplit,
)

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack.entities import InputTag  # noqa: E402
from sparktrack.repro import fingerprint  # noqa: E402
from sparktrack._autolog import tuning as autolog_tuning  # noqa: E402
from sparktrack.errors import AutologgingWarning  # noqa: E402

pytestmark = pytest.mark.spark


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    label = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=n) > 0).astype(float)
    cat = np.where(x[:, 2] > 0, "up", "down")
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "cat": cat, "label": label})


@pytest.fixture(scope="module")
def data(spark):
    train = spark.createDataFrame(_frame(80, 1))
    test = spark.createDataFrame(_frame(40, 2))
    return train, test


def _assemble():
    return VectorAssembler(inputCols=["a", "b", "c"], outputCol="features")


def _runs():
    sparktrack.flush()
    return sparktrack.search_runs(search_all_experiments=True)


def _read(client, run_id, path):
    local = client.download_artifacts(run_id, path)
    with open(local) as handle:
        return handle.read()


@pytest.fixture()
def tracked(store_uri):
    sparktrack.set_tracking_uri(store_uri)
    yield TrackingClient(store_uri)
    sparktrack.autolog(disable=True)
    while sparktrack.active_run() is not None:
        sparktrack.end_run()


# -- one CrossValidator over a Pipeline, read by several tests ----------------------------------
@pytest.fixture(scope="module")
def cv(data, tmp_path_factory):
    train, test = data
    store = str(tmp_path_factory.mktemp("cv") / "store")
    sparktrack.set_tracking_uri(store)
    sparktrack.autolog()  # defaults: models, datasets, post-training metrics
    try:
        cached = train.select("*").cache()
        cached.count()
        first = VectorAssembler(inputCols=["a", "b"], outputCol="ab")
        second = VectorAssembler(inputCols=["ab", "c"], outputCol="features")
        lr = LogisticRegression(maxIter=5)
        pipeline = Pipeline(stages=[first, second, lr])
        grid = ParamGridBuilder().addGrid(lr.regParam, [0.01, 5.0]).build()
        tuner = CrossValidator(
            estimator=pipeline,
            estimatorParamMaps=grid,
            evaluator=BinaryClassificationEvaluator(),
            numFolds=2,
            parallelism=2,
            seed=7,
        )
        model = tuner.fit(cached)
        still_cached = cached.is_cached
        evaluator = BinaryClassificationEvaluator()
        scores = [evaluator.evaluate(model.transform(test)) for _ in range(2)]
        test = test.limit(30)  # another object under the same variable name
        scores.append(evaluator.evaluate(model.transform(test)))
        pr = BinaryClassificationEvaluator(metricName="areaUnderPR")
        scores.append(pr.evaluate(model.transform(test.limit(10))))
        cached.unpersist()
    finally:
        sparktrack.autolog(disable=True)
    client = TrackingClient(store)
    runs = _runs()
    parent_id = runs.loc[runs["tags.mlflow.parentRunId"].isna(), "run_id"].item()
    return {
        "client": client,
        "model": model,
        "runs": runs,
        "parent": client.get_run(parent_id),
        "children": runs[runs["tags.mlflow.parentRunId"] == parent_id],
        "still_cached": still_cached,
        "scores": scores,
    }


def test_cv_parent_params_and_tags(cv, data):
    params, tags = cv["parent"].data.params, cv["parent"].data.tags
    assert params["numFolds"] == "2" and params["parallelism"] == "2" and params["seed"] == "7"
    assert params["foldCol"] == "" and params["collectSubModels"] == "False"
    assert params["estimator"] == "Pipeline"
    assert params["evaluator"] == "BinaryClassificationEvaluator"
    assert params["BinaryClassificationEvaluator.metricName"] == "areaUnderROC"
    assert params["best_LogisticRegression.regParam"] == "0.01"
    assert "estimatorParamMaps" not in params
    assert not any(k.startswith(("LogisticRegression.", "VectorAssembler")) for k in params)
    assert tags["estimator_name"] == "CrossValidator"
    assert tags["estimator_class"] == "pyspark.ml.tuning.CrossValidator"
    assert tags["mlflow.autologging"] == "pyspark.ml"  # autologging created this run
    assert not any(key.startswith("input.") for key in tags)  # the data is a run input
    (training,) = cv["parent"].inputs.dataset_inputs
    assert training.tags == [InputTag("mlflow.data.context", "train")]
    assert training.dataset.name == "dataset" and training.dataset.source_type == "code"
    assert training.dataset.digest == fingerprint(data[0]).content_hash
    assert json.loads(training.dataset.profile)["num_rows"] == 80
    assert cv["parent"].info.status == "FINISHED"
    assert cv["still_cached"], "the user's cached DataFrame must stay cached"


def test_cv_children_one_per_param_map_with_fold_metrics(cv):
    children, client = cv["children"], cv["client"]
    assert len(cv["runs"]) == 3  # parent + 2 children, nothing from the worker threads
    assert len(set(children["tags.mlflow.runName"])) == 2
    assert set(children["status"]) == {"FINISHED"}
    by_map = children.set_index("tags.sparktrack.autolog.param_map_index")
    assert by_map.loc["0", "params.LogisticRegression.regParam"] == "0.01"
    assert by_map.loc["1", "params.LogisticRegression.regParam"] == "5.0"
    row = by_map.loc["0"]
    assert row["params.stages"] == (
        "['VectorAssembler_1', 'VectorAssembler_2', 'LogisticRegression']"
    )
    assert row["params.VectorAssembler_2.outputCol"] == "features"
    assert row["tags.estimator_name"] == "Pipeline"
    model = cv["model"]
    assert [by_map.loc[str(j), "metrics.avg_areaUnderROC"] for j in (0, 1)] == pytest.approx(
        model.avgMetrics
    )
    assert [by_map.loc[str(j), "metrics.std_areaUnderROC"] for j in (0, 1)] == pytest.approx(
        model.stdMetrics
    )
    for j in (0, 1):
        folds = client.get_metric_history(by_map.loc[str(j), "run_id"], "fold_areaUnderROC")
        assert [p.step for p in folds] == [0, 1]
        assert np.mean([p.value for p in folds]) == pytest.approx(model.avgMetrics[j])


def test_cv_artifacts(cv):
    client, run_id = cv["client"], cv["parent"].info.run_id
    names = [f.path for f in client.list_artifacts(run_id)]
    assert names == [
        "best_model", "best_parameters.json", "estimator_info.json", "metric_info.json", "model",
        "search_results.csv",
    ]
    assert json.loads(_read(client, run_id, "best_parameters.json")) == {
        "LogisticRegression.regParam": 0.01
    }
    lines = _read(client, run_id, "search_results.csv").splitlines()
    assert lines[0] == "params,avg_areaUnderROC,std_areaUnderROC,param.LogisticRegression.regParam"
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["0.01", "5.0"]
    info = json.loads(_read(client, run_id, "estimator_info.json"))
    assert info["hierarchy"]["tuned_estimator"]["stages"][2] == {"name": "LogisticRegression"}
    assert info["CrossValidator"]["tuning_parameter_map_list"] == [
        {"LogisticRegression.regParam": 0.01},
        {"LogisticRegression.regParam": 5.0},
    ]
    artifact_uri = cv["parent"].info.artifact_uri
    # MLflow's model format: Spark's folder in sparkml/, a bare model wrapped in a Pipeline.
    best = PipelineModel.load(f"{artifact_uri}/best_model/sparkml")
    assert best.stages[-1].getRegParam() == 0.01
    (tuned,) = PipelineModel.load(f"{artifact_uri}/model/sparkml").stages
    assert isinstance(tuned, CrossValidatorModel)


def test_post_training_metric_names(cv):
    metrics = cv["parent"].data.metrics
    scores = cv["scores"]
    assert metrics["areaUnderROC_test"] == pytest.approx(scores[0])
    assert metrics["areaUnderROC-2_test"] == pytest.approx(scores[1])
    assert metrics["areaUnderROC-3_test-2"] == pytest.approx(scores[2])
    assert metrics["areaUnderPR_unknown_dataset"] == pytest.approx(scores[3])
    assert metrics["best_avg_areaUnderROC"] == pytest.approx(max(cv["model"].avgMetrics))


def test_post_training_metric_info_names_the_evaluator_of_each_key(cv):
    info = json.loads(_read(cv["client"], cv["parent"].info.run_id, "metric_info.json"))
    assert list(info) == [
        "areaUnderPR_unknown_dataset", "areaUnderROC-2_test", "areaUnderROC-3_test-2",
        "areaUnderROC_test",
    ]  # sorted, as MLflow writes it
    roc = {"evaluator_class": "pyspark.ml.evaluation.BinaryClassificationEvaluator",
           "params": {"labelCol": "label", "metricName": "areaUnderROC", "numBins": 1000,
                      "rawPredictionCol": "rawPrediction"}}
    assert info["areaUnderROC_test"] == info["areaUnderROC-3_test-2"] == roc
    assert info["areaUnderPR_unknown_dataset"]["params"]["metricName"] == "areaUnderPR"


def test_metric_info_is_the_file_mlflow_writes(cv):
    mlflow_ml = pytest.importorskip("mlflow.pyspark.ml")
    manager = mlflow_ml._AutologgingMetricsManager()
    roc = BinaryClassificationEvaluator()
    pr = BinaryClassificationEvaluator(metricName="areaUnderPR")
    for evaluator, dataset in [(roc, "test"), (roc, "test"), (roc, "test-2"),
                               (pr, "unknown_dataset")]:  # the fixture's evaluations
        manager.register_evaluator_call(
            "run", evaluator.getMetricName(), dataset, manager.gen_evaluator_info(evaluator)
        )
    calls = [call for per_metric in manager._evaluator_call_info["run"].values()
             for call in per_metric]
    expected = json.dumps(dict(sorted(calls, key=lambda call: call[0])), indent=2, default=str)
    assert _read(cv["client"], cv["parent"].info.run_id, "metric_info.json") == expected


# -- other estimators ---------------------------------------------------------------------------
def test_train_validation_split_over_a_plain_estimator(tracked, data):
    train, _ = data
    sparktrack.autolog(log_models=False, log_datasets=False, max_tuning_runs=2)
    lr = LinearRegression(maxIter=5)
    tuner = TrainValidationSplit(
        estimator=lr,
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.0, 1.0, 30.0]).build(),
        evaluator=RegressionEvaluator(metricName="rmse"),
        trainRatio=0.7,
        seed=3,
    )
    model = tuner.fit(_assemble().transform(train))
    runs = _runs()
    parent = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert parent["params.trainRatio"] == "0.7" and parent["params.estimator"] == "LinearRegression"
    best = int(np.argmin(model.validationMetrics))  # rmse: smaller is better
    assert parent["params.best_LinearRegression.regParam"] == str([0.0, 1.0, 30.0][best])
    kept = sorted(np.argsort(model.validationMetrics, kind="stable")[:2])
    assert sorted(children["tags.sparktrack.autolog.param_map_index"].astype(int)) == kept
    assert "metrics.std_rmse" not in children and "metrics.fold_rmse" not in children
    assert sorted(children["metrics.rmse"]) == pytest.approx(sorted(model.validationMetrics)[:2])
    assert set(children["params.maxIter"]) == {"5"}  # top level of the child: unprefixed


def test_plain_estimator_model_allowlist_and_post_training_options(tracked, data):
    train, test = data
    train, test = _assemble().transform(train), _assemble().transform(test)
    sparktrack.autolog(log_datasets=False)
    model = LogisticRegression(maxIter=3).fit(train)
    run = sparktrack.last_active_run()
    assert run.data.params["maxIter"] == "3" and "regParam" in run.data.params
    assert [f.path for f in tracked.list_artifacts(run.info.run_id)] == ["model"]
    (loaded,) = PipelineModel.load(f"{run.info.artifact_uri}/model/sparkml").stages
    assert isinstance(loaded, LogisticRegressionModel)
    assert loaded.coefficients == model.coefficients

    class Mean(Evaluator):  # a custom evaluator has no metricName: named by its class
        def _evaluate(self, dataset):
            return 0.5

    Mean().evaluate(model.transform(test))
    assert tracked.get_run(run.info.run_id).data.metrics == {"Mean_test": 0.5}

    sparktrack.autolog(
        log_datasets=False,
        log_post_training_metrics=False,
        log_model_allowlist=["pyspark.ml.classification.LinearSVCModel"],
    )
    model = LogisticRegression(maxIter=3).fit(train)
    run = sparktrack.last_active_run()
    assert tracked.list_artifacts(run.info.run_id) == []
    BinaryClassificationEvaluator().evaluate(model.transform(test))
    assert tracked.get_run(run.info.run_id).data.metrics == {}

    sparktrack.autolog(log_datasets=False, log_models=False)
    LogisticRegression(maxIter=3).fit(train)
    assert tracked.list_artifacts(sparktrack.last_active_run().info.run_id) == []


def test_pipeline_and_one_vs_rest_are_one_run_each(tracked, data):
    train, _ = data
    sparktrack.autolog(log_models=False, log_datasets=False)
    indexer = StringIndexer(inputCol="cat", outputCol="cat_index")
    indexer.fit(train)  # a feature estimator alone: no run
    assert len(_runs()) == 0
    pipeline = Pipeline(stages=[indexer, _assemble(), LogisticRegression(maxIter=3)])
    pipeline.fit(train)
    ovr = OneVsRest(classifier=LogisticRegression(maxIter=2), labelCol="label")
    ovr.fit(_assemble().transform(train))
    runs = _runs().set_index("tags.estimator_name")
    assert sorted(runs.index) == ["OneVsRest", "Pipeline"]  # inner fits are not runs
    assert runs.loc["Pipeline", "params.stages"] == (
        "['StringIndexer', 'VectorAssembler', 'LogisticRegression']"
    )
    assert runs.loc["Pipeline", "params.StringIndexer.inputCol"] == "cat"
    assert runs.loc["OneVsRest", "params.classifier"] == "LogisticRegression"
    assert runs.loc["OneVsRest", "params.LogisticRegression.maxIter"] == "2"
    info = json.loads(_read(tracked, runs.loc["OneVsRest", "run_id"], "estimator_info.json"))
    assert info == {
        "hierarchy": {"name": "OneVsRest", "classifier": {"name": "LogisticRegression"}}
    }


def _small_cv(seed: int = 1) -> CrossValidator:
    lr = LogisticRegression(maxIter=3)
    return CrossValidator(
        estimator=lr,
        estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.01, 1.0]).build(),
        evaluator=BinaryClassificationEvaluator(),
        numFolds=2,
        seed=seed,
    )


def test_tuner_twice_in_an_active_run_keeps_everything(tracked, data):
    train, _ = data
    train = _assemble().transform(train)
    sparktrack.autolog(log_models=False, log_datasets=False)
    with sparktrack.start_run() as run:
        _small_cv(seed=1).fit(train)
        _small_cv(seed=2).fit(train)
        assert sparktrack.active_run().info.status == "RUNNING"
    data_ = tracked.get_run(run.info.run_id).data
    suffixed = [k for k in data_.params if k.startswith("seed-")]
    assert data_.params["seed"] == "1" and len(suffixed) == 1
    assert data_.params[suffixed[0]] == "2"
    suffix = suffixed[0].split("-", 1)[1]
    names = {f.path for f in tracked.list_artifacts(run.info.run_id)}
    assert {"search_results.csv", f"search_results-{suffix}.csv"} <= names
    assert {"best_parameters.json", f"best_parameters-{suffix}.json"} <= names
    runs = _runs()
    assert len(runs) == 5
    assert (runs["tags.mlflow.parentRunId"] == run.info.run_id).sum() == 4


def test_failure_inside_a_real_fit_fails_the_run(tracked, data):
    train, _ = data
    sparktrack.autolog(log_models=False, log_datasets=False)
    with pytest.raises(Exception, match="missing_column"):
        LogisticRegression(featuresCol="missing_column").fit(train)
    assert sparktrack.last_active_run().info.status == "FAILED"


def test_failure_while_logging_children_keeps_the_fit_and_the_rest(tracked, data, monkeypatch):
    train, _ = data
    sparktrack.autolog(log_models=False, log_datasets=False)

    def broken(*args, **kwargs):
        raise RuntimeError("children unavailable")

    monkeypatch.setattr(autolog_tuning, "log_child_runs", broken)
    with pytest.warns(AutologgingWarning, match="children unavailable") as caught:
        model = _small_cv().fit(_assemble().transform(train))
    assert isinstance(model, CrossValidatorModel)
    assert len([w for w in caught if issubclass(w.category, AutologgingWarning)]) == 1
    run = sparktrack.last_active_run()
    assert run.info.status == "FINISHED"
    assert "best_LogisticRegression.regParam" in run.data.params
    assert len(_runs()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BinaryClassificationEvaluator().evaluate(model.transform(_assemble().transform(train)))


def test_child_params_are_those_of_the_copied_estimator(spark):
    from sparktrack._autolog import naming

    lr = LogisticRegression(maxIter=3)
    ovr = OneVsRest(classifier=lr)
    pipeline = Pipeline(stages=[StringIndexer(inputCol="cat", outputCol="i"), _assemble(), ovr])
    other = LogisticRegression(maxIter=9, regParam=0.3)
    grid = (
        ParamGridBuilder()
        .addGrid(lr.regParam, [0.0, 1.0])
        .addGrid(ovr.classifier, [lr, other])
        .build()
    )
    names = naming.indexed_names(pipeline)
    names[other.uid] = "LogisticRegression_2"
    for grid_point in grid:
        copied = naming.flatten_params(pipeline.copy(grid_point), names)
        assert naming.copied_params(pipeline, grid_point, names) == copied
    plain = ParamGridBuilder().addGrid(lr.regParam, [0.0, 1.0]).addGrid(lr.maxIter, [1]).build()
    for grid_point in plain:
        copied = naming.flatten_params(pipeline.copy(grid_point), names)
        assert naming.flatten_params(pipeline, names, extra=grid_point) == copied

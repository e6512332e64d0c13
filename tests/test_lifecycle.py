"""The model lifecycle end to end: log, register, alias, transition, load by every URI, score,
and ask the history, with real Spark ML models (a Pipeline with a feature stage and a
classifier, and a regressor) and the real registry on Delta."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pyspark")

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack._models.scoring import score  # noqa: E402
from sparktrack.errors import InvalidInputError, NotFoundError  # noqa: E402

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def frames(spark):
    rows = [(float(i % 7), float(i % 3), "gold" if i % 4 else "basic", float(i % 2))
            for i in range(40)]
    return spark.createDataFrame(rows, ["a", "b", "plan", "label"])


@pytest.fixture(scope="module")
def models(frames):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression

    features = [StringIndexer(inputCol="plan", outputCol="plan_index"),
                VectorAssembler(inputCols=["a", "b", "plan_index"], outputCol="features")]
    classifier = Pipeline(stages=[*features, LogisticRegression(maxIter=5)]).fit(frames)
    regressor = Pipeline(stages=[*features, LinearRegression(maxIter=5)]).fit(frames)
    return classifier, regressor


def _predictions(model, df) -> list[float]:
    return [row.prediction for row in model.transform(df).orderBy("a", "b", "plan").collect()]


def test_train_register_alias_transition_load_score_and_ask_history(
    tracking, spark, frames, models, tmp_path
):
    classifier, regressor = models
    client = TrackingClient(tracking)
    with sparktrack.start_run() as first:
        sparktrack.spark.log_model(classifier, "model", registered_model_name="churn")
    with sparktrack.start_run() as second:
        sparktrack.spark.log_model(classifier, "model")
    v2 = sparktrack.register_model(f"runs:/{second.info.run_id}/model", "churn")
    assert v2.version == 2 and v2.run_id == second.info.run_id

    client.set_registered_model_alias("churn", "champion", 1)
    client.transition_model_version_stage("churn", 1, "Production")
    client.transition_model_version_stage("churn", 2, "Staging")
    assert client.get_model_version_by_alias("churn", "champion").version == 1
    assert client.get_registered_model("churn").aliases == {"champion": 1}

    expected = _predictions(classifier, frames)
    for uri in ("models:/churn/1", "models:/churn/latest", "models:/churn/Production",
                "models:/churn/staging", "models:/churn@champion",
                f"runs:/{first.info.run_id}/model"):
        assert _predictions(sparktrack.spark.load_model(uri), frames) == expected, uri

    # The champion moves to version 2: the same URI now loads it.
    client.set_registered_model_alias("churn", "champion", 2)
    assert client.get_model_version_download_uri("churn", 2).endswith(
        f"{second.info.run_id}/model")
    pandas_out = sparktrack.spark.predict("models:/churn@champion", frames.toPandas())
    assert sorted(pandas_out["prediction"].tolist()) == sorted(expected)

    # Batch scoring through Spark, recorded as a run.
    held_out = str(tmp_path / "held_out")
    frames.drop("label").write.parquet(held_out)
    result = score("models:/churn@champion", held_out, str(tmp_path / "predictions"),
                   spark=spark)
    assert (result.model_name, result.model_version, result.rows) == ("churn", "2", 40)
    predictions = spark.read.parquet(str(tmp_path / "predictions"))
    assert predictions.count() == 40 and "prediction" in predictions.columns
    assert os.path.isdir(str(tmp_path / "predictions" / "_delta_log"))
    scoring = client.get_run(result.run_id)
    assert scoring.data.params["model_version"] == "2" and scoring.data.metrics["rows"] == 40

    # A regressor goes the same way.
    with sparktrack.start_run():
        info = sparktrack.spark.log_model(regressor, "reg", registered_model_name="price")
    loaded = sparktrack.spark.load_model("models:/price/1")
    assert _predictions(loaded, frames) == _predictions(regressor, frames)
    assert info.model_uri.endswith("/reg")

    # History: which version was in Production, and every alias move, as rows.
    history = client.get_registry_history("churn")
    moves = [(e["event"], e["alias"], e["version"]) for e in history if "ALIAS" in e["event"]]
    assert moves == [("SET_ALIAS", "champion", 1), ("MOVE_ALIAS", "champion", 2)]
    transitions = [(e["version"], e["stage"]) for e in history
                   if e["event"] == "TRANSITION_STAGE"]
    assert transitions == [(1, "Production"), (2, "Staging")]


def test_bad_model_uris_and_unknown_versions_are_typed_errors(tracking, frames, models):
    classifier, _ = models
    with sparktrack.start_run():
        sparktrack.spark.log_model(classifier, "model", registered_model_name="small")
    for uri, error in (("models:/small/7", NotFoundError), ("models:/absent/1", NotFoundError),
                       ("models:/small@nobody", InvalidInputError),
                       ("models:/", InvalidInputError), ("models:/small/Shipped", InvalidInputError)):
        with pytest.raises(error):
            sparktrack.spark.load_model(uri)

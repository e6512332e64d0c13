"""Datasets as run inputs (MLflow's run.inputs): the inputs table, log_inputs, log_input, and
what autologging records about the training DataFrame (an input, not tags on the user's run)."""

from __future__ import annotations

import json
import os
import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable

import sparktrack
from sparktrack import TrackingClient
from sparktrack.entities import Dataset, DatasetInput, InputTag, Run, RunInputs
from sparktrack.errors import InvalidInputError, InvalidStateError, LimitExceededError
from sparktrack._store import TrackingStore
from sparktrack._store.schemas import INPUTS

CONTEXT = "mlflow.data.context"


def _dataset(name="train", digest="0a1b2c3d", **fields) -> Dataset:
    values = {"source_type": "spark", "source": json.dumps({"path": "/data/x"}), **fields}
    return Dataset(name=name, digest=digest, **values)


@pytest.fixture()
def client(store_uri):
    return TrackingClient(store_uri)


@pytest.fixture()
def run_id(client):
    return client.create_run("0").info.run_id


# -- store and client ---------------------------------------------------------------------------
def test_log_inputs_round_trip_through_get_run_in_a_fresh_store(client, run_id, store_uri):
    full = _dataset(schema='{"mlflow_colspec": []}', profile='{"num_rows": 3}')
    client.log_inputs(run_id, [
        DatasetInput(full, [InputTag("split", "a"), InputTag(CONTEXT, "train")]),
        DatasetInput(_dataset("eval", "ffff")),
    ])
    client.flush()  # the run's own row is buffered; the inputs were committed at once
    fresh = TrackingStore(store_uri)  # nothing cached: read back from the Delta tables
    inputs = fresh.get_run(run_id).inputs
    assert inputs == fresh.get_run_inputs(run_id)
    assert [i.dataset for i in inputs.dataset_inputs] == [full, _dataset("eval", "ffff")]
    assert inputs.dataset_inputs[0].tags == [InputTag("split", "a"), InputTag(CONTEXT, "train")]
    assert inputs.dataset_inputs[1].tags == []
    assert inputs.model_inputs == []


def test_same_name_and_digest_is_one_input_the_first(client, run_id):
    first = DatasetInput(_dataset(), [InputTag(CONTEXT, "train")])
    again = DatasetInput(_dataset(source='{"path": "/elsewhere"}'), [InputTag(CONTEXT, "eval")])
    client.log_inputs(run_id, [first, again])  # within one call
    client.log_inputs(run_id, [again, DatasetInput(_dataset(digest="other"))])  # across calls
    inputs = client.get_run(run_id).inputs.dataset_inputs
    assert [i.dataset.digest for i in inputs] == ["0a1b2c3d", "other"]
    assert inputs[0] == first
    rows = DeltaTable(os.path.join(client.tracking_uri, "inputs")).to_pyarrow_table()
    assert rows.num_rows == 2  # the repeat was not written


def test_a_run_without_inputs_has_empty_inputs(client, run_id):
    assert client.get_run(run_id).inputs == RunInputs()
    assert Run(info=client.get_run_info(run_id), data=client.get_run(run_id).data).inputs == (
        RunInputs()
    )


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (DatasetInput(_dataset(digest="")), InvalidInputError, "digest must be a non-empty"),
        (DatasetInput(_dataset(source=None)), InvalidInputError, "source must be a non-empty"),
        (DatasetInput(_dataset(digest="d" * 37)), LimitExceededError, "digest .* limit is 36"),
        (DatasetInput(_dataset(name="n" * 501)), LimitExceededError, "name .* limit is 500"),
        (DatasetInput(_dataset(schema={"a": 1})), InvalidInputError, "schema .* JSON string"),
        (DatasetInput(_dataset(), [InputTag("k", "v" * 501)]), LimitExceededError, "limit is 500"),
        (DatasetInput(_dataset(), [InputTag("k" * 256, "v")]), LimitExceededError, "limit is 255"),
        (DatasetInput(_dataset(), [InputTag("k", 3)]), InvalidInputError, "string value"),
        ("not an input", InvalidInputError, "must be a sparktrack.entities.DatasetInput"),
    ],
)
def test_bad_inputs_are_rejected_before_anything_is_written(client, run_id, bad, error, message):
    good = DatasetInput(_dataset("good", "1234"))
    with pytest.raises(error, match=message):
        client.log_inputs(run_id, [good, bad])
    assert client.get_run(run_id).inputs == RunInputs()
    assert not os.path.exists(os.path.join(client.tracking_uri, "inputs", "_delta_log"))


def test_log_inputs_arguments(client, run_id):
    with pytest.raises(InvalidInputError, match="must be a list of DatasetInput"):
        client.log_inputs(run_id, DatasetInput(_dataset()))
    with pytest.raises(InvalidInputError, match="logged models"):
        client.log_inputs(run_id, models=["m-123"])
    client.log_inputs(run_id)  # nothing to do, as in MLflow
    client.log_inputs(run_id, [])
    assert client.get_run(run_id).inputs == RunInputs()


def test_a_deleted_run_takes_no_inputs_a_finished_one_does(client, run_id):
    client.set_terminated(run_id)
    client.log_inputs(run_id, [DatasetInput(_dataset())])
    client.delete_run(run_id)
    with pytest.raises(InvalidStateError, match="active"):
        client.log_inputs(run_id, [DatasetInput(_dataset("other", "9"))])
    assert len(client.get_run(run_id).inputs.dataset_inputs) == 1


def test_mlflow_entities_are_accepted(client, run_id):
    entities = pytest.importorskip("mlflow.entities")
    dataset = entities.Dataset(name="d", digest="abc", source_type="code", source="{}",
                               schema=None, profile='{"approx_count": 5}')
    item = entities.DatasetInput(dataset=dataset, tags=[entities.InputTag(CONTEXT, "eval")])
    client.log_inputs(run_id, [item])
    (stored,) = client.get_run(run_id).inputs.dataset_inputs
    assert stored.dataset == Dataset("d", "abc", "code", "{}", None, '{"approx_count": 5}')
    assert stored.tags == [InputTag(CONTEXT, "eval")]


def test_the_inputs_table_is_a_delta_table_partitioned_by_experiment(client):
    experiment = client.create_experiment("inputs")
    run_id = client.create_run(experiment).info.run_id
    client.log_inputs(run_id, [DatasetInput(_dataset(), [InputTag(CONTEXT, "train")])])
    table = DeltaTable(os.path.join(client.tracking_uri, "inputs"))
    assert table.metadata().partition_columns == ["experiment_id"]
    rows = table.to_pyarrow_table()
    assert rows.schema.names == INPUTS.schema.names
    row = rows.to_pylist()[0]
    assert row["run_id"] == run_id and row["experiment_id"] == experiment
    assert row["context"] == "train" and row["tags"] == [(CONTEXT, "train")]


def test_gc_removes_the_inputs_of_collected_runs(client):
    doomed = client.create_run("0").info.run_id
    kept = client.create_run("0").info.run_id
    for run_id in (doomed, kept):
        client.log_inputs(run_id, [DatasetInput(_dataset())])
    client.delete_run(doomed)
    assert client.gc(older_than=timedelta(0)).run_ids == [doomed]
    rows = DeltaTable(os.path.join(client.tracking_uri, "inputs")).to_pyarrow_table()
    assert rows.column("run_id").to_pylist() == [kept]


# -- fluent log_input ---------------------------------------------------------------------------
def test_log_input_mlflow_form_records_an_input_and_no_tags(tracking):
    with sparktrack.start_run() as run:
        tags_before = dict(sparktrack.get_run(run.info.run_id).data.tags)
        assert sparktrack.log_input(_dataset(), context="training", tags={"k": "v"}) == {}
    stored = sparktrack.get_run(run.info.run_id)
    assert stored.data.tags == tags_before
    (item,) = stored.inputs.dataset_inputs
    assert item.dataset == _dataset()
    assert item.tags == [InputTag("k", "v"), InputTag(CONTEXT, "training")]  # MLflow's order


def test_log_input_checks_its_arguments(tracking):
    with sparktrack.start_run():
        with pytest.raises(InvalidInputError, match="needs a dataset"):
            sparktrack.log_input(context="training")
        with pytest.raises(InvalidInputError, match="logged model"):
            sparktrack.log_input(model=object())


# -- Spark: DataFrames as datasets --------------------------------------------------------------
def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 2))
    label = (x[:, 0] + rng.normal(scale=0.5, size=n) > 0).astype(float)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": label})


@pytest.fixture()
def tracked(tracking):
    yield TrackingClient(tracking)
    sparktrack.autolog(disable=True)


@pytest.mark.spark
def test_log_input_dataframe_form_records_an_input_and_its_tags(spark, tracking, tmp_path):
    from sparktrack.repro import fingerprint

    path = str(tmp_path / "data.parquet")
    spark.range(20).selectExpr("id", "id * 2 AS y").write.parquet(path)
    df = spark.read.parquet(path)
    with sparktrack.start_run() as run:
        tags = sparktrack.log_input(df, name="train", context="training")
    stored = sparktrack.get_run(run.info.run_id)
    assert tags["input.train.rows"] == "20"
    assert stored.data.tags["input.train.context"] == "training"
    (item,) = stored.inputs.dataset_inputs
    assert item.tags == [InputTag(CONTEXT, "training")]
    dataset = item.dataset
    assert dataset.name == "train" and dataset.digest == fingerprint(df).content_hash
    assert dataset.source_type == "spark"
    assert json.loads(dataset.source) == {"path": tags["input.train.source"]}
    profile = json.loads(dataset.profile)
    assert profile["num_rows"] == 20 and profile["format"] == "parquet"
    assert json.loads(dataset.schema) == {"mlflow_colspec": [
        {"type": "long", "name": "id", "required": True},
        {"type": "long", "name": "y", "required": True},
    ]}


@pytest.mark.spark
def test_a_delta_table_is_a_delta_table_source(spark, tmp_path):
    from deltalake import write_deltalake

    from sparktrack._autolog.inputs import describe_dataset

    path = str(tmp_path / "table")
    write_deltalake(path, _frame(10))
    write_deltalake(path, _frame(5), mode="append")
    dataset, _ = describe_dataset(spark.read.parquet(path))
    assert dataset.source_type == "delta_table"
    assert json.loads(dataset.source) == {"path": path, "delta_table_version": 1}
    profile = json.loads(dataset.profile)
    assert profile["num_rows"] == 15 and profile["delta_snapshot_match"] is True
    in_memory, _ = describe_dataset(spark.createDataFrame(_frame(4)))
    assert in_memory.source_type == "code"
    assert json.loads(in_memory.source)["tags"]["mlflow.user"]  # MLflow's code source shape


@pytest.mark.spark
def test_schema_is_the_one_mlflow_infers(spark):
    spark_dataset = pytest.importorskip("mlflow.data.spark_dataset")
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import types as T

    from sparktrack._autolog.inputs import mlflow_schema

    inner = T.StructType([T.StructField("i", T.IntegerType(), False),
                          T.StructField("t", T.StringType())])
    supported = T.StructType([
        T.StructField("byte", T.ByteType()), T.StructField("short", T.ShortType()),
        T.StructField("int", T.IntegerType()), T.StructField("long", T.LongType(), False),
        T.StructField("float", T.FloatType()), T.StructField("double", T.DoubleType()),
        T.StructField("bool", T.BooleanType()), T.StructField("text", T.StringType()),
        T.StructField("bytes", T.BinaryType()), T.StructField("day", T.DateType()),
        T.StructField("time", T.TimestampType()), T.StructField("features", VectorUDT()),
        T.StructField("ints", T.ArrayType(T.IntegerType())), T.StructField("struct", inner),
        T.StructField("structs", T.ArrayType(inner)),
    ])
    unsupported = [T.DecimalType(10, 2), T.TimestampNTZType()]
    for schema in [supported, *(T.StructType([T.StructField("x", k)]) for k in unsupported)]:
        df = spark.createDataFrame([], schema)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's hints about integer columns
            inferred = spark_dataset.SparkDataset(df=df, source=CodeDatasetSource({})).schema
        expected = None if inferred is None else json.dumps(
            {"mlflow_colspec": inferred.to_dict()}
        )
        assert mlflow_schema(df.schema) == expected


# -- Spark: autologging ------------------------------------------------------------------------
@pytest.mark.spark
def test_autolog_in_a_user_run_adds_an_input_and_only_mlflows_tags(spark, tracked):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    from sparktrack.repro import fingerprint

    train = VectorAssembler(inputCols=["a", "b"], outputCol="features").transform(
        spark.createDataFrame(_frame(40))
    )
    sparktrack.autolog(log_models=False)
    with sparktrack.start_run() as run:
        before = set(sparktrack.get_run(run.info.run_id).data.tags)
        LogisticRegression(maxIter=2).fit(train)
    stored = tracked.get_run(run.info.run_id)
    # MLflow sets these two on a run the user started; nothing else (no mlflow.autologging,
    # no input.* tags), so comparing tag sets with MLflow's run gives the same set.
    assert set(stored.data.tags) - before == {"estimator_name", "estimator_class"}
    (item,) = stored.inputs.dataset_inputs
    assert item.tags == [InputTag(CONTEXT, "train")]
    assert item.dataset.name == "dataset"  # MLflow's autologging names its dataset so
    assert item.dataset.digest == fingerprint(train).content_hash
    assert json.loads(item.dataset.profile)["num_rows"] == 40
    assert [c["name"] for c in json.loads(item.dataset.schema)["mlflow_colspec"]] == [
        "a", "b", "label", "features"
    ]

    LogisticRegression(maxIter=2).fit(train)  # outside a run: autologging creates one
    created = sparktrack.last_active_run()
    assert created.data.tags["mlflow.autologging"] == "pyspark.ml"
    assert [i.tags for i in created.inputs.dataset_inputs] == [[InputTag(CONTEXT, "train")]]


@pytest.mark.spark
def test_inputs_as_a_spark_table(spark, tracked):
    client = tracked
    runs = [client.create_run("0").info.run_id for _ in range(2)]
    client.log_inputs(runs[0], [DatasetInput(_dataset(), [InputTag(CONTEXT, "train")])])
    client.log_inputs(runs[0], [DatasetInput(_dataset(), [InputTag(CONTEXT, "eval")])])  # again
    client.log_inputs(runs[1], [DatasetInput(_dataset("eval", "77"))])
    client.delete_run(runs[1])
    client.flush()  # Spark reads the store in its own worker processes, not through this buffer
    frame = (
        spark.read.format("sparktrack").option("table", "inputs").load(client.tracking_uri)
    )
    rows = [r.asDict() for r in frame.collect()]  # the deleted run's input is left out
    assert [(r["run_id"], r["name"], r["context"]) for r in rows] == [(runs[0], "train", "train")]

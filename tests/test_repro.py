"""Reproducible-training helpers: the layout problem with real MLlib estimators, and the fixes."""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd
import pytest

from sparktrack.errors import InvalidInputError

pyspark = pytest.importorskip("pyspark")

from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from sparktrack import repro  # noqa: E402
from sparktrack.repro import _inputs, _layout  # noqa: E402

FEATURES = ["f0", "f1", "f2", "f3"]


def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A small binary-classification table with an id, four features and a non-linear label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    noise = rng.normal(scale=0.8, size=n)
    label = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3] + noise > 0).astype(float)
    pdf = pd.DataFrame(x, columns=FEATURES)
    pdf.insert(0, "id", np.arange(n, dtype="int64"))
    pdf["label"] = label
    return pdf


def _layouts(spark, pdf: pd.DataFrame) -> dict[str, object]:
    """The same rows arriving three ways: 1 partition in order, 3 and 8 partitions shuffled."""

    def make(parts: int, shuffle_seed: int | None):
        rows = pdf if shuffle_seed is None else pdf.sample(frac=1.0, random_state=shuffle_seed)
        df = spark.createDataFrame(rows)
        return df.coalesce(1) if parts == 1 else df.repartition(parts)

    return {"1 in order": make(1, None), "3 shuffled": make(3, 1), "8 shuffled": make(8, 2)}


def _bits(values) -> tuple[str, ...]:
    """Exact bit patterns of floats, so that "equal" means bit-identical."""
    return tuple(struct.pack(">d", float(v)).hex() for v in values)


def _rf_fingerprint(model) -> tuple:
    """A random forest's trees (without the uid header lines) and feature importances."""
    trees = tuple(t.toDebugString.split("\n", 1)[1] for t in model.trees)
    return trees, _bits(model.featureImportances.toArray())


def _partitions(df) -> list[list[tuple]]:
    """Rows of each partition, in order (collect keeps partition and in-partition order)."""
    rows = df.withColumn("_pid", F.spark_partition_id()).collect()
    n = max((r["_pid"] for r in rows), default=-1) + 1
    parts: list[list[tuple]] = [[] for _ in range(n)]
    for r in rows:
        parts[r["_pid"]].append(tuple(r)[:-1])
    return parts


# --------------------------------------------------------------------------------------------
# The problem, and its removal, with real MLlib estimators
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(spark):
    pdf = _frame()
    return pdf, _layouts(spark, pdf), spark.createDataFrame(_frame(300, seed=1)).coalesce(1)


def _random_forest(train, test):
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler

    assembler = VectorAssembler(inputCols=FEATURES, outputCol="features")
    model = RandomForestClassifier(numTrees=6, maxDepth=3, seed=7).fit(assembler.transform(train))
    predictions = model.transform(assembler.transform(test))
    # Accuracy comes from integer confusion counts, so it does not depend on the order in which
    # Spark merges task results (areaUnderROC sums floats in that order).
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(predictions)
    return model, accuracy


@pytest.mark.spark
def test_random_forest_depends_on_layout_without_helpers(data):
    _, layouts, test = data
    results = {name: _random_forest(df, test) for name, df in layouts.items()}
    models = {name: _rf_fingerprint(model) for name, (model, _) in results.items()}
    importances = {name: m[1] for name, m in models.items()}
    # Bootstrap samples are drawn per partition (seeded by the partition index), so the same
    # rows in another layout grow other trees.
    assert len(set(models.values())) == 3, importances
    assert len({accuracy for _, accuracy in results.values()}) > 1


@pytest.mark.spark
def test_random_forest_is_bit_identical_with_deterministic(data):
    _, layouts, test = data
    results = {name: _random_forest(repro.deterministic(df), test) for name, df in layouts.items()}
    models = {name: _rf_fingerprint(model) for name, (model, _) in results.items()}
    metrics = {name: _bits([accuracy]) for name, (_, accuracy) in results.items()}
    assert len(set(models.values())) == 1
    assert len(set(metrics.values())) == 1


@pytest.mark.spark
def test_random_split_depends_on_layout_deterministic_split_does_not(data):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    _, layouts, _ = data
    assembler = VectorAssembler(inputCols=FEATURES, outputCol="features")
    lr = LogisticRegression(maxIter=10, regParam=0.01)

    plain, helped = {}, {}
    for name, df in layouts.items():
        train, _ = df.randomSplit([0.8, 0.2], seed=7)
        plain[name] = repro.fingerprint(train).content_hash
        train, _ = repro.deterministic_split(df, [0.8, 0.2], seed=7, keys="id")
        train = repro.deterministic(train)
        fp = repro.fingerprint(train)
        helped[name] = ((fp.content_hash, fp.layout_hash), lr.fit(assembler.transform(train)))

    # randomSplit samples each partition in arrival order: other rows end up in training (and
    # so another model; the forest tests above already show a model changing).
    assert len(set(plain.values())) == 3
    # The hash split picks the same rows, and deterministic() lays them out the same way.
    assert len({h for h, _ in helped.values()}) == 1
    coefficients = [m.coefficients.toArray() for _, m in helped.values()]
    intercepts = [m.intercept for _, m in helped.values()]
    # Same input partitions, same order: in practice bit-identical. Spark still adds the
    # partitions' gradients in task-completion order (treeAggregate's final fold), which no
    # input layout can fix, so only agreement to rounding is asserted here.
    for c, i in zip(coefficients[1:], intercepts[1:], strict=True):
        np.testing.assert_allclose(c, coefficients[0], rtol=1e-12, atol=1e-14)
        assert math.isclose(i, intercepts[0], rel_tol=1e-12, abs_tol=1e-14)


# --------------------------------------------------------------------------------------------
# deterministic
# --------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_deterministic_gives_same_partitions_in_same_order(data):
    pdf, layouts, _ = data
    results = [_partitions(repro.deterministic(df, num_partitions=5)) for df in layouts.values()]
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 5
    rows = sorted(r for part in results[0] for r in part)
    assert rows == sorted(tuple(r) for r in pdf.itertuples(index=False))


@pytest.mark.spark
def test_deterministic_keeps_schema_and_defaults_to_shuffle_partitions(spark, data):
    _, layouts, _ = data
    df = layouts["3 shuffled"]
    out = repro.deterministic(df)
    assert out.schema == df.schema
    assert out.rdd.getNumPartitions() == int(spark.conf.get("spark.sql.shuffle.partitions"))
    assert repro.deterministic(df, num_partitions=3, keys=["id"]).rdd.getNumPartitions() == 3


@pytest.mark.spark
def test_deterministic_with_non_unique_keys_and_duplicate_rows(spark):
    rows = [(i % 3, float(i % 5), f"s{i % 4}") for i in range(60)] * 2  # every row twice
    rng = np.random.default_rng(3)
    schema = "k int, x double, s string"
    layouts = [
        spark.createDataFrame(rows, schema).coalesce(1),
        spark.createDataFrame([rows[i] for i in rng.permutation(len(rows))], schema).repartition(4),
        spark.createDataFrame([rows[i] for i in rng.permutation(len(rows))], schema).repartition(7),
    ]
    results = [_partitions(repro.deterministic(df, keys="k", num_partitions=2)) for df in layouts]
    assert results[0] == results[1] == results[2]
    # Keyed on k: each k lives in exactly one partition.
    homes = {}
    for pid, part in enumerate(results[0]):
        for k, *_ in part:
            assert homes.setdefault(k, pid) == pid


@pytest.mark.spark
def test_deterministic_separates_signed_zeros(spark):
    rows = [(1, 0.0), (1, -0.0)] * 3
    a = spark.createDataFrame(rows, "k int, x double").coalesce(1)
    b = spark.createDataFrame(rows[::-1], "k int, x double").repartition(3)
    got = [
        [str(x) for _, x in part]
        for df in (a, b)
        for part in _partitions(repro.deterministic(df, keys="k", num_partitions=1))
    ]
    assert got[0] == got[1] == ["-0.0"] * 3 + ["0.0"] * 3


@pytest.mark.spark
def test_deterministic_handles_vectors_and_top_level_maps(spark):
    from pyspark.ml.linalg import Vectors

    rows = [
        (1, Vectors.dense([0.0, 1.5]), {"a": 1, "b": 2}),
        (2, Vectors.sparse(2, [1], [1.5]), {"b": 2, "a": 1}),
        (3, Vectors.dense([2.0, -1.0]), {"c": 3}),
    ] * 2
    schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("v", repro_vector_type()),
            T.StructField("m", T.MapType(T.StringType(), T.IntegerType())),
        ]
    )
    a = spark.createDataFrame(rows, schema).coalesce(1)
    b = spark.createDataFrame(rows[::-1], schema).repartition(3)
    pa = _partitions(repro.deterministic(a.drop("id"), num_partitions=2))
    pb = _partitions(repro.deterministic(b.drop("id"), num_partitions=2))
    assert [[(str(v), sorted(m.items())) for v, m in p] for p in pa] == [
        [(str(v), sorted(m.items())) for v, m in p] for p in pb
    ]
    assert repro.fingerprint(a).content_hash == repro.fingerprint(b).content_hash


def repro_vector_type():
    from pyspark.ml.linalg import VectorUDT

    return VectorUDT()


@pytest.mark.spark
@pytest.mark.parametrize(
    ("schema", "value", "column"),
    [
        ("id int, nested struct<m: map<string,int>>", (1, ({"a": 1},)), "nested"),
        ("id int, mm map<string, map<string,int>>", (1, {"a": {"b": 1}}), "mm"),
        ("id int, ci interval day", None, None),  # day-time intervals are orderable: no error
    ],
)
def test_deterministic_rejects_unorderable_columns_naming_them(spark, schema, value, column):
    df = spark.createDataFrame([value] if value else [], schema)
    if column is None:
        repro.deterministic(df)
        return
    for call in (
        lambda: repro.deterministic(df),
        lambda: repro.deterministic(df, keys="id"),  # non-key columns order ties too
        lambda: repro.fingerprint(df),
        lambda: repro.deterministic_split(df, [1, 1], seed=1),
    ):
        with pytest.raises(InvalidInputError, match=f"column '{column}'.*to_json"):
            call()


@pytest.mark.spark
def test_bad_keys_and_partitions_are_named(data):
    _, layouts, _ = data
    df = layouts["1 in order"]
    with pytest.raises(InvalidInputError, match="'nope'.*columns: id, f0"):
        repro.deterministic(df, keys=["id", "nope"])
    with pytest.raises(InvalidInputError, match="'id' is given twice"):
        repro.deterministic(df, keys=["id", "id"])
    with pytest.raises(InvalidInputError, match="keys is empty"):
        repro.deterministic(df, keys=[])
    with pytest.raises(InvalidInputError, match="num_partitions must be a positive integer"):
        repro.deterministic(df, num_partitions=0)
    with pytest.raises(InvalidInputError, match="'nope'"):
        repro.deterministic_split(df, [1, 1], seed=1, keys="nope")
    with pytest.raises(InvalidInputError, match="'nope'"):
        repro.fingerprint(df, keys=("nope",))


# --------------------------------------------------------------------------------------------
# deterministic_split
# --------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_deterministic_split_same_rows_on_every_layout(spark):
    pdf = _frame(2000, seed=5)
    weights = [0.7, 0.2, 0.1]
    per_layout = []
    for df in _layouts(spark, pdf).values():
        splits = repro.deterministic_split(df, weights, seed=42, keys="id")
        per_layout.append([sorted(r["id"] for r in s.select("id").collect()) for s in splits])
    assert per_layout[0] == per_layout[1] == per_layout[2]
    ids = [i for split in per_layout[0] for i in split]
    assert sorted(ids) == list(range(2000))  # nothing lost, nothing twice
    for split, w in zip(per_layout[0], weights, strict=True):
        assert abs(len(split) / 2000 - w) < 0.04
    other = repro.deterministic_split(_layouts(spark, pdf)["3 shuffled"], weights, seed=43)
    assert sorted(r["id"] for r in other[0].select("id").collect()) != per_layout[0][0]


@pytest.mark.spark
def test_deterministic_split_zero_weight_and_all_columns(spark):
    df = spark.range(500).withColumn("x", F.col("id") % 7)
    a, empty, b = repro.deterministic_split(df, [1, 0, 3], seed=0)
    assert empty.count() == 0
    assert a.count() + b.count() == 500
    assert a.join(b, "id").count() == 0
    (whole,) = repro.deterministic_split(df, [2.5], seed=0)
    assert whole.count() == 500


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "weights is empty"),
        ([0.5, -0.5], r"weights\[1\] = -0.5"),
        ([0, 0.0], "sum to 0"),
        ([1, "a"], r"weights\[1\] = 'a' is not a number"),
        ([1, True], r"weights\[1\] = True is not a number"),
        ([1, float("nan")], r"weights\[1\] = nan"),
        ([1, float("inf")], r"weights\[1\] = inf"),
        ("0.8,0.2", "must be a list of numbers"),
        (0.8, "must be a list of numbers"),
    ],
)
def test_deterministic_split_rejects_bad_weights(weights, message):
    # Weights are checked before the DataFrame is looked at.
    with pytest.raises(InvalidInputError, match=message):
        repro.deterministic_split(None, weights, seed=1)  # type: ignore[arg-type]


@pytest.mark.spark
def test_deterministic_split_rejects_bad_seed(spark):
    df = spark.range(3)
    for seed in (1.5, "1", True, 2**63):
        with pytest.raises(InvalidInputError, match="seed"):
            repro.deterministic_split(df, [1, 1], seed=seed)  # type: ignore[arg-type]


def test_cut_points_tile_the_unit_interval():
    cuts = _layout._cut_points([0.1] * 10)
    assert cuts[-1] == 1.0
    assert cuts == sorted(cuts)
    assert _layout._cut_points([3, 1]) == [0.75, 1.0]


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_fingerprint_content_is_layout_free_and_layout_is_not(data):
    _, layouts, _ = data
    fps = [repro.fingerprint(df) for df in layouts.values()]
    assert {fp.row_count for fp in fps} == {600}
    assert len({fp.content_hash for fp in fps}) == 1
    assert len({fp.layout_hash for fp in fps}) == 3
    assert all(len(fp.content_hash) == 16 and int(fp.content_hash, 16) >= 0 for fp in fps)
    same = [repro.fingerprint(repro.deterministic(df)) for df in layouts.values()]
    assert len(set(same)) == 1
    assert same[0].content_hash == fps[0].content_hash
    with pytest.raises(AttributeError):
        same[0].row_count = 1  # type: ignore[misc]


@pytest.mark.spark
def test_fingerprint_sees_duplicates_nulls_columns_and_keys(spark):
    df = spark.createDataFrame([(1, 2), (3, 4)], "a int, b int")
    base = repro.fingerprint(df).content_hash
    assert repro.fingerprint(df.union(df)).content_hash != base
    assert repro.fingerprint(df.withColumnRenamed("b", "c")).content_hash != base
    assert repro.fingerprint(df.filter("a = 1")).content_hash != base
    # Spark's xxhash64 alone cannot tell (null, 1) from (1, null).
    nulls = "a int, b int"
    assert (
        repro.fingerprint(spark.createDataFrame([(None, 1)], nulls)).content_hash
        != repro.fingerprint(spark.createDataFrame([(1, None)], nulls)).content_hash
    )
    keyed = repro.fingerprint(df.withColumn("c", F.rand(1)), keys=["a", "b"])
    assert keyed.content_hash == base
    empty = repro.fingerprint(df.limit(0))
    assert empty.row_count == 0 and empty.content_hash != base


@pytest.mark.spark
def test_fingerprint_is_one_spark_job(spark):
    # With adaptive execution each shuffle stage is submitted as its own job; without it, one
    # action is one job.
    sc = spark.sparkContext
    df = spark.range(1000).withColumn("x", F.rand(1)).repartition(3)
    previous = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        sc.setJobGroup("sparktrack-fingerprint-test", "fingerprint")
        repro.fingerprint(df)
        jobs = sc.statusTracker().getJobIdsForGroup("sparktrack-fingerprint-test")
    finally:
        sc.setJobGroup(None, None)  # type: ignore[arg-type]
        spark.conf.set("spark.sql.adaptive.enabled", previous)
    assert len(jobs) == 1


# --------------------------------------------------------------------------------------------
# describe_input
# --------------------------------------------------------------------------------------------


def _expected_tail(df, name="training"):
    fp = repro.fingerprint(df)
    return {
        f"input.{name}.rows": str(fp.row_count),
        f"input.{name}.content_hash": fp.content_hash,
        f"input.{name}.layout_hash": fp.layout_hash,
    }


@pytest.mark.spark
def test_describe_input_parquet(spark, tmp_path):
    path = tmp_path / "train.parquet"
    spark.createDataFrame(_frame(50)).coalesce(2).write.parquet(str(path))
    df = spark.read.parquet(str(path))
    info = repro.describe_input(df, name="train")
    assert info == {
        "input.train.source": str(path),
        "input.train.format": "parquet",
        "input.train.files": str(len(df.inputFiles())),
        **_expected_tail(df, "train"),
    }
    assert info["input.train.rows"] == "50"


@pytest.mark.spark
def test_describe_input_hive_partitioned_csv(spark, tmp_path):
    path = tmp_path / "csv"
    spark.createDataFrame(_frame(40)).withColumn("part", F.col("id") % 2).write.partitionBy(
        "part"
    ).csv(str(path), header=True)
    df = spark.read.csv(str(path), header=True)
    info = repro.describe_input(df)
    assert info["input.training.source"] == str(path)
    assert info["input.training.format"] == "csv"
    assert "input.training.delta_version" not in info


@pytest.mark.spark
def test_describe_input_delta_table(spark, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    path = str(tmp_path / "delta")
    pdf = _frame(30)
    deltalake.write_deltalake(path, pdf)
    deltalake.write_deltalake(path, pdf, mode="append")
    # Spark here has no Delta jars: read the table's data files (Spark skips _delta_log).
    df = spark.read.parquet(path)
    info = repro.describe_input(df)
    assert info == {
        "input.training.source": path,
        "input.training.format": "delta",
        "input.training.delta_version": "1",
        "input.training.delta_snapshot_match": "true",
        "input.training.files": "2",
        **_expected_tail(df),
    }
    assert info["input.training.rows"] == "60"

    # After an overwrite the old files stay until vacuum: a plain parquet read sees them too,
    # and describe_input says so.
    deltalake.write_deltalake(path, pdf, mode="overwrite")
    stale = repro.describe_input(spark.read.parquet(path))
    assert stale["input.training.delta_version"] == "2"
    assert stale["input.training.delta_snapshot_match"] == "false"
    assert stale["input.training.rows"] == "90"
    files = deltalake.DeltaTable(path).file_uris()
    exact = repro.describe_input(spark.read.parquet(*files))
    assert exact["input.training.delta_snapshot_match"] == "true"
    assert exact["input.training.rows"] == "30"


@pytest.mark.spark
def test_describe_input_partitioned_delta_table(spark, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    path = str(tmp_path / "pdelta")
    pdf = _frame(20)
    pdf["bucket"] = pdf["id"] % 3
    deltalake.write_deltalake(path, pdf, partition_by=["bucket"])
    info = repro.describe_input(spark.read.parquet(path), name="eval")
    assert info["input.eval.source"] == path
    assert info["input.eval.format"] == "delta"
    assert info["input.eval.delta_version"] == "0"
    assert info["input.eval.files"] == "3"


@pytest.mark.spark
def test_describe_input_in_memory(spark):
    df = spark.createDataFrame(_frame(25))
    info = repro.describe_input(df)
    assert info == {
        "input.training.source": "in-memory",
        "input.training.files": "0",
        **_expected_tail(df),
    }
    assert set(k.rsplit(".", 1)[1] for k in info) <= set(repro.INPUT_FIELDS)


def test_describe_input_rejects_bad_names():
    for name in ("", "a.b", "with space", None):
        with pytest.raises(InvalidInputError, match="input name"):
            repro.describe_input(None, name=name)  # type: ignore[arg-type]


def test_input_key_naming():
    assert repro.input_key("training", "delta_version") == "input.training.delta_version"
    with pytest.raises(InvalidInputError, match="unknown input field 'size'"):
        repro.input_key("training", "size")


def test_source_roots_and_formats():
    root = _inputs._source_root
    assert root("s3a://b/t/k=1/j=2/part-0000.snappy.parquet") == ("s3a://b/t", False)
    assert root("s3a://b/data/loose.csv.gz") == ("s3a://b/data/loose.csv.gz", False)
    assert root("file:///no/such/dir/k=1/part-0.parquet") == ("/no/such/dir", True)
    assert root("file:///no/such/dir/my%20file.json") == ("/no/such/dir/my file.json", True)
    fmt = _inputs._format_of
    assert fmt("part-0.snappy.parquet") == "parquet"
    assert fmt("x.csv.gz") == "csv"
    assert fmt("x.jsonl") == "json"
    assert fmt("x.bin") is None
    assert fmt("README") is None

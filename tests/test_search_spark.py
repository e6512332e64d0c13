"""The Spark compiler selects and orders exactly like the pyarrow evaluator."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sparktrack._search import (
    filter_runs,
    order_runs,
    order_to_spark,
    parse_filter,
    parse_order_by,
    to_spark_predicate,
)

try:  # tests/ is on sys.path in pytest's default import mode
    from test_search_evaluate import (
        FILTER_CASES,
        METRICS,
        ORDER_CASES,
        PARAMS,
        RUNS,
        TAGS,
        TableSource,
    )
except ImportError:  # tests/ became a package
    from tests.test_search_evaluate import (
        FILTER_CASES,
        METRICS,
        ORDER_CASES,
        PARAMS,
        RUNS,
        TAGS,
        TableSource,
    )

pytestmark = pytest.mark.spark

EXTRA_FILTERS = [
    "metrics.acc > 0.6 OR NOT (params.model LIKE 'l%' AND tags.team IS NOT NULL)",
    "NOT (metrics.loss != 0.2 OR run_name ILIKE '%ETA')",
    "end_time >= 6500 AND NOT end_time = 7100",
]
FILTERS = [text for text, _ in FILTER_CASES] + EXTRA_FILTERS


def _runs_frame(spark):
    """The data source's runs-table shape, holding the evaluator tests' data."""
    from pyspark.sql import functions as F

    def by_run(maps, run_id):
        return [(key, values[run_id]) for key, values in maps.items() if run_id in values]

    def column(index):
        return [run[index] for run in RUNS]

    run_ids = column(0)
    text_maps = pa.map_(pa.string(), pa.string())
    number_maps = pa.map_(pa.string(), pa.float64())
    table = pa.table(
        {
            "run_id": run_ids,
            "experiment_id": ["0"] * len(RUNS),
            "run_name": column(1),
            "parent_run_id": pa.nulls(len(RUNS), pa.string()),
            "user_id": column(3),
            "status": column(2),
            "lifecycle_stage": column(7),
            "artifact_uri": column(6),
            "start_ms": pa.array(column(4), pa.int64()),
            "end_ms": pa.array(column(5), pa.int64()),
            "metrics": pa.array([by_run(METRICS["latest"], r) for r in run_ids], number_maps),
            "metrics_min": pa.array([by_run(METRICS["min"], r) for r in run_ids], number_maps),
            "metrics_max": pa.array([by_run(METRICS["max"], r) for r in run_ids], number_maps),
            "params": pa.array([by_run(PARAMS, r) for r in run_ids], text_maps),
            "tags": pa.array([by_run(TAGS, r) for r in run_ids], text_maps),
        }
    )
    # From Arrow the frame is a local relation: no Python worker is needed to read it.
    frame = spark.createDataFrame(table)
    frame = frame.withColumn("start_time", F.timestamp_millis("start_ms"))
    frame = frame.withColumn("end_time", F.timestamp_millis("end_ms"))
    return frame.drop("start_ms", "end_ms")


@pytest.fixture(scope="module")
def runs_frame(spark):
    # A local relation: Spark folds projections over it on the driver (interpreted
    # expressions), which keeps 90 predicates cheap; the sorts below still run as jobs.
    return _runs_frame(spark)


def _selections(frame, filters):
    """Evaluate every filter in one query: filter text -> selected run ids."""
    columns = [
        to_spark_predicate(parse_filter(text)).alias(f"f{i}") for i, text in enumerate(filters)
    ]
    rows = frame.select("run_id", *columns).collect()
    return {text: {row["run_id"] for row in rows if row[f"f{i}"]} for i, text in enumerate(filters)}


@pytest.fixture(scope="module")
def spark_selections(runs_frame):
    return _selections(runs_frame, FILTERS)


def _expected(text):
    return set(filter_runs(parse_filter(text), TableSource())["run_id"].to_pylist())


@pytest.mark.parametrize("text", FILTERS)
def test_spark_predicate_selects_what_filter_runs_selects(text, spark_selections):
    assert spark_selections[text] == _expected(text)


def test_compiled_execution_selects_the_same(runs_frame):
    # The data source's rows reach predicates through generated code, not the driver-side
    # folding above; check the NaN, missing-key and NOT cases on that path too.
    filters = EXTRA_FILTERS + [
        "NOT metrics.acc > 0.6",
        "params.model != 'lr'",
        "tags.team LIKE 'ml_ops' OR params.model ILIKE 'l_'",
        "NOT end_time > 0",
    ]
    selections = _selections(runs_frame.repartition(1), filters)
    assert selections == {text: _expected(text) for text in filters}


def test_spark_predicate_is_never_null(runs_frame):
    predicate = to_spark_predicate(parse_filter("metrics.acc > 0 OR params.model = 'lr'"))
    rows = runs_frame.select(
        "run_id", predicate.isNull().alias("null"), (~predicate).alias("not")
    ).collect()
    assert not any(row["null"] for row in rows)
    # r3 (NaN), r5 (negative), r7 and r8 (no acc, no model)
    assert {row["run_id"] for row in rows if row["not"]} == {"r3", "r5", "r7", "r8"}


def test_no_filter_selects_every_run(runs_frame):
    assert len(runs_frame.filter(to_spark_predicate(None)).collect()) == len(RUNS)


@pytest.fixture(scope="module")
def spark_orders(runs_frame):
    """Every order evaluated by Spark in one query (a row_number per order): case -> run ids."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    positions = [
        F.row_number().over(Window.orderBy(*order_to_spark(parse_order_by(o)))).alias(f"o{i}")
        for i, (o, _) in enumerate(ORDER_CASES)
    ]
    rows = runs_frame.select("run_id", *positions).collect()
    return [
        [row["run_id"] for row in sorted(rows, key=lambda row: row[f"o{i}"])]
        for i in range(len(ORDER_CASES))
    ]


@pytest.mark.parametrize(
    ("index", "order_by", "expected"),
    [(i, o, e) for i, (o, e) in enumerate(ORDER_CASES)],
    ids=[repr(o) for o, _ in ORDER_CASES],
)
def test_order_to_spark_orders_like_order_runs(index, order_by, expected, spark_orders):
    source = TableSource()
    ordered = order_runs(source.runs(), parse_order_by(order_by), source)
    assert ordered["run_id"].to_pylist() == expected
    assert spark_orders[index] == expected


@pytest.mark.parametrize("order_by", [[], ["tags.team", "metrics.acc DESC"]])
def test_order_to_spark_in_order_by(order_by, runs_frame):
    source = TableSource()
    expected = order_runs(source.runs(), parse_order_by(order_by), source)["run_id"].to_pylist()
    rows = runs_frame.orderBy(*order_to_spark(parse_order_by(order_by))).select("run_id").collect()
    assert [row["run_id"] for row in rows] == expected


def test_map_keys_are_values_not_sql(runs_frame):
    # A key that would be SQL if pasted into an expression string is just a missing key.
    tree = parse_filter("params.`model'] = 'lr' OR 1=1 --` = 'x'")
    assert runs_frame.filter(to_spark_predicate(tree)).collect() == []
    tree = parse_filter("status = 'x'' OR ''a''=''a'")
    assert runs_frame.filter(to_spark_predicate(tree)).collect() == []

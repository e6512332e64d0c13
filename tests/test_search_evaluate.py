"""Evaluating filters and orders with pyarrow over a SearchSource backed by real tables."""

from __future__ import annotations

import math
import time

import numpy as np
import pyarrow as pa
import pytest

from sparktrack._search import (
    ROW,
    AlignedSource,
    SearchSource,
    filter_runs,
    order_runs,
    parse_filter,
    parse_order_by,
)

NAN = math.nan

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("experiment_id", pa.string()),
        ("run_name", pa.string()),
        ("status", pa.string()),
        ("user_id", pa.string()),
        ("start_time", pa.int64()),
        ("end_time", pa.int64()),
        ("artifact_uri", pa.string()),
        ("lifecycle_stage", pa.string()),
    ]
)

# run_id, run_name, status, user_id, start_time, end_time, artifact_uri, lifecycle_stage
RUNS = [
    ("r1", "alpha", "FINISHED", "ann", 1000, 2000, "s3://b/1", "active"),
    ("r2", "beta", "FAILED", "bob", 2000, None, "file:/x/2", "active"),
    ("r3", "Gamma", "RUNNING", "ann", 3000, 4000, "s3://b/3", "active"),
    ("r4", "delta_1", "FINISHED", "carl", 3000, 5000, "S3://B/4", "deleted"),
    ("r5", "delta%1", "KILLED", "bob", 5000, None, "s3://b/5", "active"),
    ("r6", "zeta", "FINISHED", "ann", 6000, 6500, "s3://b/6", "active"),
    ("r7", None, "FINISHED", "dan", 7000, 7100, "s3://b/7", "active"),
    ("r8", "eta", "SCHEDULED", "ann", 7000, 7200, "s3://b/8", "active"),
]
ALL = {run[0] for run in RUNS}

METRICS = {
    "latest": {
        "acc": {"r1": 0.9, "r2": 0.5, "r3": NAN, "r4": 0.7, "r5": -1.0, "r6": 0.9},
        "loss": {"r1": 0.1, "r2": 0.2, "r6": 0.3, "r7": NAN},
        "my metric": {"r2": 5.0},
    },
    "min": {"acc": {"r1": 0.2, "r2": 0.1, "r3": NAN, "r4": 0.7, "r5": -3.0, "r6": 0.4}},
    "max": {"acc": {"r1": 0.95, "r2": 0.6, "r3": NAN, "r4": 0.9, "r5": 1.0, "r6": 0.9}},
}
PARAMS = {
    "model": {"r1": "lr", "r2": "rf", "r3": "LR", "r4": "lr_v2", "r5": "l%r", "r6": ""},
    "alpha": {"r1": "0.5", "r2": "0.50", "r3": "1e-3", "r4": "adam"},
}
TAGS = {"team": {"r1": "core", "r2": "Core", "r3": "ml", "r7": "ml\nops"}}


def _key_table(values: dict[str, object], value_type: pa.DataType) -> pa.Table:
    return pa.table(
        {
            "run_id": pa.array(list(values), pa.string()),
            "value": pa.array(list(values.values()), value_type),
        }
    )


class TableSource:
    """A SearchSource over in-memory pyarrow tables; records what it was asked for."""

    def __init__(self, runs=RUNS, metrics=METRICS, params=PARAMS, tags=TAGS):
        rows = [dict(zip(RUNS_SCHEMA.names, (r[0], "0", *r[1:]))) for r in runs]
        self._runs = pa.Table.from_pylist(rows, schema=RUNS_SCHEMA)
        self._metrics, self._params, self._tags = metrics, params, tags
        self.calls: list[tuple[str, ...]] = []

    def runs(self) -> pa.Table:
        self.calls.append(("runs",))
        return self._runs

    def metric(self, key: str, aggregate: str) -> pa.Table:
        self.calls.append(("metric", key, aggregate))
        return _key_table(self._metrics.get(aggregate, {}).get(key, {}), pa.float64())

    def param(self, key: str) -> pa.Table:
        self.calls.append(("param", key))
        return _key_table(self._params.get(key, {}), pa.string())

    def tag(self, key: str) -> pa.Table:
        self.calls.append(("tag", key))
        return _key_table(self._tags.get(key, {}), pa.string())


class AlignedTableSource(TableSource):
    """The same runs as an AlignedSource: numbered by ROW, each key's values handed over in
    the runs' order (worked out here one run at a time, independently of the store's code)."""

    def runs(self) -> pa.Table:
        runs = super().runs()
        return runs.append_column(ROW, pa.array(range(runs.num_rows), pa.int64()))

    def aligned(self, ident):
        self.calls.append(("aligned", ident.kind, ident.key))
        if ident.kind == "metric":
            values, value_type = self._metrics.get(ident.aggregate, {}).get(ident.key, {}), \
                pa.float64()
        else:
            values = (self._params if ident.kind == "param" else self._tags).get(ident.key, {})
            value_type = pa.string()
        return pa.array([values.get(run_id) for run_id in self._runs["run_id"].to_pylist()],
                        value_type)


SOURCES = pytest.mark.parametrize("make_source", [TableSource, AlignedTableSource],
                                  ids=["joined", "aligned"])


def ids(table: pa.Table) -> list[str]:
    return table["run_id"].to_pylist()


def run_set(*names: str) -> set[str]:
    return set(names)


# filter -> the runs it selects; shared with the Spark test, which checks the same answers.
FILTER_CASES = [
    # metrics, NaN (r3 acc, r7 loss) and missing (r7, r8 have no acc)
    ("metrics.acc > 0.6", run_set("r1", "r4", "r6")),
    ("metrics.acc >= 0.9", run_set("r1", "r6")),
    ("metrics.acc = 0.9", run_set("r1", "r6")),
    ("metrics.acc != 0.9", run_set("r2", "r3", "r4", "r5")),
    ("metrics.acc < 0.6", run_set("r2", "r5")),
    ("metrics.acc <= 0.5", run_set("r2", "r5")),
    ("metrics.acc > -1e308", run_set("r1", "r2", "r4", "r5", "r6")),
    ("metric.acc < 1e309", run_set("r1", "r2", "r4", "r5", "r6")),
    ("NOT metrics.acc > 0.6", run_set("r2", "r3", "r5", "r7", "r8")),
    ("NOT metrics.acc != 0.9", run_set("r1", "r6", "r7", "r8")),
    ("metrics.loss > 0", run_set("r1", "r2", "r6")),
    ("metrics.loss != 0.2", run_set("r1", "r6", "r7")),
    ("metrics.`my metric` = 5", run_set("r2")),
    ("metrics.nothing > 0", run_set()),
    ("metrics.nothing != 0", run_set()),
    ("NOT metrics.nothing > 0", ALL),
    ("MIN(metrics.acc) < 0.15", run_set("r2", "r5")),
    ("max(metrics.acc) >= 0.9", run_set("r1", "r4", "r5", "r6")),
    ("LATEST(metrics.acc) = 0.9", run_set("r1", "r6")),
    ("min(metrics.acc) != 0.7", run_set("r1", "r2", "r3", "r5", "r6")),
    # params (r7, r8 have no model)
    ("params.model = 'lr'", run_set("r1")),
    ("params.model != 'lr'", run_set("r2", "r3", "r4", "r5", "r6")),
    ("NOT params.model = 'lr'", ALL - {"r1"}),
    ("params.model LIKE 'lr%'", run_set("r1", "r4")),
    ("params.model LIKE 'l_'", run_set("r1")),
    ("params.model ILIKE 'l_'", run_set("r1", "r3")),
    ("params.model ILIKE 'LR'", run_set("r1", "r3")),
    ("params.model LIKE 'l%r'", run_set("r1", "r5")),
    ("params.model LIKE 'l\\%r'", run_set("r5")),
    ("params.model LIKE '%\\_%'", run_set("r4")),
    ("params.model LIKE '%'", run_set("r1", "r2", "r3", "r4", "r5", "r6")),
    ("params.model = ''", run_set("r6")),
    ("params.model IS NULL", run_set("r7", "r8")),
    ("params.model IS NOT NULL", run_set("r1", "r2", "r3", "r4", "r5", "r6")),
    ("params.alpha = 0.5", run_set("r1")),
    ("params.alpha = '0.50'", run_set("r2")),
    ("params.alpha = 1e-3", run_set("r3")),
    ("params.alpha = adam", run_set("r4")),
    ("params.nothing IS NULL", ALL),
    ("params.nothing != 'x'", run_set()),
    # tags
    ("tags.team = 'core'", run_set("r1")),
    ("tags.team ILIKE 'CORE'", run_set("r1", "r2")),
    ("tags.team LIKE 'ml%'", run_set("r3", "r7")),
    ("tags.team LIKE 'ml_ops'", run_set("r7")),
    ("tags.team != 'ml'", run_set("r1", "r2", "r7")),
    ("tags.team IS NULL", run_set("r4", "r5", "r6", "r8")),
    ("tags.team IS NOT NULL", run_set("r1", "r2", "r3", "r7")),
    # string attributes (r7 has no run_name)
    ("status = 'FINISHED'", run_set("r1", "r4", "r6", "r7")),
    ("attributes.status != 'FINISHED'", run_set("r2", "r3", "r5", "r8")),
    ("status IN ('FAILED', 'KILLED')", run_set("r2", "r5")),
    ("run_id IN ('r1', 'r3', 'nope')", run_set("r1", "r3")),
    ("run_id NOT IN ('r1', 'r3')", ALL - {"r1", "r3"}),
    ("run_name NOT IN ('alpha')", ALL - {"r1", "r7"}),
    ("run_name = 'alpha'", run_set("r1")),
    ("run_name != 'alpha'", ALL - {"r1", "r7"}),
    ("run_name LIKE 'delta\\_%'", run_set("r4")),
    ("run_name LIKE 'delta_1'", run_set("r4", "r5")),
    ("run_name ILIKE 'gamma'", run_set("r3")),
    ("run_name LIKE 'gamma'", run_set()),
    ("`Run Name` = 'beta'", run_set("r2")),
    ('tags."mlflow.runName" = \'beta\'', run_set("r2")),
    ("tags.`mlflow.runName` IS NULL", run_set("r7")),
    ("tags.`mlflow.runName` IS NOT NULL", ALL - {"r7"}),
    ("user_id = 'ann'", run_set("r1", "r3", "r6", "r8")),
    ("artifact_uri LIKE 's3://%'", run_set("r1", "r3", "r5", "r6", "r7", "r8")),
    ("artifact_uri ILIKE 's3://%'", run_set("r1", "r3", "r4", "r5", "r6", "r7", "r8")),
    ("lifecycle_stage = 'deleted'", run_set("r4")),
    # numeric attributes, milliseconds; end_time is null while running
    ("start_time >= 3000", ALL - {"r1", "r2"}),
    ("start_time = 3000", run_set("r3", "r4")),
    ("created < 2500", run_set("r1", "r2")),
    ("end_time > 4000", run_set("r4", "r6", "r7", "r8")),
    ("end_time != 2000", run_set("r3", "r4", "r6", "r7", "r8")),
    ("end_time <= 2000.5", run_set("r1")),
    ("NOT end_time > 0", run_set("r2", "r5")),
    ("start_time < 99999999999999999999999", ALL),
    ("end_time > -99999999999999999999999", ALL - {"r2", "r5"}),
    # boolean structure
    ("metrics.acc > 0.6 AND params.model LIKE 'lr%'", run_set("r1", "r4")),
    ("tags.team = 'ml' OR metrics.acc > 0.6 AND status = 'FINISHED'", run_set("r1", "r3", "r4", "r6")),
    ("(tags.team = 'ml' OR metrics.acc > 0.6) AND status = 'FINISHED'", run_set("r1", "r4", "r6")),
    ("NOT status = 'FINISHED' AND user_id = 'ann'", run_set("r3", "r8")),
    ("NOT (status = 'FINISHED' AND user_id = 'ann')", ALL - {"r1", "r6"}),
    ("NOT NOT params.model IS NULL", run_set("r7", "r8")),
    ("params.model = 'lr' OR params.model = 'rf' OR params.alpha = adam", run_set("r1", "r2", "r4")),
    ("metrics.acc > 0 AND metrics.acc < 0.8 AND NOT params.model = 'rf'", run_set("r4")),
]


@SOURCES
@pytest.mark.parametrize(("text", "expected"), FILTER_CASES, ids=[t for t, _ in FILTER_CASES])
def test_filter_selects(text, expected, make_source):
    source = make_source()
    result = filter_runs(parse_filter(text), source)
    assert set(ids(result)) == expected
    assert result.schema == source.runs().schema


def test_filter_keeps_the_runs_order_and_columns():
    source = TableSource()
    result = filter_runs(parse_filter("status = 'FINISHED'"), source)
    assert ids(result) == ["r1", "r4", "r6", "r7"]
    assert result.column_names == RUNS_SCHEMA.names


def test_no_filter_returns_every_run_and_asks_for_nothing_else():
    source = TableSource()
    assert ids(filter_runs(None, source)) == [r[0] for r in RUNS]
    assert source.calls == [("runs",)]


def test_source_is_asked_only_for_named_keys_once_each():
    source = TableSource()
    text = "metrics.acc > 0.1 AND metrics.acc < 1 AND (params.model = 'lr' OR MAX(metrics.acc) > 0)"
    filter_runs(parse_filter(text), source)
    assert sorted(source.calls) == [
        ("metric", "acc", "latest"),
        ("metric", "acc", "max"),
        ("param", "model"),
        ("runs",),
    ]


def test_attribute_filters_ask_for_no_key_tables():
    source = TableSource()
    filter_runs(parse_filter("status = 'FINISHED' AND start_time > 0"), source)
    assert source.calls == [("runs",)]


def test_null_values_in_key_tables_count_as_missing():
    source = TableSource(params={"model": {"r1": "lr", "r2": None}})
    assert ids(filter_runs(parse_filter("params.model IS NULL"), source)) == [
        r[0] for r in RUNS if r[0] != "r1"
    ]
    assert ids(filter_runs(parse_filter("params.model != 'lr'"), source)) == []


def test_key_tables_may_mention_runs_that_are_not_candidates():
    source = TableSource(params={"model": {"r1": "lr", "other-experiment": "lr"}})
    assert ids(filter_runs(parse_filter("params.model = 'lr'"), source)) == ["r1"]


def test_empty_runs_table():
    source = TableSource(runs=[])
    assert filter_runs(parse_filter("metrics.acc > 0"), source).num_rows == 0
    assert order_runs(source.runs(), parse_order_by(["metrics.acc"]), source).num_rows == 0


def test_table_source_is_a_search_source():
    assert isinstance(TableSource(), SearchSource)
    assert not isinstance(TableSource(), AlignedSource)  # so the join path is tested
    assert isinstance(AlignedTableSource(), AlignedSource)


def test_an_aligned_source_is_asked_for_values_not_tables():
    source = AlignedTableSource()
    matched = filter_runs(parse_filter("metrics.acc > 0.6 AND params.model LIKE 'l%'"), source)
    order_runs(matched, parse_order_by(["tags.team"]), source)
    assert sorted(call for call in source.calls if call != ("runs",)) == [
        ("aligned", "metric", "acc"), ("aligned", "param", "model"), ("aligned", "tag", "team")]


# order_by -> every run, in order; shared with the Spark test.
ORDER_CASES = [
    ([], ["r7", "r8", "r6", "r5", "r3", "r4", "r2", "r1"]),
    (["metrics.acc"], ["r5", "r2", "r4", "r6", "r1", "r3", "r7", "r8"]),
    (["metrics.acc DESC"], ["r6", "r1", "r4", "r2", "r5", "r3", "r7", "r8"]),
    (["metrics.loss DESC"], ["r6", "r2", "r1", "r7", "r8", "r5", "r3", "r4"]),
    (["metrics.loss ASC"], ["r1", "r2", "r6", "r7", "r8", "r5", "r3", "r4"]),
    (["params.model"], ["r6", "r3", "r5", "r1", "r4", "r2", "r7", "r8"]),
    (["params.model DESC"], ["r2", "r4", "r1", "r5", "r3", "r6", "r7", "r8"]),
    (["tags.team", "metrics.acc DESC"], ["r2", "r1", "r3", "r7", "r6", "r4", "r5", "r8"]),
    (["status", "start_time"], ["r2", "r1", "r4", "r6", "r7", "r5", "r3", "r8"]),
    (["end_time DESC"], ["r8", "r7", "r6", "r4", "r3", "r1", "r5", "r2"]),
    (["end_time"], ["r1", "r3", "r4", "r6", "r7", "r8", "r5", "r2"]),
    (["run_name DESC"], ["r6", "r8", "r4", "r5", "r2", "r1", "r3", "r7"]),
    (["MIN(metrics.acc)"], ["r5", "r2", "r1", "r6", "r4", "r3", "r7", "r8"]),
    (["MAX(metrics.acc) DESC", "run_id DESC"], ["r5", "r1", "r6", "r4", "r2", "r3", "r8", "r7"]),
    (["start_time"], ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]),
    (["metrics.nothing DESC"], ["r7", "r8", "r6", "r5", "r3", "r4", "r2", "r1"]),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDER_CASES, ids=[repr(o) for o, _ in ORDER_CASES])
@SOURCES
def test_order(order_by, expected, make_source):
    source = make_source()
    assert ids(order_runs(source.runs(), parse_order_by(order_by), source)) == expected


@pytest.mark.parametrize(("order_by", "expected"), ORDER_CASES,
                         ids=[repr(o) for o, _ in ORDER_CASES])
@SOURCES
def test_the_first_runs_of_an_order_are_the_first_of_the_full_order(order_by, expected,
                                                                    make_source):
    """A page selects its runs before sorting them (``limit``): the same runs in the same
    order as the full sort, with ties, NaN and missing values."""
    source = make_source()
    for limit in range(1, len(expected) + 2):
        ordered = order_runs(source.runs(), parse_order_by(order_by), source, limit=limit)
        assert ids(ordered) == expected[:limit], limit


def test_order_of_a_filtered_subset():
    source = TableSource()
    runs = filter_runs(parse_filter("user_id = 'ann'"), source)
    ordered = order_runs(runs, parse_order_by(["metrics.acc DESC"]), source)
    assert ids(ordered) == ["r6", "r1", "r3", "r8"]
    assert ordered.schema == RUNS_SCHEMA


def test_order_asks_only_for_named_keys():
    source = TableSource()
    order = parse_order_by(["params.model", "MIN(metrics.acc)", "status"])
    order_runs(source.runs(), order, source)
    assert sorted(source.calls) == [("metric", "acc", "min"), ("param", "model"), ("runs",)]


# -- scale ------------------------------------------------------------------------------------

N = 100_000


class BigSource:
    """100,000 runs; acc for 80%, model for all, team for half."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        run_ids = pa.array([f"{i:032x}" for i in range(N)])
        self._runs = pa.table(
            {
                "run_id": run_ids,
                "experiment_id": pa.array(["1"] * N),
                "run_name": pa.array([f"run-{i}" for i in range(N)]),
                "status": pa.array(rng.choice(["FINISHED", "FAILED", "RUNNING"], N)),
                "user_id": pa.array(["ann"] * N),
                "start_time": pa.array(rng.integers(0, 10**12, N), pa.int64()),
                "end_time": pa.array(rng.integers(0, 10**12, N), pa.int64()),
                "artifact_uri": pa.array(["s3://b"] * N),
                "lifecycle_stage": pa.array(["active"] * N),
            }
        )
        acc = rng.random(N)
        acc[rng.random(N) < 0.01] = np.nan
        keep = rng.random(N) < 0.8
        self._acc = pa.table({"run_id": run_ids.filter(pa.array(keep)), "value": acc[keep]})
        self._model = pa.table({"run_id": run_ids, "value": rng.choice(["lr", "rf", "gbt"], N)})
        half = pa.array(np.arange(N) % 2 == 0)
        team = pa.array(["core"] * (N // 2))
        self._team = pa.table({"run_id": run_ids.filter(half), "value": team})

    def runs(self):
        return self._runs

    def metric(self, key, aggregate):
        return self._acc

    def param(self, key):
        return self._model

    def tag(self, key):
        return self._team


def _best_of(repeats, func):
    # CPU time, not wall time: a busy CI machine must not fail the test, a slow algorithm must.
    best = math.inf
    for _ in range(repeats):
        began = time.process_time()
        result = func()
        best = min(best, time.process_time() - began)
    return best, result


def test_filter_and_order_scale_to_100k_runs():
    source = BigSource()
    tree = parse_filter(
        "metrics.acc > 0.5 AND params.model = 'lr' OR NOT tags.team IS NULL AND status != 'RUNNING'"
    )
    seconds, result = _best_of(3, lambda: filter_runs(tree, source))
    assert 20_000 < result.num_rows < 60_000
    # About 0.05 s on one core; the bound leaves room for slower machines.
    assert seconds < 0.25, f"filter over {N} runs took {seconds:.3f}s of CPU"
    order = parse_order_by(["metrics.acc DESC", "params.model"])
    seconds, ordered = _best_of(2, lambda: order_runs(result, order, source))
    assert ordered.num_rows == result.num_rows
    assert seconds < 0.5, f"order over {result.num_rows} runs took {seconds:.3f}s of CPU"


@pytest.mark.parametrize("chunks", [[5], [2, 3], [1, 0, 3, 1], [0, 5]])
def test_take_rows_takes_what_a_take_takes_from_any_chunks(chunks):
    from sparktrack._search import take_rows

    values = [f"run-{i}" for i in range(sum(chunks))]
    starts = np.cumsum([0, *chunks])
    schema = pa.schema([("run_id", pa.string()), ("n", pa.int64())])
    table = pa.Table.from_batches(
        [pa.record_batch([pa.array(values[start:end], pa.string()),
                          pa.array(range(start, end), pa.int64())], schema=schema)
         for start, end in zip(starts[:-1], starts[1:], strict=True)], schema=schema)
    for indices in ([], [0], [4, 0, 3], [1, 1, 2], [4, 3, 2, 1, 0], list(range(5)) * 2):
        taken = take_rows(table, pa.array(indices, type=pa.int64()))
        assert taken.to_pylist() == table.take(pa.array(indices, type=pa.int64())).to_pylist()

"""The sparktrack data source against what the client API returns for the same store."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from chispa import assert_df_equality

from sparktrack import TrackingClient
from sparktrack.entities import ViewType
from sparktrack.spark import _reader as reader
from sparktrack.spark._datasource import PUSHDOWN_AVAILABLE

pytestmark = pytest.mark.spark

PUSHDOWN = "spark.sql.python.filterPushdown.enabled"
# pyspark 4.0 has no filter pushdown for Python data sources (test_compat_pushdown.py covers
# reading without it on every pyspark).
needs_pushdown = pytest.mark.skipif(
    not PUSHDOWN_AVAILABLE, reason="this pyspark has no Python data source filter pushdown"
)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Two experiments, nested/running/deleted runs; one commit per run so tables have files."""
    uri = str(tmp_path_factory.mktemp("datasource") / "store")
    client = TrackingClient(uri)
    alpha = client.create_experiment("alpha", tags={"team": "ml"})
    beta = client.create_experiment("beta")
    runs = []
    parent = client.create_run(alpha, run_name="parent").info.run_id
    client.log_param(parent, "search", "grid")
    runs.append(parent)
    for index in range(4):
        experiment = alpha if index < 3 else beta
        run_id = client.create_run(
            experiment, run_name=f"child-{index}",
            parent_run_id=parent if experiment == alpha else None,
            start_time=1_700_000_000_000 + index * 1000,
        ).info.run_id
        for step in range(6):
            client.log_metric(run_id, "loss", 2.0 / (step + 1) + index, step=step,
                              timestamp=1_700_000_000_000 + step)
            client.log_metric(run_id, "acc", 0.5 + step * 0.05 + index * 0.01, step=step,
                              timestamp=1_700_000_000_000 + step)
        client.log_param(run_id, "lr", str(0.1 * (index + 1)))
        client.log_param(run_id, "depth", str(index + 2))
        client.set_tag(run_id, "stage", "tuning")
        client.set_tag(run_id, "gone", "soon")
        client.delete_tag(run_id, "gone")
        client.set_terminated(run_id, status="FINISHED" if index != 2 else "FAILED")
        client.flush()
        runs.append(run_id)
    running = client.create_run(beta, run_name="still-running").info.run_id
    client.log_metric(running, "loss", 9.0, step=0)
    deleted = client.create_run(beta, run_name="deleted").info.run_id
    client.log_metric(deleted, "loss", 0.001, step=0)
    client.log_param(deleted, "lr", "0.9")
    client.delete_run(deleted)
    client.set_terminated(parent)
    client.flush()
    runs.append(running)
    return SimpleNamespace(uri=uri, client=client, alpha=alpha, beta=beta, runs=runs,
                           deleted=deleted, parent=parent)


def _read(spark, uri, table="runs", **options):
    frame = spark.read.format("sparktrack").option("table", table)
    for key, value in options.items():
        frame = frame.option(key, value)
    return frame.load(uri)


def _timestamp(millis):
    return None if millis is None else datetime.fromtimestamp(millis / 1000, tz=UTC)


def _expected_run(client, run_id):
    run = client.get_run(run_id)
    info, data = run.info, run.data
    history = {key: client.get_metric_history(run_id, key) for key in data.metrics}
    return (
        info.run_id, info.experiment_id, info.run_name, info.parent_run_id, info.user_id,
        info.status, info.lifecycle_stage, _timestamp(info.start_time), _timestamp(info.end_time),
        info.artifact_uri, data.metrics,
        {k: min(p.value for p in points) for k, points in history.items()},
        {k: max(p.value for p in points) for k, points in history.items()},
        data.params, data.tags,
    )


def test_runs_table_matches_client(spark, tracked):
    actual = _read(spark, tracked.uri).orderBy("run_id")
    expected = spark.createDataFrame(
        [_expected_run(tracked.client, run_id) for run_id in tracked.runs], actual.schema
    ).orderBy("run_id")
    assert_df_equality(actual, expected)
    assert [f.name for f in actual.schema][:10] == [
        "run_id", "experiment_id", "run_name", "parent_run_id", "user_id", "status",
        "lifecycle_stage", "start_time", "end_time", "artifact_uri",
    ]
    assert actual.schema["metrics"].dataType.simpleString() == "map<string,double>"
    assert actual.schema["start_time"].dataType.simpleString() == "timestamp"


def test_deleted_runs_only_with_option(spark, tracked):
    ids = {r.run_id for r in _read(spark, tracked.uri, include_deleted="true").collect()}
    assert ids == {*tracked.runs, tracked.deleted}
    for table in ("metrics", "params"):
        default = _read(spark, tracked.uri, table).filter(f"run_id = '{tracked.deleted}'")
        assert default.count() == 0
        assert _read(spark, tracked.uri, table, include_deleted="true").filter(
            f"run_id = '{tracked.deleted}'").count() == 1


def test_metrics_table_matches_history(spark, tracked):
    actual = _read(spark, tracked.uri, "metrics")
    rows = []
    for run_id in tracked.runs:
        run = tracked.client.get_run(run_id)
        for key in run.data.metrics:
            rows += [
                (run_id, run.info.experiment_id, key, p.value, p.timestamp, p.step)
                for p in tracked.client.get_metric_history(run_id, key)
            ]
    expected = spark.createDataFrame(rows, actual.schema)
    assert_df_equality(actual, expected, ignore_row_order=True)
    assert actual.rdd.getNumPartitions() > 1  # many files are planned as several partitions


def test_params_tags_and_summaries_match_client(spark, tracked):
    params, tags, summaries = [], [], []
    for run_id in tracked.runs:
        run = tracked.client.get_run(run_id)
        experiment = run.info.experiment_id
        params += [(run_id, experiment, k, v) for k, v in run.data.params.items()]
        tags += [(run_id, experiment, k, v) for k, v in run.data.tags.items()]
        for key, latest in run.data.metrics.items():
            points = tracked.client.get_metric_history(run_id, key)
            last = max(points, key=lambda p: (p.step, p.timestamp, p.value))
            summaries.append((run_id, experiment, key, latest, last.step, last.timestamp,
                              min(p.value for p in points), max(p.value for p in points),
                              len(points)))
    for table, rows in (("params", params), ("tags", tags), ("metric_summaries", summaries)):
        actual = _read(spark, tracked.uri, table)
        assert_df_equality(actual, spark.createDataFrame(rows, actual.schema),
                           ignore_row_order=True)
    assert not any(key == "gone" for _, _, key, _ in tags)


def test_experiments_table_matches_client(spark, tracked):
    actual = _read(spark, tracked.uri, "experiments")
    rows = [
        (e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time,
         e.last_update_time, e.tags)
        for e in tracked.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    ]
    expected = spark.createDataFrame(rows, actual.schema)
    assert_df_equality(actual.drop("tags"), expected.drop("tags"), ignore_row_order=True)
    tags = {r.experiment_id: r.tags for r in actual.collect()}
    assert tags[tracked.alpha] == {"team": "ml"}


def test_experiment_selection_options(spark, tracked):
    by_id = _read(spark, tracked.uri, experiment_ids=tracked.beta)
    assert {r.experiment_id for r in by_id.collect()} == {tracked.beta}
    experiments = _read(spark, tracked.uri, "experiments", experiment_names="alpha").collect()
    assert [e.experiment_id for e in experiments] == [tracked.alpha]
    by_name = _read(spark, tracked.uri, "metrics", experiment_names="alpha, beta")
    assert by_name.count() == _read(spark, tracked.uri, "metrics").count()
    with pytest.raises(Exception, match="No experiment named 'nope'"):
        _read(spark, tracked.uri, experiment_names="nope").collect()
    with pytest.raises(Exception, match="is not a sparktrack table"):
        _read(spark, tracked.uri, "bogus").collect()


@needs_pushdown
def test_filters_give_same_rows_with_pushdown_on_and_off(spark, tracked):
    child = tracked.runs[1]

    def query():
        metrics = _read(spark, tracked.uri, "metrics").filter(
            f"run_id = '{child}' AND key IN ('loss') AND step >= 2 AND value > 0.1"
        )
        runs = _read(spark, tracked.uri).filter(
            f"experiment_id = '{tracked.alpha}' AND status = 'FINISHED' "
            "AND start_time >= timestamp'2023-11-14 22:13:21' AND run_name LIKE 'child%'"
        )
        return metrics.collect(), sorted(r.run_id for r in runs.collect())

    assert spark.conf.get(PUSHDOWN) == "true"
    pushed = query()
    spark.conf.set(PUSHDOWN, "false")
    try:
        unpushed = query()
    finally:
        spark.conf.set(PUSHDOWN, "true")
    assert sorted(pushed[0]) == sorted(unpushed[0])
    assert pushed[1] == unpushed[1]
    expected = [p for p in tracked.client.get_metric_history(child, "loss") if p.step >= 2]
    assert sorted((r.step, r.value) for r in pushed[0]) == [(p.step, p.value) for p in expected]
    assert pushed[1] == sorted(tracked.runs[2:3])  # child-1 (child-0 starts before, -2 FAILED)


@needs_pushdown
def test_pushdown_reads_only_the_files_it_needs(tracked):
    from pyspark.sql.datasource import EqualTo, GreaterThan, StringStartsWith

    from sparktrack.spark._datasource import SparkTrackReader

    options = reader.parse_options({"path": tracked.uri, "table": "metrics"})
    child = tracked.runs[1]
    value_filter = GreaterThan(("value",), 1.0)
    pushed = SparkTrackReader(options)
    left = list(pushed.pushFilters([EqualTo(("run_id",), child), value_filter,
                                    StringStartsWith(("key",), "lo")]))
    assert left == [value_filter]  # doubles stay with Spark (NaN ordering differs)
    files_all = sum(len(task.files) for task in reader.plan(options))
    files_one = sum(len(task.files) for task in pushed.partitions() for task in [task.task])
    assert files_one < files_all
    rows = [batch for part in pushed.partitions() for batch in pushed.read(part)]
    assert sum(b.num_rows for b in rows) == 6  # the 6 steps of "loss" ("acc" does not match)


def test_filter_string_on_runs(spark, tracked):
    from sparktrack.spark import filter as search_filter

    runs = _read(spark, tracked.uri)
    found = search_filter(runs, "metrics.loss < 2.5 AND params.depth != '2'",
                          order_by=["metrics.loss DESC"])
    expected = []
    for run_id in tracked.runs:
        data = tracked.client.get_run(run_id).data
        loss = data.metrics.get("loss")
        if loss is not None and not math.isnan(loss) and loss < 2.5 and \
                data.params.get("depth") not in (None, "2"):
            expected.append((loss, run_id))
    assert [r.run_id for r in found.collect()] == [i for _, i in sorted(expected, reverse=True)]
    assert search_filter(runs, None).count() == runs.count()


def test_register_tables_gives_sql_views(spark, tracked):
    from sparktrack.errors import InvalidInputError
    from sparktrack.spark import register_tables

    names = register_tables(spark, tracked.uri, prefix="st_")
    assert names == ["st_experiments", "st_inputs", "st_metric_summaries", "st_metrics",
                     "st_model_aliases", "st_model_versions", "st_params", "st_registered_models",
                     "st_registry_events", "st_runs", "st_tags"]
    count = spark.sql(
        "SELECT count(*) AS n FROM st_runs r JOIN st_experiments e USING (experiment_id) "
        "WHERE e.name = 'alpha'"
    ).collect()[0].n
    assert count == 4
    with pytest.raises(InvalidInputError, match="no Delta Lake configured"):
        register_tables(spark, tracked.uri, database="tracking")


def test_public_names_and_options():
    import sparktrack.spark
    from sparktrack.errors import InvalidInputError
    from sparktrack.spark._datasource import spark_schema

    assert sparktrack.spark.__all__ == ["ModelInfo", "check_java", "filter", "load_model",
                                        "log_model", "predict", "register", "register_tables",
                                        "save_model", "session"]
    parsed = reader.parse_options({"path": "/s", "TABLE": "Metrics", "experiment_ids": "1, 2",
                                   "timestampAsOf": "2024-05-01 12:00:00",
                                   "storage.AWS_REGION": "eu"})
    assert (parsed.table, parsed.experiment_ids) == ("metrics", ("1", "2"))
    assert parsed.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parsed.storage_options == {"aws_region": "eu"}
    assert reader.parse_options({"path": "/s", "timestampAsOf": "0"}).timestamp.year == 1970
    for bad, message in (
        ({"versionAsOf": "1", "timestampAsOf": "2024-01-01"}, "not both"),
        ({"versionAsOf": "-1"}, "versionasof"),
        ({"include_deleted": "maybe"}, "include_deleted"),
        ({"timestampAsOf": "yesterday"}, "not a timestamp"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            reader.parse_options({"path": "/s", **bad})
    assert spark_schema("metrics") == (
        "`run_id` string NOT NULL, `experiment_id` string NOT NULL, `key` string NOT NULL, "
        "`value` double NOT NULL, `timestamp` bigint NOT NULL, `step` bigint NOT NULL"
    )

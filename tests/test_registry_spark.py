"""The registry through the Spark data source: registered models, versions, aliases and the
event history as tables, and a stream of registry events that sees a stage transition."""

from __future__ import annotations

import pytest

from sparktrack import TrackingClient
from sparktrack.errors import InvalidInputError
from sparktrack.spark import register_tables


@pytest.fixture()
def registry(store_uri):
    client = TrackingClient(store_uri)
    client.create_registered_model("churn", tags={"team": "ml"})
    for i in range(3):
        client.create_model_version("churn", f"/m/{i}", run_id=f"run-{i}")
    client.create_registered_model("gone")
    client.create_model_version("gone", "/g")
    client.delete_registered_model("gone")
    client.delete_model_version("churn", 3)
    client.set_registered_model_alias("churn", "champion", 2)
    client.transition_model_version_stage("churn", 2, "Production")
    return client


def _read(spark, uri, table, **options):
    reader = spark.read.format("sparktrack").option("table", table)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load(uri)


def test_registry_tables_through_the_data_source(spark, store_uri, registry):
    models = _read(spark, store_uri, "registered_models").collect()
    assert [(m.name, dict(m.tags)) for m in models] == [("churn", {"team": "ml"})]
    versions = _read(spark, store_uri, "model_versions").collect()
    assert [(v.name, v.version, v.current_stage, v.run_id) for v in versions] == [
        ("churn", 1, "None", "run-0"), ("churn", 2, "Production", "run-1")]
    # A pushed filter on a column a tombstone changed does not bring the deleted version back.
    assert _read(spark, store_uri, "model_versions").where("run_id = 'run-2'").count() == 0
    every = _read(spark, store_uri, "model_versions", include_deleted="true")
    assert every.where("current_stage = 'Deleted_Internal'").count() == 2
    aliases = _read(spark, store_uri, "model_aliases").collect()
    assert [(a.name, a.alias, a.version) for a in aliases] == [("churn", "champion", 2)]
    events = _read(spark, store_uri, "registry_events")
    assert events.where("event = 'TRANSITION_STAGE'").select("version", "stage").collect()[0] \
        .asDict() == {"version": 2, "stage": "Production"}


def test_which_version_was_production_at_time_t_in_spark_sql(spark, store_uri, registry):
    import time

    time.sleep(0.01)
    t = int(time.time() * 1000)
    time.sleep(0.01)
    registry.transition_model_version_stage("churn", 1, "Production", True)
    register_tables(spark, store_uri, prefix="reg_")
    query = f"""
        SELECT version FROM (
          SELECT version, stage,
                 ROW_NUMBER() OVER (PARTITION BY version ORDER BY timestamp DESC, event_id DESC) n
          FROM reg_registry_events
          WHERE name = 'churn' AND event = 'TRANSITION_STAGE' AND timestamp <= {t})
        WHERE n = 1 AND stage = 'Production'"""
    assert [r.version for r in spark.sql(query).collect()] == [2]
    now = query.replace(f"timestamp <= {t}", "true")
    assert [r.version for r in spark.sql(now).collect()] == [1]


def test_a_stream_of_registry_events_sees_a_transition(spark, store_uri, registry, tmp_path):
    """A CI/CD job run now and then (availableNow) gets each new registry change once."""
    output, checkpoint = str(tmp_path / "feed"), str(tmp_path / "checkpoint")

    def run_job() -> None:
        stream = (spark.readStream.format("sparktrack").option("table", "registry_events")
                  .option("startingVersion", "latest").load(store_uri))
        (stream.writeStream.format("json").option("path", output)
         .option("checkpointLocation", checkpoint).trigger(availableNow=True).start()
         .awaitTermination())

    run_job()  # starts at the newest version: nothing older is delivered
    registry.transition_model_version_stage("churn", 1, "Staging")
    run_job()
    rows = spark.read.schema("event string, name string, version long, previous_stage "
                             "string, stage string").json(output).collect()
    assert [r.asDict() for r in rows] == [{"event": "TRANSITION_STAGE", "name": "churn",
                                           "version": 1, "previous_stage": "None",
                                           "stage": "Staging"}]


def test_streaming_other_registry_tables_is_refused(store_uri):
    from sparktrack.spark._datasource import SparkTrackStreamReader
    from sparktrack.spark._reader import parse_options

    with pytest.raises(InvalidInputError, match="registry_events"):
        SparkTrackStreamReader(parse_options({"path": store_uri, "table": "model_versions"}),
                               None)
    with pytest.raises(InvalidInputError, match="registered_models"):
        parse_options({"path": store_uri, "table": "registered_model"})


def test_a_filter_on_a_column_a_tombstone_changed_keeps_the_version_deleted(store_uri):
    """Without Spark: the reader plans and reads with the condition pushed down."""
    from sparktrack.spark import _reader

    client = TrackingClient(store_uri)
    client.create_registered_model("churn")
    client.create_model_version("churn", "/m", run_id="run-1")
    client.delete_model_version("churn", 1)
    opts = _reader.parse_options({"path": store_uri, "table": "model_versions"})
    opts = opts.with_conditions([("=", "run_id", "run-1")])
    rows = [row for task in _reader.plan(opts) for batch in _reader.read_task(opts, task)
            for row in batch.to_pylist()]
    assert rows == []

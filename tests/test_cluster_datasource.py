"""The ``sparktrack`` data source on a Spark standalone cluster (master, worker and executor in
separate JVMs, executors with their own Python workers and sparktrack shipped as --py-files):
every table, filtered queries and a streaming query give what the local session gives."""

from __future__ import annotations

import json
import os
import time

import pytest

from spark_cluster import spark_cluster  # noqa: F401  (fixture)
from sparktrack import TrackingClient
from sparktrack.entities import Dataset, DatasetInput, InputTag
from sparktrack.spark._reader import OUTPUT_SCHEMAS

pytestmark = [pytest.mark.slow, pytest.mark.spark]

TABLES = sorted(OUTPUT_SCHEMAS)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two experiments (and a deleted one), finished, failed, deleted and restored runs with
    params, tags, metric histories and an input; a registered model with versions and an
    alias. One flush per run, so that tables have several files."""
    root = str(tmp_path_factory.mktemp("cluster-store") / "store")
    client = TrackingClient(root)
    alpha = client.create_experiment("alpha", tags={"team": "ml"})
    beta = client.create_experiment("beta")
    client.delete_experiment(client.create_experiment("gone"))
    runs = []
    for index in range(5):
        run_id = client.create_run(alpha if index < 3 else beta, run_name=f"run-{index}",
                                   start_time=1_700_000_000_000 + index).info.run_id
        for step in range(4):
            client.log_metric(run_id, "loss", 1.0 / (step + 1) + index, step=step,
                              timestamp=1_700_000_000_000 + step)
        client.log_metric(run_id, "acc", 0.5 + index / 10)
        client.log_param(run_id, "lr", str(0.1 * (index + 1)))
        client.set_tag(run_id, "stage", "tuning" if index % 2 else "final")
        client.set_terminated(run_id, status="FAILED" if index == 2 else "FINISHED")
        client.flush()
        runs.append(run_id)
    client.log_inputs(runs[0], [DatasetInput(
        Dataset(name="train", digest="0a1b2c3d", source_type="spark",
                source=json.dumps({"path": "/data/train"})),
        [InputTag("mlflow.data.context", "training")])])
    client.delete_run(runs[3])  # left out by default, on every table
    client.delete_run(runs[4])
    client.restore_run(runs[4])  # deleted, then back: its newest row decides
    client.create_registered_model("churn", description="churn model")
    for _ in range(2):
        client.create_model_version("churn", f"{root}/artifacts/model", run_id=runs[0])
    client.set_registered_model_alias("churn", "champion", 1)
    client.flush()
    return {"root": root, "runs": runs, "client": client}


# -- what both sessions compute (module level: the cluster driver imports them by name) ---------
def _canonical(rows) -> list[str]:
    """Rows as sorted JSON lines, so that two sessions' answers compare exactly."""
    return sorted(json.dumps(row.asDict(recursive=True), sort_keys=True, default=str)
                  for row in rows)


def read_every_table(spark, root: str) -> dict[str, list[str]]:
    """Every table's rows as sorted JSON lines (one Spark job: a union of the 11 scans)."""
    from functools import reduce

    from pyspark.sql import functions as F

    scans = [
        spark.read.format("sparktrack").option("table", table).load(root)
        .select(F.lit(table).alias("table"), F.to_json(F.struct("*")).alias("row"))
        for table in TABLES
    ]
    found: dict[str, list[str]] = {table: [] for table in TABLES}
    for row in reduce(lambda a, b: a.unionAll(b), scans).collect():
        found[row.table].append(row.row)
    return {table: sorted(rows) for table, rows in found.items()}


def filtered_queries(spark, root: str, run_id: str) -> dict[str, list[str]]:
    from pyspark.sql import functions as F

    from sparktrack.spark import filter as search_filter

    def read(table: str, **options):
        reader = spark.read.format("sparktrack").option("table", table)
        for key, value in options.items():
            reader = reader.option(key, value)
        return reader.load(root)

    history = read("metrics").where(
        (F.col("run_id") == run_id) & (F.col("step") >= 2) & F.col("key").startswith("lo"))
    best = search_filter(read("runs", experiment_names="alpha"),
                         "metrics.acc > 0.55 AND params.lr != '0.1'",
                         order_by=["metrics.acc DESC"])
    return {
        "history": _canonical(history.collect()),
        "best": [row.run_id for row in best.collect()],  # ordered
        "per_experiment": _canonical(read("params").groupBy("experiment_id").count().collect()),
    }


def stream_metrics(spark, root: str, folder: str) -> list[str]:
    """One availableNow micro-batch run of a metrics stream into parquet (checkpointed)."""
    query = (
        spark.readStream.format("sparktrack").option("table", "metrics").load(root)
        .writeStream.format("parquet").option("path", f"{folder}/out")
        .option("checkpointLocation", f"{folder}/checkpoint").trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(180)
    if query.exception() is not None:
        raise RuntimeError(str(query.exception()))
    return _canonical(spark.read.parquet(f"{folder}/out").collect())


def every_point(spark, root: str) -> list[str]:
    return _canonical(spark.read.format("sparktrack").option("table", "metrics")
                      .option("include_deleted", "true").load(root).collect())


def where_tasks_run(spark, root: str) -> dict[str, object]:
    """The JVM that runs the tasks of a data source scan, and where executors found
    sparktrack."""

    def facts(rows):
        # A Python worker's ancestors lead to the JVM that started it: an executor
        # (CoarseGrainedExecutorBackend) or, in local mode, the driver (SparkSubmit).
        import sparktrack

        pid, jvm = os.getpid(), "none"
        while pid > 1:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().split(b"\0")
            if os.path.basename(command[0]) == b"java":
                jvm = next((c.decode() for c in command if c.startswith(b"org.apache.spark")),
                           "java")
                break
            with open(f"/proc/{pid}/stat") as file:
                pid = int(file.read().rsplit(")", 1)[1].split()[1])
        yield (jvm, sparktrack.__file__, sum(1 for _ in rows))

    scan = spark.read.format("sparktrack").option("table", "metrics").load(root)
    found = scan.rdd.mapPartitions(facts).collect()
    return {
        "jvms": sorted({jvm for jvm, _, _ in found}),
        "modules": sorted({module for _, module, _ in found}),
        "rows": sum(count for _, _, count in found),
        "driver_pid": os.getpid(),
    }


# -- tests --------------------------------------------------------------------------------------
def test_every_table_reads_the_same_on_the_cluster(spark, spark_cluster, store):
    local = read_every_table(spark, store["root"])
    remote = spark_cluster.driver.run(read_every_table, store["root"])
    assert remote == local
    assert all(local[table] for table in TABLES), [t for t in TABLES if not local[t]]
    runs = {json.loads(line)["run_id"] for line in local["runs"]}
    assert len(runs) == len(local["runs"])
    assert runs == set(store["runs"]) - {store["runs"][3]}  # deleted left out, restored back
    assert store["runs"][3] not in "".join(local["metrics"] + local["params"] + local["tags"])


def test_filtered_queries_on_the_cluster(spark, spark_cluster, store):
    run_id = store["runs"][1]
    local = filtered_queries(spark, store["root"], run_id)
    remote = spark_cluster.driver.run(filtered_queries, store["root"], run_id)
    assert remote == local
    assert [json.loads(line)["step"] for line in local["history"]] == [2, 3]
    client = store["client"]
    alpha = client.get_experiment_by_name("alpha").experiment_id
    wanted = [(r.data.metrics["acc"], r.info.run_id)
              for r in client.search_runs([alpha], "metrics.acc > 0.55 AND params.lr != '0.1'")]
    assert local["best"] == [run_id for _, run_id in sorted(wanted, reverse=True)]


def test_streaming_query_on_the_cluster(spark, spark_cluster, store, tmp_path):
    root = store["root"]
    first = spark_cluster.driver.run(stream_metrics, root, str(tmp_path / "cluster"))
    assert first == every_point(spark, root)  # a stream delivers deleted runs' points too
    assert len(first) == 5 * 5  # 4 loss points and 1 acc per run
    # This process logs more points; the next availableNow run delivers exactly them.
    client = TrackingClient(root)
    run_id = store["runs"][0]
    for step in range(4, 7):
        client.log_metric(run_id, "loss", 0.01 * step, step=step, timestamp=int(time.time() * 1000))
    client.flush()
    second = spark_cluster.driver.run(stream_metrics, root, str(tmp_path / "cluster"))
    assert second == every_point(spark, root)
    new = sorted(set(second) - set(first))
    assert len(second) == len(first) + 3
    assert sorted(json.loads(line)["step"] for line in new) == [4, 5, 6]


def test_executors_read_with_the_shipped_package(spark, spark_cluster, store):
    facts = spark_cluster.driver.run(where_tasks_run, store["root"])
    local = where_tasks_run(spark, store["root"])
    assert local["jvms"] == ["org.apache.spark.deploy.SparkSubmit"]  # the check tells them apart
    assert facts["jvms"] == ["org.apache.spark.executor.CoarseGrainedExecutorBackend"]
    assert len(facts["modules"]) == 1
    assert str(spark_cluster.package) in facts["modules"][0] or \
        facts["modules"][0].startswith(f"./{spark_cluster.package.name}/")
    assert facts["rows"] == local["rows"] > 0

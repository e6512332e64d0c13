"""The data source without filter pushdown: what pyspark 4.0 gives every query.

pyspark 4.0 has no filter pushdown for Python data sources (no ``EqualTo`` and friends in
``pyspark.sql.datasource``, no ``DataSourceReader.pushFilters``), so the reader must read every
row its options select and leave the query's filters to Spark. `make compat` runs the suite on
pyspark 4.0 itself; the tests here keep that path honest on whatever pyspark is installed:

- a Spark job in a subprocess whose driver and Python workers see pyspark's data source API
  without the filter classes (a ``sitecustomize`` removes them at interpreter start, before
  sparktrack is imported), which is how sparktrack's feature check sees pyspark 4.0;
- the reader offers ``pushFilters`` and the session turns pushdown on exactly where pyspark has it.

(With the pushdown setting off on a pyspark that has it, Spark calls no ``pushFilters``:
``test_datasource.py::test_filters_give_same_rows_with_pushdown_on_and_off`` covers that.)

Expected rows come from :class:`sparktrack.TrackingClient`, not from Spark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from sparktrack import TrackingClient

pytestmark = pytest.mark.spark

PUSHDOWN = "spark.sql.python.filterPushdown.enabled"
REPO = Path(__file__).resolve().parents[1]
BASE_TIME = 1_700_000_000_000

# Removes the filter classes (Filter and every subclass) from pyspark's data source API in each
# Python process that starts with this folder on PYTHONPATH: the driver and Spark's workers.
SITECUSTOMIZE = textwrap.dedent(
    """
    import pyspark.sql.datasource as api

    FILTER = getattr(api, "Filter", None)
    for name, value in list(vars(api).items()):
        if FILTER is not None and isinstance(value, type) and issubclass(value, FILTER):
            delattr(api, name)
    """
)

# The Spark job: run each query on the data source and print the rows as JSON.
SCRIPT = textwrap.dedent(
    """
    import json, sys

    import pyspark.sql.datasource as api

    import sparktrack
    from sparktrack.spark import filter as search_filter, session
    from sparktrack.spark._datasource import PUSHDOWN_AVAILABLE, SparkTrackReader

    store, queries = sys.argv[1], json.loads(sys.argv[2])
    spark = session(app_name="sparktrack-no-pushdown")

    def worker_has_filters(_):
        import pyspark.sql.datasource as worker_api
        return hasattr(worker_api, "EqualTo")

    result = {
        "driver_has_filters": hasattr(api, "EqualTo"),
        "workers_have_filters": spark.sparkContext.parallelize([0, 1], 2)
            .map(worker_has_filters).collect(),
        "pushdown_available": PUSHDOWN_AVAILABLE,
        "reader_pushes": "pushFilters" in vars(SparkTrackReader),
        "pushdown_conf": spark.conf.get("spark.sql.python.filterPushdown.enabled", None),
        "rows": {},
    }
    for name, (table, where, columns) in queries.items():
        frame = spark.read.format("sparktrack").option("table", table).load(store)
        frame = search_filter(frame, where[len("search:"):]) if where.startswith("search:") \\
            else frame.filter(where)
        result["rows"][name] = sorted(list(row) for row in frame.select(*columns).collect())
    print("RESULT " + json.dumps(result))
    spark.stop()
    """
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two experiments; a parent with three children, a fourth run, a deleted run."""
    uri = str(tmp_path_factory.mktemp("compat") / "store")
    client = TrackingClient(uri)
    alpha, beta = client.create_experiment("alpha"), client.create_experiment("beta")
    parent = client.create_run(alpha, run_name="parent", start_time=BASE_TIME).info.run_id
    children = []
    for index in range(4):
        run_id = client.create_run(
            alpha if index < 3 else beta, run_name=f"child-{index}",
            parent_run_id=parent if index < 3 else None,
            start_time=BASE_TIME + (index + 1) * 1000,
        ).info.run_id
        for step in range(4):
            client.log_metric(run_id, "loss", 1 / (step + 1) + index, step=step,
                              timestamp=BASE_TIME + step)
        client.log_param(run_id, "lr", f"0.{index + 1}")
        client.set_tag(run_id, "stage", "tuning")
        client.set_terminated(run_id, status="FAILED" if index == 2 else "FINISHED")
        client.flush()
        children.append(run_id)
    deleted = client.create_run(beta, run_name="deleted").info.run_id
    client.log_metric(deleted, "loss", 9.0, step=0)
    client.log_param(deleted, "lr", "0.1")
    client.delete_run(deleted)
    client.set_terminated(parent)
    client.flush()
    return SimpleNamespace(uri=uri, client=client, alpha=alpha, beta=beta, parent=parent,
                           children=children, deleted=deleted)


def _queries(s: SimpleNamespace) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (table, Spark SQL filter or "search:<MLflow filter>", selected columns).

    Each filter kind Spark can push (=, IN, ranges on strings, bigints and timestamps, LIKE
    prefix/suffix/infix, IS [NOT] NULL, NOT) on each table shape, and the search grammar.
    """
    c0, c1, _, c3 = s.children
    return {
        "finished_children": ("runs", f"experiment_id = '{s.alpha}' AND status = 'FINISHED' "
                              "AND run_name LIKE 'child%'", ["run_id"]),
        "top_level": ("runs", "parent_run_id IS NULL", ["run_id"]),
        "nested_late": ("runs", "parent_run_id IS NOT NULL AND NOT (status = 'FINISHED') "
                        "AND start_time >= timestamp'2023-11-14 22:13:22'", ["run_id"]),
        "name": ("runs", "run_name LIKE '%ild-%' AND run_name LIKE '%-3'", ["run_id"]),
        "history": ("metrics", f"run_id = '{c1}' AND key IN ('loss') AND step >= 2",
                    ["step", "value"]),
        # The deleted run's 9.0 must not come back.
        "high_values": ("metrics", "value > 2.4", ["run_id", "step"]),
        "params": ("params", "key = 'lr' AND value IN ('0.1', '0.2')", ["run_id"]),
        "tags": ("tags", f"key = 'stage' AND run_id IN ('{c0}', '{c3}')", ["run_id"]),
        "experiment": ("experiments", "name = 'beta'", ["experiment_id"]),
        "summary": ("metric_summaries", f"key = 'loss' AND run_id = '{c3}'",
                    ["latest_step", "min_value", "count"]),
        "search": ("runs", "search:metrics.loss < 3 AND params.lr = '0.2' "
                   "AND attributes.status = 'FINISHED'", ["run_id"]),
    }


def _expected(s: SimpleNamespace) -> dict[str, list]:
    """The rows each query must return, from the client."""
    client, (c0, c1, c2, c3) = s.client, s.children
    history = {
        run_id: sorted((p.step, p.value) for p in client.get_metric_history(run_id, "loss"))
        for run_id in s.children
    }
    return {
        "finished_children": sorted([[c0], [c1]]),
        "top_level": sorted([[s.parent], [c3]]),
        "nested_late": [[c2]],
        "name": [[c3]],
        "history": [[step, value] for step, value in history[c1] if step >= 2],
        "high_values": sorted(
            [run_id, step] for run_id in s.children for step, value in history[run_id]
            if value > 2.4
        ),
        "params": sorted([[c0], [c1]]),
        "tags": sorted([[c0], [c3]]),
        "experiment": [[s.beta]],
        "summary": [[3, min(v for _, v in history[c3]), 4]],
        "search": [[c1]],
    }


def _run_without_filter_classes(tmp_path: Path, s: SimpleNamespace) -> dict:
    simulated = tmp_path / "pyspark40"
    simulated.mkdir()
    (simulated / "sitecustomize.py").write_text(SITECUSTOMIZE)
    paths = [str(simulated), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.pop("PYSPARK_PYTHON", None)  # the session helper sets it to this interpreter
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, s.uri, json.dumps(_queries(s))],
        env=env, capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow
def test_reads_are_right_where_pyspark_has_no_filter_classes(tmp_path, store):
    result = _run_without_filter_classes(tmp_path, store)
    # The simulation reached the driver and the Python workers.
    assert result["driver_has_filters"] is False
    assert result["workers_have_filters"] == [False, False]
    # sparktrack's feature check chose the path without pushdown.
    assert result["pushdown_available"] is False
    assert result["reader_pushes"] is False
    assert result["pushdown_conf"] is None  # not set: pyspark 4.0 has no such setting
    expected = _expected(store)
    for name, rows in expected.items():
        assert result["rows"][name] == rows, name
    assert set(result["rows"]) == set(expected)


def test_pushdown_is_offered_exactly_where_pyspark_has_it(spark):
    import pyspark.sql.datasource as api

    from sparktrack.spark._datasource import PUSHDOWN_AVAILABLE, SparkTrackReader

    has_api = hasattr(api, "EqualTo") and hasattr(api.DataSourceReader, "pushFilters")
    assert PUSHDOWN_AVAILABLE is has_api
    assert ("pushFilters" in vars(SparkTrackReader)) is has_api
    assert spark.conf.get(PUSHDOWN, None) == ("true" if has_api else None)

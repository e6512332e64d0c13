"""The store's structure: one set of current-state rules, a bounded per-run cache, a store lock
never held during Delta I/O, open_store's settings check, and the client's API instead of its
store. Each test fails on a mistake that was once made without any test noticing."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest

from sparktrack import Metric, Param, TrackingClient
from sparktrack.config import Settings
from sparktrack.entities import LifecycleStage, ViewType
from sparktrack.errors import InvalidStateError, ParamOverwriteError, QuotaExceededError
from sparktrack._store import TrackingStore, open_store

# -- current-state rules ---------------------------------------------------------------------


def _two_writers_log_one_param(root: str) -> tuple[str, str]:
    """Two stores (as two processes) log different values of one param of one run; the first
    committed value is "z-first", which sorts after the later "a-later": neither the newest
    row nor the smallest value is the right answer."""
    first = TrackingStore(root)
    experiment_id = first.create_experiment("params")
    run_id = first.create_run(experiment_id, run_name="r", user_id="u").run_id
    first.flush()
    late = TrackingStore(root)
    late.log_metric(run_id, "m", 1.0, 0, 0)  # the late writer knows the run before the first
    # value lands, so its own check lets its value through
    first.log_batch(run_id, params=[Param("p", "z-first")])
    first.flush()
    time.sleep(0.005)  # logged_at is stamped in milliseconds at commit
    late.log_batch(run_id, params=[Param("p", "a-later")])
    with pytest.raises(ParamOverwriteError, match="z-first"):
        late.flush()  # the late value is committed, then found to have lost
    return experiment_id, run_id


def test_search_and_reload_see_the_first_param_value_not_the_newest(store_uri):
    experiment_id, run_id = _two_writers_log_one_param(store_uri)
    client = TrackingClient(store_uri)
    assert client.get_run(run_id).data.params == {"p": "z-first"}
    found = client.search_runs([experiment_id], "params.p = 'z-first'")
    assert [run.info.run_id for run in found] == [run_id]
    assert found[0].data.params == {"p": "z-first"}
    assert client.search_runs([experiment_id], "params.p = 'a-later'") == []
    # A process that reloads the run's state keeps the first value as the one to match.
    reloaded = TrackingStore(store_uri)
    reloaded.log_batch(run_id, params=[Param("p", "z-first")])  # the same value: no-op
    with pytest.raises(ParamOverwriteError, match="z-first"):
        reloaded.log_batch(run_id, params=[Param("p", "a-later")])


def test_warm_search_state_is_rebuilt_after_another_process_gc(store_uri):
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("gc-elsewhere")
    doomed, kept = (client.create_run(experiment_id, run_name=name).info.run_id
                    for name in ("doomed", "kept"))
    for run_id in (doomed, kept):
        client.log_batch(run_id, metrics=[Metric("m", 1.0, 0, 0)],
                         params=[Param("p", run_id)])
    client.delete_run(doomed)
    client.flush()
    warm = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert {run.info.run_id for run in warm} == {doomed, kept}  # the state is warm now

    process = multiprocessing.get_context("spawn").Process(target=_gc_everything,
                                                           args=(store_uri,))
    process.start()
    process.join(120)
    assert process.exitcode == 0

    after = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert [run.info.run_id for run in after] == [kept]
    assert after[0].data.params == {"p": kept}
    assert client.search_runs([experiment_id], f"params.p = '{doomed}'",
                              run_view_type=ViewType.ALL) == []


def _gc_everything(root: str) -> None:
    assert TrackingClient(root).gc(older_than=timedelta(0)).run_ids


def test_data_source_keeps_a_pushed_not(spark, store_uri):
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("not")
    a, b = (client.create_run(experiment_id, run_name=name).info.run_id for name in "ab")
    for run_id in (a, b):
        client.log_param(run_id, "x", "1")
        client.log_metric(run_id, "m", 1.0, step=0)
    client.flush()
    from sparktrack.spark._datasource import PUSHDOWN_AVAILABLE

    if PUSHDOWN_AVAILABLE:  # pyspark 4.0 has no pushdown: Spark applies the NOT itself
        assert spark.conf.get("spark.sql.python.filterPushdown.enabled") == "true"
    for table in ("runs", "params", "metrics"):
        frame = spark.read.format("sparktrack").option("table", table).load(store_uri)
        for condition in (f"run_id != '{a}'", f"NOT (run_id = '{a}')",
                          f"run_id NOT IN ('{a}')"):
            assert {r.run_id for r in frame.filter(condition).collect()} == {b}, (
                table, condition)


# -- autolog's child runs ---------------------------------------------------------------------


def test_tuning_child_runs_are_numbered_from_one(store_uri):
    pytest.importorskip("pyspark")
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    from pyspark.ml import Estimator
    from pyspark.ml.param.shared import HasMaxIter

    from sparktrack._autolog import naming, tuning

    class Tuned(Estimator, HasMaxIter):
        def _fit(self, dataset):
            raise AssertionError("not fitted here")

    estimator = Tuned()
    tuner = TrainValidationSplit(
        estimator=estimator,
        estimatorParamMaps=ParamGridBuilder().addGrid(estimator.maxIter, [1, 2, 3]).build(),
    )
    names = naming.indexed_names(tuner)
    result = tuning.SearchResult(
        metric_name="rmse", columns={"rmse": [3.0, 1.0, 2.0]}, ranking_key="rmse",
        best_index=1, larger_is_better=False,
        param_maps=naming.tuning_param_maps(tuner, names),
    )
    client = TrackingClient(store_uri)
    parent = client.create_run("0", run_name="search").info
    child_ids = tuning.log_child_runs(
        client, parent=parent, tuner=tuner, result=result, names=names, recorder=None,
        max_runs=None, base_tags={}, limit=lambda params: {k: str(v) for k, v in params.items()},
    )
    children = [client.get_run(run_id) for run_id in child_ids]
    assert [run.info.run_name for run in children] == ["search-1", "search-2", "search-3"]
    assert [run.data.tags["mlflow.runName"] for run in children] == [
        "search-1", "search-2", "search-3"]


# -- the per-run cache ----------------------------------------------------------------------


def test_an_evicted_run_is_read_again_from_the_store(store_uri):
    store = TrackingStore(store_uri, max_cached_runs=2,
                          settings=Settings(max_metric_points_per_run=3, max_tags_per_run=3))
    runs = [store.create_run("0", run_name=f"r{i}", user_id="u").run_id for i in range(3)]
    first = runs[0]
    assert len(store._writes.states) == 2 and store._writes.states.peek(first) is None
    store.log_batch(first, params=[Param("p", "1")], metrics=[Metric("m", 1.0, 0, i)
                                                               for i in range(2)])
    for other in runs[1:]:
        store.log_metric(other, "m", 1.0, 0, 0)  # evicts the first run again
    assert store._writes.states.peek(first) is None
    with pytest.raises(ParamOverwriteError, match="value='1'"):
        store.log_batch(first, params=[Param("p", "2")])  # its param, read back
    store.log_metric(first, "m", 1.0, 0, 2)  # the third point: at the quota
    for other in runs[1:]:
        store.log_metric(other, "m", 1.0, 0, 1)
    with pytest.raises(QuotaExceededError, match="already holds 3"):
        store.log_metric(first, "m", 1.0, 0, 3)  # its points, counted back
    assert len(store._writes.states) <= 2
    assert [p.step for p in store.get_metric_history(first, "m")] == [0, 1, 2]


def test_a_run_deleted_by_another_process_can_be_restored_here(store_uri):
    deleting = TrackingStore(store_uri)
    run_id = deleting.create_run("0", run_name="r", user_id="u").run_id
    deleting.set_run_lifecycle(run_id, LifecycleStage.DELETED)
    deleting.flush()
    restoring = TrackingStore(store_uri)  # as another process: it reads the deleted run
    restoring.set_run_lifecycle(run_id, LifecycleStage.ACTIVE)
    restoring.flush()
    assert TrackingStore(store_uri).get_run_info(run_id).lifecycle_stage == "active"


# -- the store lock and Delta I/O -------------------------------------------------------------


def test_a_slow_commit_does_not_stall_logging_to_a_known_run(store_uri, monkeypatch):
    """One thread's commit waits (a slow object store); another thread keeps logging."""
    store = TrackingStore(store_uri, settings=Settings(flush_interval_seconds=3600.0))
    known = store.create_run("0", run_name="known", user_id="u").run_id
    store.flush()
    elsewhere = TrackingStore(store_uri)  # another process's run: unknown to `store`
    unknown = elsewhere.create_run("0", run_name="unknown", user_id="u").run_id
    elsewhere.flush()

    release, committing = threading.Event(), threading.Event()
    handle = store.tables["metrics"]
    real_append = handle.append

    def slow_append(*args, **kwargs):
        committing.set()
        release.wait(60)
        return real_append(*args, **kwargs)

    monkeypatch.setattr(handle, "append", slow_append)
    store.log_metric(known, "m", 1.0, 0, 0)  # something to commit
    # The first use of an unknown run reads it, committing the buffer first: a slow commit.
    slow = threading.Thread(target=store.log_metric, args=(unknown, "m", 1.0, 0, 0))
    slow.start()
    assert committing.wait(30)
    done = threading.Event()

    def log_loop():
        for step in range(1, 1001):
            store.log_metric(known, "m", 1.0, 0, step)
        done.set()

    logger = threading.Thread(target=log_loop)
    logger.start()
    finished_while_committing = done.wait(30)
    release.set()
    slow.join(60)
    logger.join(60)
    assert finished_while_committing, "log_metric waited for another thread's commit"
    store.flush()
    assert len(store.get_metric_history(known, "m")) == 1001
    assert len(store.get_metric_history(unknown, "m")) == 1


def test_backpressure_commits_outside_the_store_lock(store_uri, monkeypatch):
    """A full buffer makes the logging thread commit, without holding the store lock."""
    store = TrackingStore(store_uri, settings=Settings(max_pending_rows=5,
                                                       flush_interval_seconds=3600.0))
    run_id = store.create_run("0", run_name="r", user_id="u").run_id
    held = []
    real_flush = store.buffer.flush

    def flush():
        held.append(store._lock._is_owned())  # an RLock tells whether this thread holds it
        return real_flush()

    monkeypatch.setattr(store.buffer, "flush", flush)
    for step in range(20):
        store.log_metric(run_id, "m", 1.0, 0, step)
    store.log_batch(run_id, metrics=[Metric("b", 1.0, 0, step) for step in range(6)])
    assert held and not any(held)
    assert store.buffer.row_count < 5


# -- open_store -------------------------------------------------------------------------------


def test_open_store_refuses_other_settings_for_an_open_root(store_uri):
    opened = open_store(store_uri, settings=Settings(max_params_per_run=7))
    assert open_store(store_uri) is opened  # none given: the open store
    assert open_store(store_uri, settings=Settings(max_params_per_run=7)) is opened
    assert TrackingClient(store_uri).settings.max_params_per_run == 7
    with pytest.raises(InvalidStateError) as caught:
        open_store(store_uri, settings=Settings(max_params_per_run=8))
    message = str(caught.value)
    assert store_uri in message and "max_params_per_run=8" in message
    assert "same settings" in message


def test_open_store_refuses_other_storage_options_without_showing_them(store_uri):
    opened = open_store(store_uri, storage_options={"token": "secret-1"})
    assert open_store(store_uri) is opened
    assert TrackingClient(store_uri, storage_options={"token": "secret-1"}).storage_options == {
        "token": "secret-1"}
    with pytest.raises(InvalidStateError) as caught:
        TrackingClient(store_uri, storage_options={"token": "secret-2"})
    message = str(caught.value)
    assert store_uri in message and "token" in message and "secret" not in message


# -- the client's API -------------------------------------------------------------------------


def test_the_client_store_is_private(store_uri):
    client = TrackingClient(store_uri)
    assert not hasattr(client, "store")
    assert client.store_root == open_store(store_uri).root
    assert client.settings is open_store(store_uri).settings

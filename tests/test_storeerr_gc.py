"""gc beside writers: appends by other processes never make it give up, real conflicts are
retried until a deadline, and an unfinished gc says what it did and what it did not."""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta

import pytest
from deltalake import DeltaTable
from deltalake.transaction import AddAction

from sparktrack import TrackingClient
from sparktrack.config import Settings
from sparktrack.entities import LifecycleStage, Metric, Param, RunTag
from sparktrack.errors import InvalidInputError, StoreError
from sparktrack._store.tracking_store import TrackingStore

RUN_TABLES = ("runs", "params", "metrics", "tags", "metric_summaries")


def _writer(root: str, run_id: str, started, stop, interval: float) -> None:
    """Another process: commits a metric point every ``interval`` seconds until told to stop."""
    from sparktrack._store import open_store

    # The process-wide store: its exit hook releases Arrow state before the interpreter ends.
    store = open_store(root, settings=Settings(flush_interval_seconds=3600.0))
    step = 0
    while not stop.is_set():
        store.log_metric(run_id, "live", float(step), 1000 + step, step)
        store.flush()
        step += 1
        if step == 3:
            started.set()
        time.sleep(interval)


def _doomed_and_live(
    root: str, *, doomed: int, points: int = 1
) -> tuple[str, list[str], str]:
    store = TrackingStore(root)
    experiment_id = store.create_experiment("busy")
    run_ids = []
    for i in range(doomed):
        run_id = store.create_run(experiment_id, run_name=f"old-{i}", user_id="u").run_id
        # Enough points that rewriting the partition takes longer than the writer's cycle.
        store.log_batch(run_id, params=[Param("p", str(i))], tags=[RunTag("t", "x")],
                        metrics=[Metric("m", float(step), 1000, step) for step in range(points)])
        run_ids.append(run_id)
    live = store.create_run(experiment_id, run_name="live", user_id="u").run_id
    store.flush()
    for run_id in run_ids:
        store.set_run_lifecycle(run_id, LifecycleStage.DELETED)
    store.flush()
    return experiment_id, run_ids, live


def _rows(root: str, table: str) -> list[dict]:
    return DeltaTable(f"{root}/{table}").to_pyarrow_table().to_pylist()


@pytest.mark.slow
def test_gc_beside_a_writer_committing_every_few_milliseconds(store_uri):
    experiment_id, doomed, live = _doomed_and_live(store_uri, doomed=4, points=50_000)
    context = multiprocessing.get_context("spawn")
    started, stop = context.Event(), context.Event()
    writer = context.Process(target=_writer, args=(store_uri, live, started, stop, 0.002))
    writer.start()
    try:
        assert started.wait(120), "the writer never committed"
        versions_before = DeltaTable(f"{store_uri}/metrics").version()
        result = TrackingClient(store_uri).gc(older_than=timedelta(0), timeout_seconds=60)
        versions_during = DeltaTable(f"{store_uri}/metrics").version() - versions_before
    finally:
        stop.set()
        writer.join(60)
    assert writer.exitcode == 0
    assert versions_during >= 3, "the writer did not commit while gc ran"
    assert sorted(result.run_ids) == sorted(doomed)
    assert result.rows_removed["runs"] >= len(doomed)
    assert result.rows_removed["metrics"] == len(doomed) * 50_000
    assert result.rows_removed["params"] == len(doomed)
    for table in RUN_TABLES:
        assert not {row["run_id"] for row in _rows(store_uri, table)} & set(doomed), table
    # Every point the writer committed is still there, in order, once.
    live_steps = sorted(row["step"] for row in _rows(store_uri, "metrics")
                        if row["run_id"] == live and row["key"] == "live")
    assert live_steps == list(range(len(live_steps)))
    assert TrackingClient(store_uri).get_run(live).data.metrics["live"] == live_steps[-1]


def _append_metric(root: str, experiment_id: str, run_id: str, step: int) -> None:
    """Another writer commits one metric row to the experiment's partition (a file of its own)."""
    import pyarrow as pa

    from sparktrack._delta import DeltaTableHandle
    from sparktrack._store.schemas import METRICS

    row = {"run_id": run_id, "experiment_id": experiment_id, "key": "extra", "value": 1.0,
           "timestamp": 1000 + step, "step": step}
    DeltaTableHandle(root, METRICS).append(pa.Table.from_pylist([row], schema=METRICS.schema))


def test_gc_that_keeps_conflicting_stops_at_its_deadline_and_says_what_it_did(
    store_uri, monkeypatch
):
    """Every rewrite of one experiment loses a real race: another process compacts the files
    it is about to remove. The other experiment is finished; this one is left for the next gc."""
    import sparktrack._delta.rewrite as delta

    _, (finished_run,), _ = _doomed_and_live(store_uri, doomed=1)
    writer = TrackingStore(store_uri)
    contested = writer.create_experiment("contested")
    contested_run = writer.create_run(contested, run_name="c", user_id="u").run_id
    keeper = writer.create_run(contested, run_name="keeper", user_id="u").run_id
    writer.log_batch(contested_run, metrics=[Metric("m", 1.0, 1000, 0)])
    writer.log_batch(keeper, metrics=[Metric("k", 1.0, 1000, 0)])
    writer.flush()
    writer.set_run_lifecycle(contested_run, LifecycleStage.DELETED)
    writer.flush()

    real_commit = delta._commit_actions
    races = []

    def commit_after_a_compaction(table, actions, spec, **kwargs):
        rewrite = any(isinstance(action, AddAction) for action in actions)  # not gc's undo
        if (spec.name == "metrics" and rewrite
                and actions[-1].path.startswith(f"experiment_id={contested}/")):
            # A new file, then a compaction merging it with the files this commit removes.
            races.append(len(races))
            _append_metric(store_uri, contested, contested_run, step=len(races))
            DeltaTable(f"{store_uri}/metrics").optimize.compact(
                partition_filters=[("experiment_id", "=", contested)]
            )
        return real_commit(table, actions, spec, **kwargs)

    monkeypatch.setattr(delta, "_commit_actions", commit_after_a_compaction)
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        TrackingClient(store_uri).gc(older_than=timedelta(0), timeout_seconds=1.5)
    assert time.monotonic() - started < 30
    assert len(races) >= 3  # retried, with backoff, until the deadline
    message = str(raised.value)
    assert message.startswith("gc stopped after ")
    assert f"; experiment {contested}: gc could not rewrite" in message
    assert "conflicted with other writers until the deadline" in message
    assert "Done: 1 run(s) removed for good" in message
    assert f"Not done: 1 run(s) of experiment(s) {contested} are still in the store" in message
    assert "Run gc again" in message
    assert TrackingClient(store_uri).get_run(contested_run).info.lifecycle_stage == "deleted"
    # Each overtaken commit was undone: every row is there once, none lost, none doubled.
    metrics = _rows(store_uri, "metrics")
    contested_rows = [row for row in metrics if row["run_id"] == contested_run]
    assert sorted(row["step"] for row in contested_rows) == list(range(len(races) + 1))
    assert [row["key"] for row in metrics if row["run_id"] == keeper] == ["k"]
    for table in RUN_TABLES:
        assert finished_run not in {row["run_id"] for row in _rows(store_uri, table)}, table

    monkeypatch.setattr(delta, "_commit_actions", real_commit)
    assert TrackingClient(store_uri).gc(older_than=timedelta(0)).run_ids == [contested_run]
    for table in RUN_TABLES:
        assert contested_run not in {row["run_id"] for row in _rows(store_uri, table)}, table
    assert [row["key"] for row in _rows(store_uri, "metrics") if row["run_id"] == keeper] == ["k"]


@pytest.mark.parametrize("timeout", [0, -1, "60", True, float("nan")])
def test_gc_rejects_a_bad_timeout(store_uri, timeout):
    with pytest.raises(InvalidInputError, match="timeout_seconds"):
        TrackingClient(store_uri).gc(timeout_seconds=timeout)

"""Trust in what is written: bad values, kills between commits, several processes at once.

Every test here runs real processes against a real store on disk where more than one
process is involved: a kill is a real SIGKILL at a real commit boundary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import sparktrack
from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.errors import InvalidInputError, ParamOverwriteError, StoreError
from sparktrack._store import open_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, *, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
    )


# == 1. values the tables cannot hold are refused before they are buffered ======================
BAD_CALLS = {
    "step above int64": lambda c, r: c.log_metric(r, "m", 1.0, step=2**63),
    "step below int64": lambda c, r: c.log_metric(r, "m", 1.0, step=-(2**63) - 1),
    "timestamp above int64": lambda c, r: c.log_metric(r, "m", 1.0, timestamp=2**64),
    "batch step above int64": lambda c, r: c.log_batch(r, metrics=[Metric("m", 1.0, 0, 2**63)]),
    "lone surrogate in param": lambda c, r: c.log_param(r, "p", "a\ud800b"),
    "lone surrogate in batch param": lambda c, r: c.log_batch(r, params=[Param("p", "\udfff")]),
    "lone surrogate in tag": lambda c, r: c.set_tag(r, "t", "\ud800"),
    "lone surrogate in batch tag": lambda c, r: c.log_batch(r, tags=[RunTag("t", "\ud800")]),
    "lone surrogate in run name": lambda c, r: c.update_run(r, name="x\ud800"),
    "lone surrogate in key": lambda c, r: c.log_param(r, "k\ud800", "v"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_a_value_the_tables_cannot_hold_is_refused_and_loses_nothing_else(store_uri, name):
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("bad-values")
    other = client.create_run(experiment_id, run_name="other").info.run_id
    target = client.create_run(experiment_id, run_name="target").info.run_id
    client.log_metric(other, "kept", 1.0, step=1)
    client.log_param(other, "kept", "yes")

    with pytest.raises(InvalidInputError) as refused:
        BAD_CALLS[name](client, target)
    assert len(str(refused.value)) < 600

    client.flush()  # nothing buffered is in the way of a commit
    run = client.get_run(other)
    assert run.data.metrics == {"kept": 1.0}
    assert run.data.params == {"kept": "yes"}
    target_run = client.get_run(target)
    assert target_run.data.params == {} and "t" not in target_run.data.tags
    assert client.get_metric_history(target, "m") == []


def test_metric_values_beyond_a_double_are_clamped_like_infinity(store_uri):
    client = TrackingClient(store_uri)
    run_id = client.create_run(client.create_experiment("huge"), run_name="r").info.run_id
    client.log_metric(run_id, "up", 10**400)
    client.log_metric(run_id, "down", -(10**400))
    assert client.get_run(run_id).data.metrics == {
        "up": 1.7976931348623157e308, "down": -1.7976931348623157e308,
    }


def test_a_row_that_cannot_be_converted_is_held_back_without_dropping_its_batch(store_uri):
    # Validation refuses such rows; this is the commit path's own guarantee should one slip by.
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("held-back")
    run_id = client.create_run(experiment_id, run_name="r").info.run_id
    client.log_metric(run_id, "good", 1.0, step=0)
    store = open_store(store_uri)
    store.buffer.add("metrics", (run_id, experiment_id, "bad", 1.0, 0, 2**63))
    client.log_metric(run_id, "good", 2.0, step=1)

    try:
        with pytest.raises(StoreError, match="table 'metrics'.*held back"):
            store.flush()
        assert [m.value for m in client.get_metric_history(run_id, "good")] == [1.0, 2.0]
        assert store.buffer.row_count == 1  # kept (reported once), and again at close
        store.flush()
        with pytest.raises(StoreError, match="held back"):
            store.buffer.close()
    finally:
        store.buffer._unconvertible["metrics"].clear()  # the process must still exit cleanly


# == 3. a kill between the commits of a flush ====================================================
_KILL_WRITER = """
    import os, signal, sys
    import sparktrack
    from sparktrack import TrackingClient
    from sparktrack._delta import DeltaTableHandle

    store, run_id, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = TrackingClient(store)
    for step in range(100, 200):
        client.log_metric(run_id, "loss", 1000.0 - step, step=step)
    client.log_param(run_id, "late", "yes")
    client.set_tag(run_id, "late", "yes")
    client.set_terminated(run_id, status="FINISHED")

    appends = 0
    original = DeltaTableHandle.append
    def append_then_maybe_die(self, rows, **kwargs):
        global appends
        if appends == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        original(self, rows, **kwargs)
        appends += 1
    DeltaTableHandle.append = append_then_maybe_die
    client.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _first_hundred(store_uri) -> str:
    client = TrackingClient(store_uri)
    run_id = client.create_run(client.create_experiment("killed"), run_name="r").info.run_id
    for step in range(100):
        client.log_metric(run_id, "loss", 1000.0 - step, step=step)
    client.flush()
    return run_id


def _assert_summary_matches_history(client: TrackingClient, run_id: str) -> int:
    history = client.get_metric_history(run_id, "loss")
    latest = max(history, key=lambda m: (m.step, m.timestamp, m.value))
    assert client.get_run(run_id).data.metrics["loss"] == latest.value
    frame = client.search_runs([client.get_run(run_id).info.experiment_id])
    assert frame[0].data.metrics["loss"] == latest.value
    return len(history)


# The flush of the second batch commits runs, tags, params, metrics, then metric_summaries:
# die before the first commit, between each two, and after the last.
@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 1, 2, 3, 4, 5])
def test_a_kill_at_any_commit_boundary_leaves_summaries_that_match_the_history(
    store_uri, tmp_path, kill_after
):
    run_id = _first_hundred(store_uri)
    done = _python(_KILL_WRITER.replace("sys.argv[1], sys.argv[2], int(sys.argv[3])",
                                        f"{store_uri!r}, {run_id!r}, {kill_after}"))
    assert done.returncode == -9, done.stderr

    reader = TrackingClient(str(tmp_path / "store"))
    points = _assert_summary_matches_history(reader, run_id)
    assert points == (200 if kill_after >= 4 else 100)
    summaries = open_store(store_uri).current_view("metric_summaries", [
        reader.get_run(run_id).info.experiment_id]).rows().to_pylist()
    assert [row["count"] for row in summaries] == [points]  # repaired once, never twice

    # A new process agrees, and repairs nothing more.
    again = _python(f"""
        from sparktrack import TrackingClient
        client = TrackingClient({store_uri!r})
        print(client.get_run({run_id!r}).data.metrics["loss"])
    """)
    assert again.returncode == 0, again.stderr
    assert float(again.stdout.strip()) == reader.get_run(run_id).data.metrics["loss"]


_SLOW_WRITER = """
    import sys, time
    from sparktrack import TrackingClient
    from sparktrack._delta import DeltaTableHandle

    client = TrackingClient({store!r})
    for step in range(100, 200):
        client.log_metric({run_id!r}, "loss", 1000.0 - step, step=step)
    original = DeltaTableHandle.put_named_file
    def slow_summaries(self, rows, **kwargs):
        print("metrics committed", flush=True)
        time.sleep({pause})
        original(self, rows, **kwargs)
    DeltaTableHandle.put_named_file = slow_summaries
    client.flush()
    print("done", flush=True)
"""


@pytest.mark.slow
def test_a_writer_stalled_past_the_grace_period_and_the_repair_count_the_batch_once(store_uri):
    # A live writer stalls between its metrics and summaries commits for longer than the
    # grace period: a reader repairs the batch, then the writer commits its summary too. Both
    # commit the batch's one summary file, so its points are counted once, not twice.
    run_id = _first_hundred(store_uri)
    env = {"SPARKTRACK_SUMMARY_REPAIR_SECONDS": "1"}
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SLOW_WRITER.format(
            store=store_uri, run_id=run_id, pause=3))],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT, **env},
    )
    assert writer.stdout.readline().strip() == "metrics committed"
    reader = _python(f"""
        import time
        from sparktrack import TrackingClient
        client = TrackingClient({store_uri!r})
        started = time.monotonic()
        print(client.get_run({run_id!r}).data.metrics["loss"], time.monotonic() - started)
    """, env=env)
    assert reader.returncode == 0, reader.stderr
    latest, waited = map(float, reader.stdout.split())
    assert latest == 1000.0 - 199
    assert waited < 10  # at most the grace period (the writer is alive), then repaired
    assert writer.wait(timeout=60) == 0

    client = TrackingClient(store_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    rows = open_store(store_uri).current_view("metric_summaries", [experiment_id]).rows()
    assert rows.column("count").to_pylist() == [200]


# == 7. two processes, one run ===================================================================
_PARAM_WRITER = """
    import sys, time
    from sparktrack import TrackingClient
    from sparktrack.errors import ParamOverwriteError

    client = TrackingClient({store!r})
    client.log_param({run_id!r}, "lr", {value!r})
    # Both processes log before either commits, then both commit.
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        client.flush()
        time.sleep(1.2)
        client.flush()  # a value stamped just before ours may land just after our first check
        print("kept")
    except ParamOverwriteError as exc:
        print("lost:", exc)
"""


@pytest.mark.slow
def test_two_processes_logging_one_param_differently_one_is_told_it_lost(store_uri):
    client = TrackingClient(store_uri)
    run_id = client.create_run(client.create_experiment("race"), run_name="r").info.run_id
    client.flush()
    env = {**os.environ, "PYTHONPATH": ROOT, "SPARKTRACK_FLUSH_INTERVAL_SECONDS": "60"}
    writers = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(_PARAM_WRITER.format(
            store=store_uri, run_id=run_id, value=value))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        for value in ("0.1", "0.2")
    ]
    for writer in writers:  # both have buffered their value ...
        assert writer.stdout.readline().strip() == "ready"
    for writer in writers:  # ... before either commits
        writer.stdin.write("go\n")
        writer.stdin.flush()
    outcomes = [writer.communicate(timeout=120) for writer in writers]
    said = [out.strip() for out, _ in outcomes]
    assert sorted(s.split(":")[0] for s in said) == ["kept", "lost"], outcomes
    winner = ("0.1", "0.2")[said.index("kept")]
    loser_message = next(s for s in said if s.startswith("lost"))
    assert "'lr'" in loser_message and run_id in loser_message and winner in loser_message

    reader = TrackingClient(store_uri)
    assert reader.get_run(run_id).data.params == {"lr": winner}
    assert reader.search_runs([reader.get_run(run_id).info.experiment_id])[0].data.params == {
        "lr": winner}


_LATE_WRITER = """
    import sys
    from sparktrack import TrackingClient
    from sparktrack.errors import InvalidStateError

    client = TrackingClient({store!r})
    client.log_metric({run_id!r}, "early", 1.0)
    client.flush()
    client.log_metric({run_id!r}, "late", 1.0)
    sys.stdout.write("logged\\n"); sys.stdout.flush()
    sys.stdin.readline()  # the test deletes the run from another process meanwhile
    outcome = []
    for call in (client.flush, lambda: client.log_metric({run_id!r}, "later", 2.0)):
        try:
            call()
            outcome.append("accepted")
        except InvalidStateError as exc:
            outcome.append("refused: " + str(exc))
    print("|".join(outcome))
"""


@pytest.mark.slow
def test_rows_logged_to_a_run_another_process_deleted_are_refused(store_uri):
    client = TrackingClient(store_uri)
    run_id = client.create_run(client.create_experiment("deleted"), run_name="r").info.run_id
    client.flush()
    env = {**os.environ, "PYTHONPATH": ROOT, "SPARKTRACK_FLUSH_INTERVAL_SECONDS": "60"}
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_LATE_WRITER.format(store=store_uri,
                                                                   run_id=run_id))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )
    assert writer.stdout.readline().strip() == "logged"
    deleter = _python(f"""
        from sparktrack import TrackingClient
        TrackingClient({store_uri!r}).delete_run({run_id!r})
    """)
    assert deleter.returncode == 0, deleter.stderr
    out, err = writer.communicate("go\n", timeout=120)
    flushed, later = out.strip().split("|")
    assert flushed.startswith("refused:") and run_id in flushed and "deleted by another" in flushed
    assert later.startswith("refused:")

    reader = TrackingClient(store_uri)
    run = reader.get_run(run_id)
    assert run.info.lifecycle_stage == "deleted"
    assert run.data.metrics == {"early": 1.0}
    assert reader.get_metric_history(run_id, "late") == []


@pytest.mark.slow
@pytest.mark.spark
def test_the_spark_runs_table_and_runs_latest_agree_with_the_history_after_a_kill(
    spark, store_uri
):
    from sparktrack.maintenance import materialize_runs_latest

    run_id = _first_hundred(store_uri)
    done = _python(_KILL_WRITER.replace("sys.argv[1], sys.argv[2], int(sys.argv[3])",
                                        f"{store_uri!r}, {run_id!r}, 4"))
    assert done.returncode == -9, done.stderr

    row = (spark.read.format("sparktrack").option("path", store_uri).load()
           .filter(f"run_id = '{run_id}'").collect()[0])
    assert row["metrics"]["loss"] == 1000.0 - 199
    materialize_runs_latest(store_uri)
    latest = spark.read.format("sparktrack").option("path", store_uri) \
        .option("table", "metric_summaries").load().filter(f"run_id = '{run_id}'").collect()
    assert [(r["latest_step"], r["count"]) for r in latest] == [(199, 200)]

"""The process-wide write buffer: when rows reach the Delta tables, and that none are lost.

Rows are looked for with ``deltalake.DeltaTable`` directly, never through the store (every
read through the store commits the buffer first).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from sparktrack.config import Settings
from sparktrack.entities import Dataset, DatasetInput
from sparktrack.errors import StoreError
from sparktrack._store import open_store
from sparktrack._store.schemas import METRIC_SUMMARIES, METRICS, PARAMS, RUNS, TABLES, TAGS

NEVER = 3600.0  # a flush interval no test waits for


def _on_disk(store_uri: str, table: str) -> int:
    """Rows committed to a table (0 when it does not exist yet)."""
    path = os.path.join(store_uri, table)
    if not DeltaTable.is_deltatable(path):
        return 0
    return DeltaTable(path).to_pyarrow_table().num_rows


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _client(store_uri: str, **settings) -> TrackingClient:
    open_store(store_uri, settings=Settings(**settings))
    return TrackingClient(store_uri)


def test_rows_are_committed_after_the_flush_interval(store_uri):
    client = _client(store_uri, flush_interval_seconds=0.1)
    run_id = client.create_run("0").info.run_id
    for step in range(10):
        client.log_metric(run_id, "m", step, step=step)
    assert _wait_for(lambda: _on_disk(store_uri, METRICS.name) == 10, timeout=10)
    assert _on_disk(store_uri, RUNS.name) == 1
    assert _wait_for(lambda: _on_disk(store_uri, METRIC_SUMMARIES.name) >= 1)


def test_nothing_is_committed_before_flush_and_everything_after(store_uri):
    client = _client(store_uri, flush_interval_seconds=NEVER)
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "p", 1)
    client.set_tag(run_id, "t", "v")
    for step in range(100):
        client.log_metric(run_id, "m", step, step=step)
    time.sleep(0.2)
    assert [_on_disk(store_uri, t) for t in (RUNS.name, PARAMS.name, METRICS.name)] == [0, 0, 0]
    client.flush()
    assert _on_disk(store_uri, RUNS.name) == 1
    assert _on_disk(store_uri, PARAMS.name) == 1
    assert _on_disk(store_uri, METRICS.name) == 100
    assert _on_disk(store_uri, TAGS.name) == len(client.get_run(run_id).data.tags)
    assert open_store(client.store_root).buffer.row_count == 0


def test_reads_commit_the_buffer_first(store_uri):
    client = _client(store_uri, flush_interval_seconds=NEVER)
    run_id = client.create_run("0").info.run_id
    client.log_metric(run_id, "m", 1.0, step=0)
    client.log_metric(run_id, "m", 2.0, step=1)
    assert _on_disk(store_uri, METRICS.name) == 0
    assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.0, 2.0]
    assert _on_disk(store_uri, METRICS.name) == 2
    client.log_metric(run_id, "m", 3.0, step=2)
    assert client.get_run(run_id).data.metrics == {"m": 3.0}
    assert _on_disk(store_uri, METRICS.name) == 3


def test_enough_rows_wake_the_committer(store_uri):
    client = _client(store_uri, flush_interval_seconds=NEVER, flush_max_rows=100)
    run_id = client.create_run("0").info.run_id
    waiting = open_store(client.store_root).buffer.row_count  # the run row and its tags
    for step in range(99 - waiting):
        client.log_metric(run_id, "m", step, step=step)
    time.sleep(0.2)
    assert _on_disk(store_uri, METRICS.name) == 0
    client.log_metric(run_id, "m", 0.0, step=99)  # the 100th row
    assert _wait_for(lambda: _on_disk(store_uri, METRICS.name) == 100 - waiting)


def test_a_full_buffer_commits_in_the_callers_thread(store_uri):
    client = _client(store_uri, flush_interval_seconds=NEVER, max_pending_rows=50)
    run_id = client.create_run("0").info.run_id
    for step in range(60):
        client.log_metric(run_id, "m", step, step=step)
    assert _on_disk(store_uri, METRICS.name) >= 40  # back-pressure: committed synchronously


def _block_partition(store_uri: str, table: str, experiment_id: str) -> str:
    """Put a file where the table's partition folder must go: every commit there fails.

    (chmod would not stop a root user; a file in the way stops everyone.)
    """
    os.makedirs(os.path.join(store_uri, table), exist_ok=True)
    blocker = os.path.join(store_uri, table, f"experiment_id={experiment_id}")
    with open(blocker, "w"):
        pass
    return blocker


def test_a_failed_commit_keeps_the_rows_and_flush_raises(store_uri):
    client = _client(store_uri, flush_interval_seconds=NEVER, commit_retries=1)
    experiment_id = client.create_experiment("blocked")
    run_id = client.create_run(experiment_id).info.run_id
    blocker = _block_partition(store_uri, METRICS.name, experiment_id)
    for step in range(5):
        client.log_metric(run_id, "m", step, step=step)
    with pytest.raises(StoreError, match="metrics"):
        client.flush()
    assert _on_disk(store_uri, RUNS.name) == 1  # tables before the failing one are committed
    assert _on_disk(store_uri, METRICS.name) == 0
    with pytest.raises(StoreError):
        client.flush()  # still failing: still raised, still kept
    os.remove(blocker)
    client.log_metric(run_id, "m", 5.0, step=5)
    client.flush()
    assert _on_disk(store_uri, METRICS.name) == 6
    assert [m.step for m in client.get_metric_history(run_id, "m")] == [0, 1, 2, 3, 4, 5]
    assert client.get_run(run_id).data.metrics == {"m": 5.0}
    assert open_store(client.store_root).buffer.row_count == 0


def test_a_failed_background_commit_reaches_the_next_call(store_uri):
    client = _client(store_uri, flush_interval_seconds=0.05, commit_retries=0)
    experiment_id = client.create_experiment("blocked-bg")
    run_id = client.create_run(experiment_id).info.run_id
    blocker = _block_partition(store_uri, METRICS.name, experiment_id)
    logged = []
    raised = None
    deadline = time.monotonic() + 15
    step = 0
    while raised is None and time.monotonic() < deadline:
        try:
            client.log_metric(run_id, "m", float(step), step=step)
            logged.append(step)
        except StoreError as error:
            raised = error
        step += 1
        time.sleep(0.01)
    assert isinstance(raised, StoreError), "the background failure never reached a caller"
    assert "metrics" in str(raised)
    assert _on_disk(store_uri, METRICS.name) == 0
    time.sleep(0.3)  # the background thread keeps retrying, and failing, meanwhile
    os.remove(blocker)
    client.flush()  # the cause is gone: this commit succeeds and raises no stale error
    assert [m.step for m in client.get_metric_history(run_id, "m")] == logged
    summaries = DeltaTable(os.path.join(store_uri, METRIC_SUMMARIES.name)).to_pyarrow_table()
    assert pc.sum(summaries.column("count")).as_py() == len(logged)


_SCRIPT = """
import sys
import sparktrack
from sparktrack._store import open_store
from sparktrack.config import Settings

open_store(sys.argv[1], settings=Settings(flush_interval_seconds=3600.0))
sparktrack.set_tracking_uri(sys.argv[1])
run = sparktrack.start_run()
print(run.info.run_id, flush=True)
sparktrack.log_param("p", "1")
for step in range(200):
    sparktrack.log_metric("m", step, step=step)
{ending}
"""


_ENDINGS = {
    "normal-exit": ("", 0),
    "uncaught-exception": ("raise RuntimeError('training crashed')", 1),
    "sys-exit": ("sys.exit(3)", 3),
}


@pytest.mark.slow
def test_buffered_rows_are_committed_at_interpreter_exit(tmp_path):
    processes = {}
    for name, (ending, _) in _ENDINGS.items():  # started together: one interpreter start-up
        script = tmp_path / f"{name}.py"
        script.write_text(_SCRIPT.format(ending=ending))
        store_uri = str(tmp_path / name / "store")
        processes[name] = (store_uri, subprocess.Popen(
            [sys.executable, str(script), store_uri], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))
    for name, (store_uri, process) in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == _ENDINGS[name][1], (name, stderr)
        assert "could not commit" not in stderr, name
        run_id = stdout.split()[0]
        assert _on_disk(store_uri, METRICS.name) == 200, name
        run = TrackingClient(store_uri).get_run(run_id)
        assert run.data.params == {"p": "1"} and run.data.metrics == {"m": 199.0}, name
        # The run was never ended: the exit ends it (FAILED on an uncaught exception) before
        # the store's exit flush, which commits that status too (see test_dropin_exit.py).
        assert run.info.status == ("FAILED" if name == "uncaught-exception" else "FINISHED"), name


@pytest.mark.slow
def test_a_script_that_reads_the_store_exits_cleanly(tmp_path):
    """Arrow objects freed during interpreter teardown used to abort the process (exit 134,
    "terminate called without an active exception") in about one exit in four."""
    script = tmp_path / "reader.py"
    script.write_text(textwrap.dedent(
        """
        import sys
        import sparktrack
        sparktrack.set_tracking_uri(sys.argv[1])
        with sparktrack.start_run() as run:
            sparktrack.log_metric("m", 1.0)
        sparktrack.get_run(run.info.run_id)
        sparktrack.get_metric_history("m", run_id=run.info.run_id)
        """
    ))
    processes = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / f"store-{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    assert [code for code, _ in results] == [0] * 6, [err for _, err in results]


@pytest.mark.slow
def test_a_killed_process_leaves_readable_tables(store_uri, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(
        """
        import os, signal, sys
        import sparktrack
        sparktrack.set_tracking_uri(sys.argv[1])
        with sparktrack.start_run() as run:
            for step in range(50):
                sparktrack.log_metric("m", step, step=step)
            sparktrack.flush()
            print(run.info.run_id, flush=True)
            for step in range(50, 60):
                sparktrack.log_metric("m", step, step=step)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    ))
    done = subprocess.run([sys.executable, str(script), store_uri], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9
    run_id = done.stdout.split()[0]
    client = TrackingClient(store_uri)
    history = client.get_metric_history(run_id, "m")
    # What was flushed is there; at most the unflushed buffer is lost.
    assert [m.step for m in history][:50] == list(range(50))
    assert client.get_run(run_id).info.status == "RUNNING"


def test_the_tables_are_real_delta_tables_partitioned_by_experiment(store_uri):
    client = _client(store_uri)
    experiments = [client.create_experiment(name) for name in ("a", "b")]
    for experiment_id in experiments:
        run_id = client.create_run(experiment_id).info.run_id
        client.log_param(run_id, "p", 1)
        client.log_metric(run_id, "m", 1.0)
        client.log_inputs(run_id, [DatasetInput(Dataset("d", "0a", "spark", "{}"))])
    client.flush()
    for name, spec in TABLES.items():
        table = DeltaTable(os.path.join(store_uri, name))
        assert table.metadata().partition_columns == list(spec.partition_by), name
        assert table.to_pyarrow_table().schema.names == spec.schema.names, name
        if spec.partition_by:
            folders = {f for f in os.listdir(os.path.join(store_uri, name)) if "=" in f}
            assert folders == {f"experiment_id={e}" for e in experiments}, name
            rows = table.to_pyarrow_table(partitions=[("experiment_id", "=", experiments[0])])
            assert set(rows.column("experiment_id").to_pylist()) == {experiments[0]}
    assert DeltaTable(os.path.join(store_uri, "metrics")).to_pyarrow_table().num_rows == 2

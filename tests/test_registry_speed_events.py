"""The events of registry changes are committed by a background writer, off the caller's path
(one Delta commit per change instead of two), without losing what the synchronous commit
guaranteed: the history read in the process holds every change made, a process that exits
normally leaves its events committed, a killed one gets them repaired
(tests/test_registry_serial.py), another process's history read waits for a live writer's
events, and no event is ever recorded twice. State tables' checkpoints are written off the
caller's path too."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from sparktrack._delta import DeltaTableHandle
from sparktrack._delta.serial import SerialLog
from sparktrack._registry import Registry
from sparktrack._registry.tables import RegistryTables
from sparktrack._store import open_store
from sparktrack._store.schemas import MODEL_ALIASES


def _raw_events(store_uri: str, kind: str) -> list[dict]:
    """The committed rows of registry_events of one kind, read with deltalake alone (no
    repair, no flush by this process)."""
    path = os.path.join(store_uri, "registry_events")
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return []
    rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    return [row for row in rows if row["event"] == kind]


def _fresh_registry(store_uri: str) -> Registry:
    """A registry with mirrors and a ledger of its own, as another process would have."""
    store = open_store(store_uri)
    tables = RegistryTables(store.root, storage_options=store.storage_options,
                            commit_retries=store.settings.commit_retries)
    return Registry(tables, store.settings, lambda run_id: store.get_run_info(run_id).artifact_uri)


def _model_with_a_version(store_uri: str) -> TrackingClient:
    client = TrackingClient(store_uri)
    client.create_registered_model("m")
    client.create_model_version("m", "/v1")
    return client


@pytest.mark.parametrize("operation, event", [
    (lambda c: c.transition_model_version_stage("m", 1, "Production"), "TRANSITION_STAGE"),
    (lambda c: c.set_registered_model_alias("m", "champion", 1), "SET_ALIAS"),
    (lambda c: c.set_model_version_tag("m", 1, "k", "v"), "SET_MODEL_VERSION_TAG"),
    (lambda c: c.create_model_version("m", "/v2"), "CREATE_MODEL_VERSION"),
], ids=["transition", "alias", "tag", "register"])
def test_a_changes_events_are_in_the_history_right_after_the_call(store_uri, operation, event):
    """Read in the same process at once, through the API and then with deltalake alone."""
    from sparktrack._registry import event_ledger

    held, event_ledger._BATCH_SECONDS = event_ledger._BATCH_SECONDS, 30.0  # writer waits
    try:
        client = _model_with_a_version(store_uri)
        operation(client)
        assert [e["event"] for e in client.get_registry_history("m")][-1] == event
    finally:
        event_ledger._BATCH_SECONDS = held
    assert len(_raw_events(store_uri, event)) == 1 + (event == "CREATE_MODEL_VERSION")


def test_flush_commits_the_queued_events_at_once(store_uri):
    """``client.flush()`` (and ``sparktrack.flush()``) leave nothing queued for other readers,
    such as a Spark job reading registry_events, even while the background writer waits."""
    from sparktrack._registry import event_ledger

    held, event_ledger._BATCH_SECONDS = event_ledger._BATCH_SECONDS, 30.0  # writer waits
    try:
        client = _model_with_a_version(store_uri)
        client.set_registered_model_alias("m", "champion", 1)
        client.flush()
        assert len(_raw_events(store_uri, "SET_ALIAS")) == 1
    finally:
        event_ledger._BATCH_SECONDS = held


def _change_then(root: str, then: str, batch_seconds: float) -> None:
    """Transition m/1 to Production, its events held by the background writer for
    ``batch_seconds``, then exit normally ("exit") or print and wait ("wait")."""
    from sparktrack._registry import event_ledger

    event_ledger._BATCH_SECONDS = batch_seconds
    TrackingClient(root).transition_model_version_stage("m", 1, "Production")
    if then == "wait":
        print("committed", flush=True)
        time.sleep(30)


def test_a_process_that_exits_right_after_a_change_leaves_its_events_committed(store_uri):
    _model_with_a_version(store_uri)
    child = multiprocessing.get_context("spawn").Process(
        target=_change_then, args=(store_uri, "exit", 60.0))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    assert len(_raw_events(store_uri, "TRANSITION_STAGE")) == 1  # committed at exit


def _waiting_child(store_uri: str, batch_seconds: float) -> subprocess.Popen:
    script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
              "from test_registry_speed_events import _change_then; "
              f"_change_then({store_uri!r}, 'wait', {batch_seconds!r})")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "committed"
    return child


def test_another_process_reading_the_history_waits_for_a_live_writers_events(store_uri):
    """The change is committed and the writer alive, its events a tenth of a second away:
    the history read in another process has them (a reader waits up to half a second for
    the events of the changes it sees, instead of reading the history without them)."""
    watching = _model_with_a_version(store_uri)._registry
    child = _waiting_child(store_uri, 0.1)
    try:
        events = [e for e in watching.history("m") if e["event"] == "TRANSITION_STAGE"]
        assert len(events) == 1
    finally:
        child.kill()
        child.wait()


def test_a_writer_that_commits_after_the_repair_of_its_events_records_nothing_twice(
        store_uri):
    """A writer stalled past the grace period: another process repairs its events; when the
    writer's own commit comes, it finds them there and adds nothing."""
    watching = _model_with_a_version(store_uri)._registry
    child = _waiting_child(store_uri, 3.0)  # past the grace period (2 s)
    try:
        assert watching.get_model_version("m", 1).current_stage == "Production"
        time.sleep(2.2)
        assert len([e for e in watching.history("m")
                    if e["event"] == "TRANSITION_STAGE"]) == 1  # repaired
        time.sleep(1.5)  # the writer's own commit comes 3 s after its change
    finally:
        child.kill()
        child.wait()
    assert len(_raw_events(store_uri, "TRANSITION_STAGE")) == 1
    assert len([e for e in _fresh_registry(store_uri).history("m")
                if e["event"] == "TRANSITION_STAGE"]) == 1


def test_a_due_checkpoint_can_be_handed_to_someone_else(tmp_path):
    """With ``checkpoint_later``, the 100th commit hands its checkpoint over instead of
    writing it; :meth:`SerialLog.checkpoint` writes it."""
    handle = DeltaTableHandle(str(tmp_path), MODEL_ALIASES)
    handed: list[SerialLog] = []
    log = SerialLog(handle, checkpoint_later=handed.append)
    handle.ensure_created()
    row = {"model_id": "m", "name": "n", "alias": "a", "version": 1, "deleted": False,
           "updated_at": 0}
    for version in range(100):
        assert log.commit_next(version, pa.Table.from_pylist([row | {"updated_at": version}],
                                                             schema=MODEL_ALIASES.schema))
    log_folder = os.path.join(handle.uri, "_delta_log")
    assert handed == [log]
    assert not any(name.endswith("checkpoint.parquet") for name in os.listdir(log_folder))
    handed[0].checkpoint()
    assert f"{100:020d}.checkpoint.parquet" in os.listdir(log_folder)


def test_the_registry_still_checkpoints_its_state_tables(store_uri):
    """The background writer writes the checkpoints the state tables fall due for."""
    client = _model_with_a_version(store_uri)
    for number in range(100):
        client.set_registered_model_alias("m", f"a{number}", 1)
    client._registry.tables.ledger.flush(checkpoints=True)
    log_folder = os.path.join(store_uri, "model_aliases", "_delta_log")
    assert f"{100:020d}.checkpoint.parquet" in os.listdir(log_folder)


def test_closing_at_exit_stops_the_writer_first_even_while_it_retries(store_uri, monkeypatch):
    """The exit hook (``EventLedger.close``) ends the background writer before committing what
    is left: a commit of the writer's still running as the interpreter finalizes ends inside
    deltalake's native code and crashes the process. After a failed commit the writer retries
    a second later, so it must also stop while it waits to retry, and never commit again."""
    from sparktrack._registry import event_ledger

    client = _model_with_a_version(store_uri)
    client.flush()
    from sparktrack._registry import registry_for

    ledger = registry_for(open_store(store_uri)).tables.ledger  # the one the client uses
    attempts = []
    failing = True
    commit_missing = ledger._commit_missing

    def flaky(events):
        attempts.append(time.monotonic())
        if failing:
            raise event_ledger.StoreError("the store is unreachable for now")
        commit_missing(events)

    monkeypatch.setattr(ledger, "_commit_missing", flaky)
    client.set_registered_model_alias("m", "champion", 1)
    deadline = time.monotonic() + 10
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.005)
    assert attempts, "the writer tried to commit"
    writer = ledger._thread
    assert writer is not None and writer.is_alive()  # waiting to retry

    failing = False
    started = time.monotonic()
    ledger.close()
    assert time.monotonic() - started < 0.5  # it did not wait out the retry
    assert not writer.is_alive()
    closed_at = time.monotonic()
    assert len(_raw_events(store_uri, "SET_ALIAS")) == 1  # committed by close()
    time.sleep(1.2)  # past the retry the writer would have made
    assert [at for at in attempts if at > closed_at] == []
    # A change after close() starts no writer: its events wait for the next flush.
    client.transition_model_version_stage("m", 1, "Staging")
    assert ledger._thread is None or not ledger._thread.is_alive()
    ledger.flush()
    assert len(_raw_events(store_uri, "TRANSITION_STAGE")) >= 1

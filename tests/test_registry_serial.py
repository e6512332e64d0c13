"""The registry's serial commits: a change decided on version N of a table lands as N + 1 or
not at all, so two writers can neither take one version number nor overwrite each other's
changes, and every process's in-memory mirror follows what the others commit.

Two ``Registry`` objects on one store stand for two processes where the interleaving must be
exact (each has its own mirror of the tables; they share only the files); real processes where
the race must be real.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import uuid

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sparktrack import TrackingClient
from sparktrack._delta import DeltaTableHandle, ops
from sparktrack._delta import unnamed_files
from sparktrack._delta.serial import SerialLog
from sparktrack._registry import Registry
from sparktrack._registry.tables import RegistryTables
from sparktrack._store import open_store
from sparktrack._store.schemas import REGISTRY_EVENTS, TableSpec
from sparktrack.errors import AlreadyExistsError, NotFoundError
from sparktrack.maintenance import Maintenance

PROCESSES = 8

SPEC = TableSpec(
    name="serial_test",
    schema=pa.schema([("key", pa.string(), False), ("value", pa.int64(), True)]),
    partition_by=(),
    description="a table for serial commit tests",
)


def _rows(*pairs: tuple[str, int]) -> pa.Table:
    return pa.Table.from_pylist([{"key": k, "value": v} for k, v in pairs], schema=SPEC.schema)


def _second_registry(store_uri: str) -> Registry:
    """A registry with mirrors of its own, as another process would have."""
    store = open_store(store_uri)
    tables = RegistryTables(store.root, storage_options=store.storage_options,
                            commit_retries=store.settings.commit_retries)
    return Registry(tables, store.settings, lambda run_id: store.get_run_info(run_id).artifact_uri)


@pytest.mark.parametrize("fast_local_path, unnamed", [
    (True, True), (True, False), (False, True)], ids=["link-unnamed", "link-aside", "deltalake"])
def test_a_commit_decided_on_a_stale_version_is_refused_and_the_winner_kept(
        tmp_path, monkeypatch, fast_local_path, unnamed):
    """Every commit path (the local link of an unnamed file or of a named aside, where a
    filesystem has no unnamed files, and deltalake's, used on object stores) refuses the
    second of two commits decided on the same version, and the rows since a version are
    exactly what was committed after it."""
    if unnamed and fast_local_path:
        assert unnamed_files._unnamed_files, "this machine's Linux writes unnamed files"
    monkeypatch.setattr(unnamed_files, "_unnamed_files", unnamed)
    handle = DeltaTableHandle(str(tmp_path), SPEC)
    log = SerialLog(handle, fast_local_path=fast_local_path)
    assert log.load()[0] == -1
    assert not log.commit_next(-1, _rows(("created", 0)))  # creates the table, then re-read
    version, rows = log.load()
    assert (version, rows.num_rows) == (0, 0)
    assert log.commit_next(version, _rows(("a", 1)))
    assert not log.commit_next(version, _rows(("b", 2)))  # decided on 0, but 1 exists now
    tail = log.since(version)
    assert tail.version == 1 and tail.rows.to_pylist() == [{"key": "a", "value": 1}]
    assert log.commit_next(tail.version, _rows(("b", 2), ("c", 3)))
    assert DeltaTable(handle.uri).to_pyarrow_table().sort_by("key").to_pylist() == [
        {"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "c", "value": 3}]
    assert log.since(2).rows.num_rows == 0
    # Nothing of the refused commit is left behind: only the two committed data files, and
    # no file a commit wrote on its way (asides) in the table or its log.
    data_files = [name for name in os.listdir(handle.uri) if name.endswith(".parquet")]
    assert len(data_files) == 2
    log_files = os.listdir(os.path.join(handle.uri, "_delta_log"))
    assert not [name for name in os.listdir(handle.uri) + log_files if "tmp" in name]
    assert unnamed_files._unnamed_files == unnamed  # the path asked for was the one taken


def test_a_compaction_is_not_a_change_but_a_removal_makes_readers_reload(tmp_path):
    handle = DeltaTableHandle(str(tmp_path), SPEC)
    log = SerialLog(handle)
    handle.ensure_created()
    for number in range(3):
        assert log.commit_next(number, _rows((f"k{number}", number)))
    ops.compact(handle)
    tail = log.since(3)
    assert tail is not None and tail.rows.num_rows == 0  # same rows, fewer files
    DeltaTable(handle.uri).delete("key = 'k0'")
    assert log.since(tail.version) is None  # rows removed: only a full read can tell


def test_every_hundredth_serial_commit_writes_a_checkpoint(tmp_path):
    handle = DeltaTableHandle(str(tmp_path), REGISTRY_EVENTS)
    log = SerialLog(handle)
    row = {column: None for column in REGISTRY_EVENTS.schema.names} | {
        "event_id": "e", "timestamp": 1, "event": "SET_ALIAS", "model_id": "m", "name": "n"}
    for _ in range(105):
        log.append(pa.Table.from_pylist([row], schema=REGISTRY_EVENTS.schema))
    entries = os.listdir(os.path.join(handle.uri, "_delta_log"))
    assert f"{100:020d}.checkpoint.parquet" in entries
    assert DeltaTable(handle.uri).to_pyarrow_table().num_rows == 105


def test_two_writers_on_one_state_take_distinct_version_numbers(store_uri):
    """The design's reason: both writers see max version 0 and decide on 1. A blind append
    would keep both; the serial commit refuses the second, which decides again and takes 2."""
    mine = TrackingClient(store_uri)._registry
    mine.create_registered_model("m")
    theirs = _second_registry(store_uri)
    with theirs.current_state():
        pass  # their mirror now holds the model and no version
    assert mine.create_model_version("m", "/mine").version == 1
    assert theirs.create_model_version("m", "/theirs").version == 2
    assert [mine.get_model_version("m", v).source for v in (1, 2)] == ["/mine", "/theirs"]


def test_a_change_decided_on_an_old_row_never_undoes_a_newer_one(store_uri):
    """Each change rewrites the whole row; it is decided again on the newest row when another
    writer changed it first, so no tag, description or stage is lost."""
    mine = TrackingClient(store_uri)._registry
    mine.create_registered_model("m", tags={"team": "a"})
    mine.create_model_version("m", "/x")
    theirs = _second_registry(store_uri)
    with theirs.current_state():
        pass
    mine.set_registered_model_tag("m", "owner", "ana")
    mine.transition_model_version_stage("m", 1, "Staging")
    theirs.update_registered_model("m", "churn model")
    theirs.set_model_version_tag("m", 1, "validated", "yes")
    model = mine.get_registered_model("m")
    assert (model.tags, model.description) == ({"team": "a", "owner": "ana"}, "churn model")
    version = mine.get_model_version("m", 1)
    assert (version.current_stage, version.tags) == ("Staging", {"validated": "yes"})


def test_a_change_that_is_no_longer_valid_on_the_newer_state_is_refused(store_uri):
    mine = TrackingClient(store_uri)._registry
    mine.create_registered_model("m")
    mine.create_model_version("m", "/x")
    theirs = _second_registry(store_uri)
    with theirs.current_state():
        pass
    mine.delete_model_version("m", 1)
    with pytest.raises(NotFoundError, match="version=1"):
        theirs.set_registered_model_alias("m", "champion", 1)
    mine.rename_registered_model("m", "m2")
    with pytest.raises(AlreadyExistsError):
        theirs.create_registered_model("m2")
    assert mine.get_registered_model("m2").aliases == {}


def test_a_reader_follows_compaction_checkpoints_and_vacuum_of_the_registry(store_uri):
    mine = TrackingClient(store_uri)._registry
    theirs = _second_registry(store_uri)
    mine.create_registered_model("m")
    for number in range(1, 4):
        mine.create_model_version("m", f"/v{number}")
    assert [v.version for v in theirs.get_latest_versions("m")] == [3]
    Maintenance(store_uri).run(steps=("compact", "checkpoint"))
    Maintenance(store_uri).vacuum(retention_hours=0)
    mine.set_registered_model_alias("m", "champion", 2)
    assert theirs.get_model_version_by_alias("m", "champion").version == 2
    fresh = _second_registry(store_uri)  # a process started after the maintenance
    assert fresh.get_registered_model("m").aliases == {"champion": 2}
    assert [v.version for v in fresh.get_latest_versions("m")] == [3]


def _tag(root: str, writer: int, count: int, start_at: float) -> None:
    client = TrackingClient(root)
    while time.time() < start_at:
        time.sleep(0.001)
    for i in range(count):
        client.set_registered_model_tag("shared", f"w{writer}-{i}", str(i))
        client.set_model_version_tag("shared", 1, f"w{writer}-{i}", str(i))


def test_eight_processes_changing_one_model_at_once_lose_no_change(store_uri):
    client = TrackingClient(store_uri)
    client.create_registered_model("shared")
    client.create_model_version("shared", "/x")
    start_at = time.time() + 5.0
    per_process = 3
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        pool.starmap(_tag, [(store_uri, w, per_process, start_at) for w in range(PROCESSES)])
    expected = {f"w{w}-{i}": str(i) for w in range(PROCESSES) for i in range(per_process)}
    assert client.get_registered_model("shared").tags == expected
    assert client.get_model_version("shared", 1).tags == expected
    events = client._registry.history("shared")
    assert sum(e["event"] == "SET_REGISTERED_MODEL_TAG" for e in events) == len(expected)


def _without_events(root: str, operation: str, then: str, *, held: str = "dropped") -> None:
    """Run one registry operation whose events never get committed by this process, then die
    (SIGKILL) or stay alive without committing them (a stalled writer). ``held``: "dropped"
    (never handed to the background writer) or "queued" (handed to it, which waits a minute
    before committing: the process dies with them queued)."""
    import signal

    from sparktrack._registry import event_ledger
    from sparktrack._registry.event_ledger import EventLedger

    if held == "queued":
        event_ledger._BATCH_SECONDS = 60.0
    else:
        EventLedger.record = lambda self, table, version, events: None
    client = TrackingClient(root)
    if operation == "create":
        client.create_registered_model("killed")
    elif operation == "register":
        client.create_model_version("m", "/v2")
    else:
        client.transition_model_version_stage("m", 1, "Production")
    if then == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    print("committed", flush=True)
    time.sleep(30)


def _recorded(registry: Registry, operation: str, event: str) -> list[dict]:
    name = "killed" if operation == "create" else "m"
    return [e for e in registry.history(name) if e["event"] == event
            and (operation != "register" or e["version"] == 2)
            and (operation != "transition" or e["stage"] == "Production")]


def _store_with_a_watcher(store_uri: str) -> Registry:
    client = TrackingClient(store_uri)
    client.create_registered_model("m")
    client.create_model_version("m", "/v1")
    watching = _second_registry(store_uri)  # a process that was running when it happened
    with watching.current_state():
        pass
    return watching


@pytest.mark.parametrize("held", ["dropped", "queued"])
@pytest.mark.parametrize("operation, event", [
    ("create", "CREATE_REGISTERED_MODEL"), ("register", "CREATE_MODEL_VERSION"),
    ("transition", "TRANSITION_STAGE")])
def test_a_change_whose_writer_died_before_its_events_gets_them_once(store_uri, operation,
                                                                     event, held):
    """The writer is killed between its change's commit and its events' (also with them
    queued for its background writer): a process that was running and one that starts
    afterwards each find the events missing and commit them from the change's commit, and
    they are recorded once."""
    watching = _store_with_a_watcher(store_uri)
    child = multiprocessing.get_context("spawn").Process(
        target=_without_events, args=(store_uri, operation, "die"), kwargs={"held": held})
    child.start()
    child.join(120)
    assert child.exitcode == -9
    fresh = _second_registry(store_uri)
    assert len(_recorded(fresh, operation, event)) == 1
    assert len(_recorded(watching, operation, event)) == 1
    assert len(_recorded(_second_registry(store_uri), operation, event)) == 1


def _commit_a_second_creation(table_uri: str) -> None:
    """Append what deltalake committed for a creation that lost the race for version 0 (before
    sparktrack stopped it retrying): the protocol and the table's metadata again, new id."""
    log = os.path.join(table_uri, "_delta_log")
    with open(os.path.join(log, f"{0:020d}.json"), encoding="utf-8") as first:
        actions = [json.loads(line) for line in first if line.strip()]
    created = [a for a in actions if "protocol" in a or "metaData" in a]
    for action in created:
        if "metaData" in action:
            action["metaData"]["id"] = str(uuid.uuid4())
    version = max(int(n.split(".")[0]) for n in os.listdir(log) if n.endswith(".json")) + 1
    entry = [{"commitInfo": {"timestamp": int(time.time() * 1000), "operation": "CREATE TABLE",
                             "operationParameters": {"mode": "Ignore"}}}, *created]
    with open(os.path.join(log, f"{version:020d}.json"), "x", encoding="utf-8") as out:
        out.write("".join(json.dumps(action) + "\n" for action in entry))


def test_a_second_creation_in_the_log_does_not_hide_a_killed_writers_change(store_uri):
    """Stores written before creations stopped racing can hold a creation after the changes
    (see test_processes_creating_one_table_at_once_leave_one_creation): the check of the
    commits since the last one known complete still finds the change whose events are
    missing, and a process that starts afterwards commits them, once."""
    client = TrackingClient(store_uri)
    client.create_registered_model("m")
    client.create_model_version("m", "/v1")
    client._registry.history("m")  # checked up to here
    child = multiprocessing.get_context("spawn").Process(
        target=_without_events, args=(store_uri, "register", "die"))
    child.start()
    child.join(120)
    assert child.exitcode == -9
    _commit_a_second_creation(client._registry.tables.versions.uri)
    fresh = _second_registry(store_uri)
    assert fresh.get_model_version("m", 2).source == "/v2"
    assert len(_recorded(fresh, "register", "CREATE_MODEL_VERSION")) == 1
    assert len(_recorded(_second_registry(store_uri), "register", "CREATE_MODEL_VERSION")) == 1


def test_a_stalled_writers_events_are_committed_after_the_grace_period(store_uri):
    """A writer that is alive but has not committed its events yet gets the grace period
    (summary_repair_seconds, 2 s); past it, a reader commits them, once."""
    import subprocess
    import sys

    watching = _store_with_a_watcher(store_uri)
    script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
              "from test_registry_serial import _without_events; "
              f"_without_events({store_uri!r}, 'transition', 'stall')")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "committed"
        assert watching.get_model_version("m", 1).current_stage == "Production"
        assert _recorded(watching, "transition", "TRANSITION_STAGE") == []  # within the grace
        time.sleep(2.2)
        assert len(_recorded(watching, "transition", "TRANSITION_STAGE")) == 1
    finally:
        child.kill()
        child.wait()
    assert len(_recorded(_second_registry(store_uri), "transition", "TRANSITION_STAGE")) == 1


def test_the_events_of_one_change_committed_twice_are_listed_once(store_uri):
    """A writer stalled past the grace period and the process that repaired its events both
    commit the same named file: Delta lists it once."""
    registry = TrackingClient(store_uri)._registry
    registry.create_registered_model("m")
    events = [e for e in registry.history("m")]
    ledger = registry.tables.ledger
    version = registry.tables.model_state.version
    ledger.record(registry.tables.model_state.name, version, events)  # the repair's copy
    assert registry.history("m") == events
    assert DeltaTable(registry.tables.events.uri).to_pyarrow_table().num_rows == 1


def test_a_process_that_starts_after_a_kill_in_a_store_no_one_has_read_repairs_it(store_uri):
    """No process read the registry before the writer died (no record of checked versions):
    the first process to read it still finds the change without its events."""
    child = multiprocessing.get_context("spawn").Process(
        target=_without_events, args=(store_uri, "create", "die"))
    child.start()
    child.join(120)
    assert child.exitcode == -9
    checked = os.path.join(store_uri, "_search_state", "registry_events_checked.json")
    assert not os.path.exists(checked)
    assert len(_recorded(_second_registry(store_uri), "create",
                         "CREATE_REGISTERED_MODEL")) == 1

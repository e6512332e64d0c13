"""The search state is saved on a background thread: a search does not wait for it, and no
save is lost at exit, lands after its state was removed, or escapes as an exception."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

import pyarrow as pa

from sparktrack import TrackingClient
from sparktrack._store import state_files
from sparktrack._store.schemas import TABLES
from sparktrack._store.state_files import SavedState, StateFiles, wait_for_saves

STATE_TABLES = ("runs", "params", "tags", "metric_summaries")

SEARCH_THEN_EXIT = """
import sys
from sparktrack._run_search import search_run_page
from sparktrack._store import TrackingStore
search_run_page(TrackingStore(sys.argv[1]), [sys.argv[2]], max_results=10)
"""


def _blocked_saver() -> threading.Event:
    """Hold the background saver busy until the returned event is set."""
    release = threading.Event()
    state_files._save_in_background("(blocker)", lambda: release.wait(30))
    return release


def _tags(values: list[str]) -> pa.Table:
    count = len(values)
    return pa.table({
        "run_id": [f"r{i}" for i in range(count)], "experiment_id": ["1"] * count,
        "key": ["k"] * count, "value": values, "deleted": [False] * count,
        "updated_at": list(range(count)),
    }, schema=TABLES["tags"].schema)


def test_a_process_that_exits_right_after_its_first_search_leaves_every_state_saved(tmp_path):
    client = TrackingClient(str(tmp_path / "store"))
    experiment_id = client.create_experiment("exit")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "p", "1")
    client.log_metric(run.info.run_id, "m", 0.5)
    client.set_tag(run.info.run_id, "t", "x")
    client.flush()

    subprocess.run([sys.executable, "-c", SEARCH_THEN_EXIT, client.store_root, experiment_id],
                   check=True, timeout=120)

    for table in STATE_TABLES:
        saved = StateFiles.for_table(client.store_root, table, TABLES[table].schema)
        loaded = saved.load(experiment_id)  # None if missing or not intact
        assert loaded is not None, table
        assert set(loaded.rows.column("run_id").to_pylist()) == {run.info.run_id}, table


def test_saves_land_in_the_order_they_were_asked_for(tmp_path):
    state = StateFiles(str(tmp_path / "tags"), TABLES["tags"].schema)
    release = _blocked_saver()
    try:
        for version, values in enumerate([["old"], ["older", "x"], ["newest", "y", "z"]]):
            state.save("1", SavedState(version, frozenset({f"f{version}"}), _tags(values)))
    finally:
        release.set()
    loaded = state.load("1")  # waits for the pending saves
    assert loaded.version == 2 and loaded.rows.column("value").to_pylist() == ["newest", "y", "z"]


def test_a_save_with_a_newer_one_of_the_same_file_queued_is_skipped(tmp_path, monkeypatch):
    encoded = []
    stored_rows = state_files._stored_rows
    monkeypatch.setattr(state_files, "_stored_rows",
                        lambda rows, **kw: encoded.append(rows.num_rows) or stored_rows(rows, **kw))
    state = StateFiles(str(tmp_path / "tags"), TABLES["tags"].schema)
    other = StateFiles(str(tmp_path / "other"), TABLES["tags"].schema)
    release = _blocked_saver()
    try:
        for count in (1, 2, 3):
            state.save("1", SavedState(count, frozenset(), _tags(["v"] * count)))
        other.save("1", SavedState(9, frozenset(), _tags(["w"])))  # another file: kept
    finally:
        release.set()
    wait_for_saves()
    assert encoded == [3, 1]
    assert state.load("1").version == 3 and other.load("1").version == 9


def test_removing_a_state_waits_for_its_pending_save_so_removed_runs_do_not_come_back(tmp_path):
    state = StateFiles(str(tmp_path / "tags"), TABLES["tags"].schema)
    release = _blocked_saver()
    state.save("1", SavedState(3, frozenset({"f"}), _tags(["removed run's tag"])))
    remover = threading.Thread(target=state.remove, args=("1",))
    remover.start()
    remover.join(0.2)
    assert remover.is_alive()  # waiting for the save, which waits for the blocker
    release.set()
    remover.join(30)
    wait_for_saves()
    assert not os.path.exists(state._path("1"))
    assert state.load("1") is None


def test_a_save_that_fails_in_the_background_is_logged_and_the_next_one_still_works(
        tmp_path, caplog):
    blocker = tmp_path / "tags"
    blocker.write_text("a file where the state folder should be")
    state = StateFiles(str(blocker), TABLES["tags"].schema)
    with caplog.at_level(logging.WARNING, logger="sparktrack._store.state_files"):
        state.save("1", SavedState(1, frozenset(), _tags(["a"])))
        wait_for_saves()
    assert "Could not save search state" in caplog.text
    assert state.load("1") is None

    blocker.unlink()
    state.save("1", SavedState(2, frozenset(), _tags(["b"])))
    assert state.load("1").rows.column("value").to_pylist() == ["b"]


def test_a_save_pending_when_its_store_is_moved_or_deleted_does_not_bring_it_back(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    state = StateFiles.for_table(str(root), "tags", TABLES["tags"].schema)
    release = _blocked_saver()
    state.save("1", SavedState(1, frozenset(), _tags(["a"])))
    os.rename(root, tmp_path / "moved")
    release.set()
    wait_for_saves()
    assert not root.exists()
    assert os.listdir(tmp_path / "moved") == []  # the save did not land in the moved one


def test_client_flush_waits_for_pending_state_saves(tmp_path):
    client = TrackingClient(str(tmp_path / "store"))
    state = StateFiles(str(tmp_path / "tags"), TABLES["tags"].schema)
    release = _blocked_saver()
    state.save("1", SavedState(1, frozenset(), _tags(["a"])))
    flusher = threading.Thread(target=client.flush)
    flusher.start()
    flusher.join(0.2)
    assert flusher.is_alive()  # waiting for the save behind the blocker
    release.set()
    flusher.join(30)
    assert not flusher.is_alive()
    assert os.path.exists(state._path("1"))


REMOVE_ELSEWHERE = """
import sys
from sparktrack._store.schemas import TABLES
from sparktrack._store.state_files import StateFiles
StateFiles.for_table(sys.argv[1], "tags", TABLES["tags"].schema).remove("1", table_version=5)
"""


def test_a_save_made_before_another_process_removed_the_runs_is_not_written(tmp_path):
    """gc in another process removes the experiment's state while this process still has a
    save of an older table version queued: the removed runs' rows must not come back."""
    root = tmp_path / "store"
    root.mkdir()
    state = StateFiles.for_table(str(root), "tags", TABLES["tags"].schema)
    release = _blocked_saver()
    state.save("1", SavedState(4, frozenset(), _tags(["the removed run's tag"])))
    subprocess.run([sys.executable, "-c", REMOVE_ELSEWHERE, str(root)], check=True, timeout=120)
    release.set()
    wait_for_saves()
    assert state.load("1") is None

    state.save("1", SavedState(5, frozenset(), _tags(["after the removal"])))  # not older
    assert state.load("1").rows.column("value").to_pylist() == ["after the removal"]


def test_saves_asked_for_during_a_search_start_when_it_is_done(tmp_path):
    """A search's saves wait for the search (it keeps the cores); the last held block to end
    starts them, also when it raises."""
    state = StateFiles(str(tmp_path / "tags"), TABLES["tags"].schema)
    path = state._path("1")
    with state_files.saves_held():
        with state_files.saves_held():
            state.save("1", SavedState(1, frozenset({"f"}), _tags(["a"])))
        wait_for_saves()
        assert not os.path.exists(path) and not state.exists("1")  # held by the outer block
    wait_for_saves()
    assert state.load("1").rows.column("value").to_pylist() == ["a"]

    try:
        with state_files.saves_held():
            state.save("1", SavedState(2, frozenset({"f"}), _tags(["b"])))
            raise KeyError("the search failed after its state was built")
    except KeyError:
        pass
    wait_for_saves()
    assert state.load("1").version == 2


def test_a_search_saves_its_state_once_it_is_done(tmp_path, monkeypatch):
    from sparktrack._store.search_source import StoreSearchSource

    client = TrackingClient(str(tmp_path / "store"))
    experiment_id = client.create_experiment("held")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "p", "1")
    client.flush()
    events = []
    save_in_background, load_runs = state_files._save_in_background, StoreSearchSource.load_runs
    monkeypatch.setattr(state_files, "_save_in_background", lambda path, save: (
        events.append("save"), save_in_background(path, save)))
    monkeypatch.setattr(StoreSearchSource, "load_runs", lambda self, rows: (
        events.append("page"), load_runs(self, rows))[1])

    assert len(client.search_runs([experiment_id], "params.p = '1'")) == 1
    wait_for_saves()
    assert events == ["page"] + ["save"] * len(STATE_TABLES)  # after the search, not during

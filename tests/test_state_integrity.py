"""A saved search state is used only if it is intact and covers the table it sits beside.

The state files in ``<store>/_search_state/`` are what a new process starts from. A file that
still parses after one changed byte (a float in a value buffer, a letter in a string) must not
make a new process answer with the changed value; neither must a file whose content does not
match the table version it says it covers. Either is ignored with a warning and rebuilt from the
Delta tables.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from sparktrack._store import state_files

from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.config import Settings
from sparktrack._run_search import search_run_page
from sparktrack._store import TrackingStore
from sparktrack._store.schemas import TABLES
from sparktrack._store.state_files import (
    SavedState,
    StateFiles,
    read_file,
    wait_for_saves,
    write_file,
)

STATE_TABLES = ("runs", "params", "tags", "metric_summaries")

# What one new process prints: the search answer, as JSON.
NEW_PROCESS = """
import json, sys
from sparktrack._run_search import search_run_page
from sparktrack._store import TrackingStore
runs, _ = search_run_page(TrackingStore(sys.argv[1]), [sys.argv[2]], max_results=1000,
                          order_by=["attributes.run_name ASC"])
print(json.dumps([[r.info.run_id, r.info.run_name, r.info.status, r.data.params,
                   r.data.metrics, r.data.tags] for r in runs]))
"""


def _answer(store: TrackingStore, experiment_id: str) -> list:
    """What a search answers, in the JSON shape the new process prints."""
    runs, _ = search_run_page(store, [experiment_id], max_results=1000,
                              order_by=["attributes.run_name ASC"])
    return json.loads(json.dumps([
        [r.info.run_id, r.info.run_name, r.info.status, r.data.params, r.data.metrics,
         r.data.tags] for r in runs
    ]))


def _cold_answer(root: str, experiment_id: str) -> list:
    """The answer from the Delta tables alone (own empty caches, no saved state)."""
    return _answer(TrackingStore(root, settings=Settings(save_search_state=False)), experiment_id)


def _new_process_answer(root: str, experiment_id: str) -> tuple[list, str]:
    """The answer of a real new Python process, and what it logged."""
    done = subprocess.run(
        [sys.executable, "-c", NEW_PROCESS, root, experiment_id],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _add_run(client: TrackingClient, experiment_id: str, word: str, value: float) -> str:
    run = client.create_run(experiment_id, run_name=f"name-{word}")
    client.log_batch(
        run.info.run_id,
        params=[Param("p", f"value-{word}")],
        metrics=[Metric("m", value, 1, 0)],
        tags=[RunTag("t", f"tag-{word}")],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _state_path(root: str, table: str, experiment_id: str) -> str:
    return os.path.join(root, "_search_state", table, f"experiment_id={experiment_id}.arrow")


def _flip_one_byte(path: str, pattern: bytes, index: int, mask: int) -> None:
    """Change the byte at ``index`` of the first occurrence of ``pattern`` in the file."""
    with open(path, "r+b") as state:
        content = state.read()
        at = content.find(pattern)
        assert at >= 0, f"{pattern!r} not in {path}"
        state.seek(at + index)
        state.write(bytes([content[at + index] ^ mask]))


@pytest.fixture()
def saved(store_uri):
    """A store of two runs whose search state was saved; (root, experiment id, client)."""
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("integrity")
    _add_run(client, experiment_id, "alpha", 0.625)
    _add_run(client, experiment_id, "beta", 0.375)
    client.flush()
    _answer(TrackingStore(store_uri), experiment_id)  # the first search saves the state
    wait_for_saves()  # in the background
    for table in STATE_TABLES:
        assert os.path.isfile(_state_path(store_uri, table, experiment_id))
    return client.store_root, experiment_id, client


# One changed byte in a value of each table the state holds; every file still parses.
FLIPS = {
    "runs": (b"name-alpha", 9, 0x03),  # run_name name-alpha -> name-alphb
    "params": (b"value-alpha", 10, 0x03),
    "tags": (b"tag-alpha", 8, 0x03),
    # m = 0.625 as float64: its 7th byte changes the mantissa (0.625 -> 0.65625).
    "metric_summaries": (struct.pack("<d", 0.625), 6, 0x01),
}


@pytest.mark.parametrize("table", STATE_TABLES)
def test_a_changed_value_in_a_saved_state_is_detected_and_rebuilt(saved, table, caplog):
    root, experiment_id, _ = saved
    expected = _cold_answer(root, experiment_id)
    path = _state_path(root, table, experiment_id)
    _flip_one_byte(path, *FLIPS[table])
    read_file(path)[1].validate(full=True)  # it still parses

    assert _answer(TrackingStore(root), experiment_id) == expected  # nothing in memory
    assert "does not match its checksum" in caplog.text and path in caplog.text
    caplog.clear()
    # The file was rebuilt from the tables: the next process takes it as it is.
    assert _answer(TrackingStore(root), experiment_id) == expected
    assert "search state" not in caplog.text


def test_a_new_process_answers_the_right_metric_after_a_byte_flip_in_the_state(saved):
    root, experiment_id, _ = saved
    expected = _cold_answer(root, experiment_id)
    assert [run[4] for run in expected] == [{"m": 0.625}, {"m": 0.375}]
    _flip_one_byte(_state_path(root, "metric_summaries", experiment_id),
                   *FLIPS["metric_summaries"])

    answer, logged = _new_process_answer(root, experiment_id)
    assert answer == expected
    assert "does not match its checksum" in logged
    answer, logged = _new_process_answer(root, experiment_id)  # from the rebuilt state
    assert answer == expected and "search state" not in logged


def test_a_state_whose_content_is_not_of_the_version_it_covers_is_rebuilt(saved):
    """Rows saved at one table version, labelled with the version and files of a later one."""
    root, experiment_id, client = saved
    older = {table: read_file(_state_path(root, table, experiment_id))[1]
             for table in STATE_TABLES}
    _add_run(client, experiment_id, "gamma", 0.5)
    client.flush()
    shutil.rmtree(os.path.join(root, "_search_state"))
    _answer(TrackingStore(root), experiment_id)  # saves the state of the newer version
    wait_for_saves()
    for table in STATE_TABLES:
        path = _state_path(root, table, experiment_id)
        newer_header, _ = read_file(path)
        assert read_file(path)[1].num_rows > older[table].num_rows  # gamma's rows
        write_file(path, newer_header, older[table])  # the newer header, checksum included

    expected = _cold_answer(root, experiment_id)
    assert [run[1] for run in expected] == ["name-alpha", "name-beta", "name-gamma"]
    answer, logged = _new_process_answer(root, experiment_id)
    assert answer == expected
    assert logged.count("does not match its checksum") == len(STATE_TABLES)


def test_a_state_covering_a_version_the_table_has_not_reached_is_rebuilt(saved, caplog):
    """An intact state of a newer version than the table's: the table was replaced since."""
    root, experiment_id, _ = saved
    expected = _cold_answer(root, experiment_id)
    store = TrackingStore(root)
    version = store.tables["params"].version()
    state = StateFiles.for_table(root, "params", TABLES["params"].schema)
    loaded = state.load(experiment_id)
    assert loaded is not None and loaded.version == version
    field = loaded.rows.schema.get_field_index("value")
    other = loaded.rows.set_column(
        field, loaded.rows.schema.field(field),
        pa.array(["from-another-table"] * loaded.rows.num_rows),
    )
    state.save(experiment_id, SavedState(version + 5, loaded.files, other))
    assert state.load(experiment_id).version == version + 5  # intact: its checksum matches

    assert _answer(TrackingStore(root), experiment_id) == expected
    assert f"it covers version {version + 5} but the table is at version {version}" in caplog.text
    assert state.load(experiment_id).version == version  # rebuilt


@pytest.mark.parametrize("compressed", [False, True], ids=["as is", "compressed"])
def test_any_one_byte_change_is_detected_or_changes_nothing(saved, compressed, monkeypatch):
    """Every byte of every state file, changed in turn: the file is refused, or what it loads
    is exactly what was saved (the byte was padding or an unused part of a buffer). Small
    states are stored as they are, large ones compressed: both layouts, every byte."""
    root, experiment_id, _ = saved
    if compressed:
        monkeypatch.setattr(state_files, "COMPRESS_FROM_BYTES", 0)
        for table in STATE_TABLES:
            state = StateFiles.for_table(root, table, TABLES[table].schema)
            state.save(experiment_id, state.load(experiment_id))
    for table in STATE_TABLES:
        state = StateFiles.for_table(root, table, TABLES[table].schema)
        original = state.load(experiment_id)
        assert original is not None
        path = _state_path(root, table, experiment_id)
        with open(path, "rb") as saved_file:
            content = saved_file.read()
        accepted = 0
        for index in range(len(content)):
            for mask in (0x01,):
                with open(path, "r+b") as changed:
                    changed.seek(index)
                    changed.write(bytes([content[index] ^ mask]))
                loaded = state.load(experiment_id)
                if loaded is not None:
                    accepted += 1
                    assert loaded.version == original.version, (table, index)
                    assert loaded.files == original.files, (table, index)
                    assert loaded.rows.equals(original.rows), (table, index)
            with open(path, "r+b") as restored:
                restored.seek(index)
                restored.write(content[index:index + 1])
        assert accepted < len(content)  # most bytes matter


@pytest.mark.parametrize("window", [None, 3], ids=["one window", "windows of 3 rows"])
def test_every_shape_of_state_verifies_after_saving(tmp_path, window, monkeypatch):
    """Whatever buffers the rows have in memory (slices, several chunks, nulls, no rows), the
    saved file verifies and loads the same rows, also when a large state is saved a window of
    rows at a time (each window with its own dictionaries)."""
    if window is not None:
        monkeypatch.setattr(state_files, "_WINDOW_ROWS", window)
    schema = TABLES["tags"].schema
    rows = pa.table({
        "run_id": ["a", "b", "c", "d"], "experiment_id": ["1"] * 4, "key": ["k"] * 4,
        "value": ["x", None, "y", None], "deleted": [False, True, False, True],
        "updated_at": [1, 2, 3, 4],
    }, schema=schema)
    shapes = {
        "empty": schema.empty_table(),
        "one chunk": rows,
        "slices": pa.concat_tables([rows.slice(1, 2), rows.slice(3), rows.slice(0, 1)]),
        "no nulls left": rows.slice(2, 1),
    }
    state = StateFiles(str(tmp_path / "tags"), schema)
    for name, shape in shapes.items():
        state.save("1", SavedState(7, frozenset({"f1", "f2"}), shape))
        loaded = state.load("1")
        assert loaded is not None, name
        assert loaded.rows.equals(shape) and loaded.version == 7, name
        assert loaded.files == {"f1", "f2"}, name
        # And the same rows under another experiment's name do not verify.
        os.replace(state._path("1"), state._path("2"))
        assert state.load("2") is None, name


def test_a_state_saved_by_an_older_sparktrack_is_rebuilt(saved, caplog):
    """Files of the older layout (an Arrow IPC file, its checksum of the rows in memory in the
    schema metadata) are not read: they are rebuilt, then replaced."""
    root, experiment_id, _ = saved
    expected = _cold_answer(root, experiment_id)
    path = _state_path(root, "metric_summaries", experiment_id)
    _, rows = read_file(path)
    rows = state_files._decoded(rows, TABLES["metric_summaries"].schema)
    rows = rows.replace_schema_metadata({b"sparktrack.checksum": b"00000000"})
    with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, rows.schema) as writer:
        writer.write_table(rows)
    assert _answer(TrackingStore(root), experiment_id) == expected
    assert "it was saved by an older sparktrack" in caplog.text
    wait_for_saves()
    assert read_file(path)[0]["version"] >= 0  # replaced by a file of the current layout

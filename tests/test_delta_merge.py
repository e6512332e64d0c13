"""The Delta layer's MERGE primitive (insert the rows whose key is missing) across real
processes: concurrent inserts of distinct keys all land, of the same key land once."""

from __future__ import annotations

import multiprocessing
import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sparktrack._delta import DeltaTableHandle, merge
from sparktrack.errors import InvalidInputError
from sparktrack._store.schemas import TableSpec

SPEC = TableSpec(
    name="registry",
    schema=pa.schema([pa.field("name", pa.string(), nullable=False),
                      pa.field("version", pa.int64(), nullable=False),
                      pa.field("writer", pa.int64(), nullable=False)]),
    partition_by=(),
    description="test table for merge",
)
PROCESSES = 8


def _insert(root: str, name: str, version: int, writer: int, start_at: float) -> int:
    handle = DeltaTableHandle(root, SPEC)
    rows = pa.Table.from_pylist([{"name": name, "version": version, "writer": writer}],
                                schema=SPEC.schema)
    while time.time() < start_at:  # every process commits at the same moment
        time.sleep(0.001)
    return merge.insert_missing(handle, rows, on=["name", "version"])


def _race(root: str, keys: list[tuple[str, int]]) -> list[int]:
    # The table exists first: the race is about rows, not about creating the table.
    merge.insert_missing(DeltaTableHandle(root, SPEC), pa.Table.from_pylist(
        [{"name": "seed", "version": 0, "writer": -1}], schema=SPEC.schema), on=["name"])
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        start_at = time.time() + 4.0  # after the workers imported sparktrack
        return pool.starmap(_insert, [(root, name, version, writer, start_at)
                                      for writer, (name, version) in enumerate(keys)])


def _rows(root: str) -> list[tuple[str, int]]:
    table = DeltaTable(f"{root}/registry").to_pyarrow_table().to_pylist()
    return sorted((row["name"], row["version"]) for row in table if row["name"] != "seed")


def test_concurrent_merges_of_distinct_keys_insert_every_row(tmp_path):
    root = str(tmp_path)
    keys = [("model", version) for version in range(1, PROCESSES + 1)]
    assert _race(root, keys) == [1] * PROCESSES
    assert _rows(root) == keys


def test_concurrent_merges_of_the_same_key_insert_it_once(tmp_path):
    root = str(tmp_path)
    inserted = _race(root, [("model", 1)] * PROCESSES)
    assert sorted(inserted) == [0] * (PROCESSES - 1) + [1]
    assert _rows(root) == [("model", 1)]


def test_merge_inserts_only_missing_keys_and_rejects_unknown_key_columns(tmp_path):
    handle = DeltaTableHandle(str(tmp_path), SPEC)
    first = pa.Table.from_pylist([{"name": "a", "version": 1, "writer": 0},
                                  {"name": "a", "version": 2, "writer": 0}], schema=SPEC.schema)
    assert merge.insert_missing(handle, first, on=["name", "version"]) == 2
    again = pa.Table.from_pylist([{"name": "a", "version": 2, "writer": 1},
                                  {"name": "b", "version": 1, "writer": 1}], schema=SPEC.schema)
    assert merge.insert_missing(handle, again, on=["name", "version"]) == 1
    assert _rows(str(tmp_path)) == [("a", 1), ("a", 2), ("b", 1)]
    with pytest.raises(InvalidInputError, match="'stage'"):
        merge.insert_missing(handle, again, on=["name", "stage"])

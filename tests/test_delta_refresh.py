"""A table handle sees every newer version, however it was made.

Before each read a local handle checks the log for the entry after the version it holds (two
file checks) instead of asking deltalake to refresh; these tests pin what that check must see:
commits of another handle (another process) and a checkpoint. A log entry that vanishes under
a reader is still reported as damage (tests/test_storeerr_corrupt.py).
"""

from __future__ import annotations

import pyarrow as pa

from sparktrack._delta import DeltaTableHandle
from sparktrack._store.schemas import TableSpec

SPEC = TableSpec(
    name="items",
    schema=pa.schema([pa.field("key", pa.string(), nullable=False),
                      pa.field("value", pa.int64())]),
    partition_by=(),
    description="a table for refresh tests",
)


def _rows(*values: int) -> pa.Table:
    return pa.Table.from_pylist([{"key": f"k{v}", "value": v} for v in values], schema=SPEC.schema)


def _values(handle: DeltaTableHandle) -> list[int]:
    return sorted(handle.read().column("value").to_pylist())


def test_commits_of_another_handle_are_seen(tmp_path):
    reader, writer = DeltaTableHandle(str(tmp_path), SPEC), DeltaTableHandle(str(tmp_path), SPEC)
    writer.append(_rows(1))
    assert _values(reader) == [1]
    held = reader.version()
    for value in (2, 3):
        writer.append(_rows(value))
        assert reader.version() == held + value - 1
        assert _values(reader) == list(range(1, value + 1))
    assert _values(reader) == [1, 2, 3]  # nothing newer: the same version, the same rows


def test_a_checkpoint_and_a_later_commit_are_seen(tmp_path):
    reader, writer = DeltaTableHandle(str(tmp_path), SPEC), DeltaTableHandle(str(tmp_path), SPEC)
    writer.append(_rows(1))
    assert _values(reader) == [1]
    writer.snapshot().create_checkpoint()
    assert _values(reader) == [1]
    writer.append(_rows(2))
    assert _values(reader) == [1, 2]


def test_data_paths_are_the_planned_files_of_every_partition_and_version(tmp_path):
    """A search decides whether its state is current from the log's paths alone: they must be
    exactly the paths of the files a read plan gives, for any partition value (spaces,
    percent signs and non-ASCII are escaped in the log) and after every commit."""
    spec = TableSpec(name="parts", schema=pa.schema([
        pa.field("experiment_id", pa.string(), nullable=False), pa.field("value", pa.int64())]),
        partition_by=("experiment_id",), description="a partitioned table")
    reader, writer = DeltaTableHandle(str(tmp_path), spec), DeltaTableHandle(str(tmp_path), spec)
    assert reader.data_paths(prune=[("experiment_id", "=", "1")]) == (-1, frozenset())
    partitions = ["1", "2", "a b", "50%", "é"]
    for value, experiment_id in enumerate(partitions * 2):
        writer.append(pa.table({"experiment_id": [experiment_id], "value": [value]},
                               schema=spec.schema))
        for wanted in partitions:
            prune = [("experiment_id", "=", wanted)]
            version, files = reader.data_files(prune=prune)
            assert reader.data_paths(prune=prune) == (version, frozenset(files)), wanted
    assert len(reader.data_paths(prune=[("experiment_id", "=", "a b")])[1]) == 2
    everything = reader.data_paths()[1]
    assert everything == frozenset(reader.data_files()[1]) and len(everything) == 10

"""The registry's small data files, encoded without Arrow (``sparktrack._delta.small_parquet``):
every reader of the tables (pyarrow, deltalake, Spark's own Parquet reader) reads back exactly
the rows committed, for every column type and value shape the registry tables hold, and a row
that does not fit its table is refused before anything is written."""

from __future__ import annotations

import io
import os
import random
import string

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from sparktrack._delta import DeltaTableHandle
from sparktrack._delta.serial import SerialLog
from sparktrack._delta.small_parquet import Encoder, supports
from sparktrack._store.schemas import REGISTRY_TABLES, TableSpec
from sparktrack.spark._datasource import _ddl_type

# Every shape of value a column can take: strings (empty, non-ASCII, long), int64 extremes,
# booleans, maps that are null, empty, dicts, pairs, with null values, with more than 15 entries.
_TEXT = string.ascii_letters + "é😀/ '\"\\\n"


def _text(rnd: random.Random) -> str:
    return "".join(rnd.choice(_TEXT) for _ in range(rnd.choice([0, 1, 5, 40, 300])))


def _value(rnd: random.Random, field: pa.Field):
    if field.nullable and rnd.random() < 0.3:
        return None
    if pa.types.is_string(field.type):
        return _text(rnd)
    if pa.types.is_int64(field.type):
        return rnd.choice([0, 1, -1, 63, 64, -65, 2**63 - 1, -2**63, rnd.randrange(-10**15, 10**15)])
    if pa.types.is_boolean(field.type):
        return rnd.random() < 0.5
    pairs = [(_text(rnd), None if rnd.random() < 0.3 else _text(rnd))
             for _ in range(rnd.choice([0, 1, 2, 20]))]
    return dict(pairs) if rnd.random() < 0.5 else pairs


def _random_rows(rnd: random.Random, schema: pa.Schema, count: int) -> list[dict]:
    return [{field.name: _value(rnd, field) for field in schema} for _ in range(count)]


def _expected(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """What pyarrow makes of the same rows (a map as a dict keeps its last value of a key)."""
    return pa.Table.from_pylist(
        [{name: list(value.items()) if isinstance(value, dict) else value
          for name, value in row.items()} for row in rows],
        schema=schema)


@pytest.mark.parametrize("table", sorted(REGISTRY_TABLES))
def test_pyarrow_reads_back_exactly_the_rows_encoded(table):
    schema = REGISTRY_TABLES[table].schema
    assert supports(schema)
    rnd = random.Random(table)
    for count in (1, 2, 3, 17, 70, 1000):
        rows = _random_rows(rnd, schema, count)
        read = pq.read_table(io.BytesIO(Encoder(schema).encode(rows)))
        assert read.cast(schema).equals(_expected(rows, schema)), (table, count)
        # The file's own schema says which columns may be null, as the table's does.
        assert [f.nullable for f in read.schema] == [f.nullable for f in schema]


def test_every_level_and_type_shape_of_a_map_and_an_optional_column():
    """Maps null, empty, with one and many entries, null values, in runs and alternating;
    optional columns null in runs and alternating (the levels' run-length encoding)."""
    schema = pa.schema([
        pa.field("required_map", pa.map_(pa.string(), pa.string()), False),
        pa.field("map", pa.map_(pa.string(), pa.string()), True),
        pa.field("text", pa.string(), True),
        pa.field("number", pa.int64(), True),
        pa.field("flag", pa.bool_(), True),
        pa.field("flags", pa.bool_(), False),
    ])
    maps = [None, {}, {"k": "v"}, {"a": None, "b": "2"}, [("x", "1")] * 200, None, None, {}]
    rows = [{"required_map": {} if i % 3 == 0 else {"i": str(i)},
             "map": maps[i % len(maps)] if i < 40 else None,
             "text": None if i % 2 else "t" * i,
             "number": None if 10 <= i < 30 else i,
             "flag": None if i % 5 == 0 else i % 2 == 0,
             "flags": i % 3 == 0} for i in range(300)]
    read = pq.read_table(io.BytesIO(Encoder(schema).encode(rows)))
    assert read.cast(schema).equals(_expected(rows, schema))


@pytest.mark.parametrize("bad, message", [
    ({"key": None, "value": 1}, "column 'key' cannot be null"),
    ({"key": 3, "value": 1}, "column 'key' holds strings"),
    ({"key": "k", "value": "1"}, "column 'value' holds integers"),
    ({"key": "k", "value": 2**63}, "column 'value'"),
    ({"key": "k", "value": True}, "column 'value' holds integers"),
    ({"key": "k", "value": 1, "flag": 1}, "column 'flag' holds booleans"),
    ({"key": "k", "value": 1, "tags": {None: "v"}}, "column 'tags': a map key cannot be null"),
    ({"key": "k", "value": 1, "tags": [("k", "v", "extra")]}, "column 'tags': a map entry"),
    ({"key": "k", "value": 1, "tags": {"k": 5}}, "column 'tags' holds strings"),
])
def test_a_row_that_does_not_fit_is_refused_and_nothing_is_written(tmp_path, bad, message):
    spec = TableSpec(
        name="small", partition_by=(), description="a table for small_parquet tests",
        schema=pa.schema([("key", pa.string(), False), ("value", pa.int64(), True),
                          ("flag", pa.bool_(), True),
                          ("tags", pa.map_(pa.string(), pa.string()), True)]))
    handle = DeltaTableHandle(str(tmp_path), spec)
    log = SerialLog(handle)
    log.commit_next(-1, [])  # creates the table
    version, _ = log.load()
    assert log.commit_next(version, [{"key": "kept", "value": 1}])
    files_before = sorted(os.listdir(handle.uri)) + sorted(
        os.listdir(os.path.join(handle.uri, "_delta_log")))
    # Alone (a page of one value is encoded on its own path) and after a row that fits.
    for rows in ([bad], [{"key": "fine", "value": 2}, bad]):
        with pytest.raises((TypeError, ValueError), match=message):
            log.commit_next(version + 1, rows)
    assert sorted(os.listdir(handle.uri)) + sorted(
        os.listdir(os.path.join(handle.uri, "_delta_log"))) == files_before
    assert log.load()[1].to_pylist() == [{"key": "kept", "value": 1, "flag": None, "tags": None}]


@pytest.mark.parametrize("fast_local_path", [True, False], ids=["link", "deltalake"])
def test_deltalake_and_spark_read_a_table_of_encoded_commits(tmp_path, spark, fast_local_path):
    """The files of serial commits are read by deltalake (the table) and by Spark's own
    Parquet reader (each file), with the rows committed."""
    spec = REGISTRY_TABLES["model_versions"]
    handle = DeltaTableHandle(str(tmp_path), spec)
    log = SerialLog(handle, fast_local_path=fast_local_path)
    log.commit_next(-1, [])
    rnd = random.Random(7)
    committed = []
    for _ in range(4):
        rows = _random_rows(rnd, spec.schema, rnd.choice([1, 2, 5]))
        for row in rows:  # Spark's rows hold maps as dicts: one value per key
            row["tags"] = None if row["tags"] is None else dict(row["tags"])
        assert log.commit_next(log.load()[0], rows)
        committed += rows
    expected = _expected(committed, spec.schema)

    def ordered(table: pa.Table) -> list[dict]:
        return sorted(table.cast(spec.schema).to_pylist(), key=repr)

    from_deltalake = DeltaTable(handle.uri).to_pyarrow_table()
    assert ordered(from_deltalake.select(spec.schema.names)) == ordered(expected)
    files = [os.path.join(handle.uri, name) for name in os.listdir(handle.uri)
             if name.endswith(".parquet")]
    assert len(files) == 4
    frame = spark.read.schema(_spark_schema(spec.schema)).parquet(*files)
    from_spark = [{**row.asDict(), "tags": sorted((row["tags"] or {}).items())
                   if row["tags"] is not None else None} for row in frame.collect()]
    want = [{**row, "tags": sorted(row["tags"]) if row["tags"] is not None else None}
            for row in expected.to_pylist()]
    assert sorted(from_spark, key=repr) == sorted(want, key=repr)


def _spark_schema(schema: pa.Schema) -> str:
    """The DDL of ``schema`` for Spark, as the data source declares it."""
    return ", ".join(f"`{field.name}` {_ddl_type(field.type)}" for field in schema)

"""Parquet files of a few rows, encoded from Python rows without building an Arrow table.

A serial commit (:mod:`sparktrack._delta.serial`) writes one data file of one or two rows for
each registry change. Through Arrow, building the table and encoding it took half of such a
change (0.3-0.5 ms for the 16 columns of ``model_versions``): most of it fixed costs per
column, none of which a file of one row needs. This module writes the same file directly:
one row group, one PLAIN-encoded, uncompressed data page (v1) per column, no statistics,
dictionaries or Arrow schema, the Parquet types and nullability of the table's columns (what
pyarrow writes for the same schema with those options). Compaction rewrites these files
compressed, as it does pyarrow's.

Only the column types of the registry tables are supported (:func:`supports`): string, int64,
boolean and map<string, string>. A value that does not fit its column raises ``TypeError`` or
``ValueError`` naming the column, before anything is written.

The format: https://github.com/apache/parquet-format (``parquet.thrift`` for the footer and
page headers, in Thrift's compact protocol; ``Encodings.md`` for PLAIN and the RLE levels).
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Sequence
from typing import NamedTuple

import pyarrow as pa

__all__ = ["Encoder", "supports"]

_MAGIC = b"PAR1"
_CREATED_BY = b"sparktrack small_parquet"

# parquet.thrift enums
_BOOLEAN, _INT64, _BYTE_ARRAY = 0, 2, 6  # Type
_REQUIRED, _OPTIONAL, _REPEATED = 0, 1, 2  # FieldRepetitionType
_UTF8, _MAP = 0, 1  # ConvertedType
_PLAIN, _RLE = 0, 3  # Encoding
_UNCOMPRESSED = 0  # CompressionCodec

# Thrift compact protocol field types (the constant bytes below are field headers: the field id
# delta from the previous field in the high nibble, the type in the low one, e.g. 0x16 is the
# next field, an i64).
_T_I32, _T_BINARY, _T_LIST, _T_STRUCT = 5, 8, 9, 12


class _Thrift:
    """A Thrift compact-protocol writer for the constant parts of the footer (written once per
    schema); the parts that change from file to file are written as bytes in :func:`_encode`."""

    __slots__ = ("out", "_last")

    def __init__(self, *, last_field: int = 0) -> None:
        self.out = bytearray()
        self._last = [last_field]  # the last field id of each open struct

    def field(self, field_id: int, kind: int) -> None:
        delta = field_id - self._last[-1]
        assert 0 < delta <= 15, "fields are written in order, none more than 15 apart"
        self.out.append((delta << 4) | kind)
        self._last[-1] = field_id

    def i32(self, field_id: int, value: int) -> None:
        self.field(field_id, _T_I32)
        self.out += _zigzag(value)

    def binary(self, field_id: int, value: bytes) -> None:
        self.field(field_id, _T_BINARY)
        self.out += _varint(len(value)) + value

    def begin_struct(self, field_id: int | None = None) -> None:
        """Open a struct: a field of the current struct, or an element of a list (None)."""
        if field_id is not None:
            self.field(field_id, _T_STRUCT)
        self._last.append(0)

    def end_struct(self) -> None:
        self.out.append(0)
        self._last.pop()

    def list_header(self, field_id: int, kind: int, size: int) -> None:
        self.field(field_id, _T_LIST)
        self.out += _list_header(size, kind)

    def i32_list(self, field_id: int, values: Sequence[int]) -> None:
        self.list_header(field_id, _T_I32, len(values))
        for value in values:
            self.out += _zigzag(value)

    def binary_list(self, field_id: int, values: Sequence[bytes]) -> None:
        self.list_header(field_id, _T_BINARY, len(values))
        for value in values:
            self.out += _varint(len(value)) + value


@functools.lru_cache(maxsize=32)
def supports(schema: pa.Schema) -> bool:
    """Whether :class:`Encoder` can write rows of ``schema``."""
    return all(_kind(field.type) is not None for field in schema)


def _kind(arrow_type: pa.DataType) -> str | None:
    if pa.types.is_string(arrow_type):
        return "string"
    if pa.types.is_int64(arrow_type):
        return "int64"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if (pa.types.is_map(arrow_type) and pa.types.is_string(arrow_type.key_type)
            and pa.types.is_string(arrow_type.item_type)):
        return "map"
    return None


class Encoder:
    """Writes Parquet files of rows of one schema (what does not change from file to file is
    prepared once)."""

    def __init__(self, schema: pa.Schema) -> None:
        if not supports(schema):
            raise TypeError(f"small_parquet cannot write the schema {schema}")
        self._columns = _columns(schema)
        self._schema_elements = _schema_elements(schema)

    def encode(self, rows: Sequence[dict]) -> bytes:
        """A Parquet file holding ``rows`` (dicts by column name; a missing key is null).
        Maps may be dicts or lists of (key, value) pairs."""
        return _encode(rows, self._columns, self._schema_elements)


class _Column(NamedTuple):
    """A column as the encoder needs it: ``prefixes`` are the constant starts of its leaves'
    ColumnMetaData (one leaf, or a map's keys and values)."""

    name: str
    kind: str
    nullable: bool
    items_nullable: bool  # a map's values may be null
    prefixes: tuple[bytes, ...]


def _encode(rows: Sequence[dict], columns: list[_Column], schema_elements: bytes) -> bytes:
    # A commit holds a row or two, so what is done per column counts: a flat column's values
    # number as many as the rows, and the parts of its page header and column metadata that
    # only depend on that are written once per file (``counted``).
    count = len(rows)
    counted = _zigzag(count)
    page_tail = b"\x2c\x15" + counted + _DATA_PAGE_TAIL
    out = bytearray(_MAGIC)
    chunks = bytearray()
    leaves = 0
    for name, kind, nullable, items_nullable, prefixes in columns:
        values = [row.get(name) for row in rows]
        if kind != "map":
            pages = ((_flat_body(name, kind, nullable, values), prefixes[0], counted, page_tail),)
        else:  # a map: its keys' and its values' pages, each with its own number of values
            pages = []
            for (body, num_values), prefix in zip(
                    _map_pages(name, nullable, items_nullable, values), prefixes, strict=True):
                numbered = _zigzag(num_values)
                pages.append((body, prefix, numbered, b"\x2c\x15" + numbered + _DATA_PAGE_TAIL))
        for body, prefix, numbered, tail in pages:
            offset = _zigzag(len(out))
            sized = _zigzag(len(body))
            # PageHeader: DATA_PAGE (1), the sizes (2, 3; nothing is compressed), then the
            # DataPageHeader (5) in ``tail``: num_values, PLAIN values, RLE levels.
            header = b"\x15\x00\x15" + sized + b"\x15" + sized + tail
            total = _zigzag(len(header) + len(body))
            out += header
            out += body
            # ColumnChunk: file_offset (2), then ColumnMetaData (3): its constant fields 1-4,
            # num_values (5), sizes (6, 7), data_page_offset (9).
            chunks += b"".join((b"\x26", offset, b"\x1c", prefix, b"\x16", numbered,
                                b"\x16", total, b"\x16", total, b"\x26", offset, b"\x00\x00"))
            leaves += 1
    footer = b"".join((
        b"\x15\x02",  # version 1
        schema_elements,  # field 2
        b"\x16", counted,  # num_rows (3)
        b"\x19\x1c",  # row_groups (4): a list of one struct
        b"\x19", _list_header(leaves, _T_STRUCT), chunks,  # the row group's columns (1)
        b"\x16", _zigzag(len(out) - len(_MAGIC)),  # total_byte_size (2)
        b"\x16", counted,  # num_rows (3)
        b"\x00",  # end of RowGroup
        b"\x28", _varint(len(_CREATED_BY)), _CREATED_BY,  # created_by (6)
        b"\x00",  # end of FileMetaData
    ))
    out += footer
    out += _PACK_I32(len(footer))
    out += _MAGIC
    return bytes(out)


# The end of a DataPageHeader after its num_values: PLAIN values (2), RLE definition and
# repetition levels (3, 4), then the ends of the DataPageHeader and the PageHeader.
_DATA_PAGE_TAIL = b"\x15\x00\x15\x06\x15\x06\x00\x00"
_PACK_I32 = struct.Struct("<i").pack
_PACK_I64 = struct.Struct("<q").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> bytes:
    if 0 <= value < 0x40:
        return _SMALL[value << 1]
    if 0 <= value < 0x2000:  # two bytes: the offsets and sizes of a small file
        value <<= 1
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    return _varint((value << 1) ^ (value >> 63))


_SMALL = [bytes((value,)) for value in range(0x80)]


def _list_header(size: int, kind: int) -> bytes:
    return bytes(((size << 4) | kind,)) if size < 15 else bytes((0xF0 | kind,)) + _varint(size)


def _columns(schema: pa.Schema) -> list[_Column]:
    """Each column with the constant start of its leaves' ColumnMetaData: type (1), encodings
    (2), path (3) and codec (4). A map has two leaves, its keys and its values."""
    columns = []
    for field in schema:
        kind = _kind(field.type)
        if kind == "map":
            leaves = [((field.name, "key_value", "key"), _BYTE_ARRAY),
                      ((field.name, "key_value", "value"), _BYTE_ARRAY)]
            items_nullable = field.type.item_field.nullable
        else:
            leaves = [((field.name,), _physical(kind))]
            items_nullable = False
        prefixes = []
        for path, physical in leaves:
            meta = _Thrift()
            meta.i32(1, physical)
            meta.i32_list(2, (_PLAIN, _RLE))
            meta.binary_list(3, [part.encode("utf-8") for part in path])
            meta.i32(4, _UNCOMPRESSED)
            prefixes.append(bytes(meta.out))
        columns.append(_Column(field.name, kind, field.nullable, items_nullable,
                               tuple(prefixes)))
    return columns


def _physical(kind: str) -> int:
    return {"string": _BYTE_ARRAY, "int64": _INT64, "bool": _BOOLEAN}[kind]


def _flat_body(name: str, kind: str, nullable: bool, values: list) -> bytes:
    """The body of a flat column's page: definition levels if nullable, then the values."""
    if len(values) == 1:  # most commits: no lists of levels and values to build
        value = values[0]
        if value is None:
            if not nullable:
                raise ValueError(f"column {name!r} cannot be null")
            return _ONE_NULL
        plain = _plain_one(name, kind, value)
        return _ONE_PRESENT + plain if nullable else plain
    if not nullable:
        if any(value is None for value in values):
            raise ValueError(f"column {name!r} cannot be null")
        return _plain(name, kind, values)
    present = [value for value in values if value is not None]
    levels = _levels([0 if value is None else 1 for value in values])
    return levels + _plain(name, kind, present)


def _map_pages(name: str, nullable: bool, items_nullable: bool,
               values: list) -> list[tuple[bytes, int]]:
    """The pages of the key and value columns of a map<string, string>, each with its number
    of values: a null map is definition level 0, an empty one 1, an entry 2 (3 for a value
    that is not null); repetition level 1 continues the row's map."""
    if not nullable and any(value is None for value in values):
        raise ValueError(f"column {name!r} cannot be null")
    optional = 1 if nullable else 0
    repetition, key_definition, value_definition, keys, items = [], [], [], [], []
    for value in values:
        if value is None:
            repetition.append(0)
            key_definition.append(0)
            value_definition.append(0)
            continue
        entries = list(value.items()) if isinstance(value, dict) else list(value)
        if not entries:
            repetition.append(0)
            key_definition.append(optional)
            value_definition.append(optional)
            continue
        for position, entry in enumerate(entries):
            try:
                key, item = entry
            except (TypeError, ValueError):
                raise TypeError(
                    f"column {name!r}: a map entry must be a (key, value) pair, "
                    f"not {entry!r}"
                ) from None
            if key is None or (item is None and not items_nullable):
                raise ValueError(f"column {name!r}: a map {'key' if key is None else 'value'}"
                                 " cannot be null")
            repetition.append(0 if position == 0 else 1)
            key_definition.append(optional + 1)
            keys.append(key)
            value_definition.append(optional + 1 + (items_nullable and item is not None))
            if item is not None:
                items.append(item)
    repeated = _levels(repetition)
    return [(repeated + _levels(key_definition) + _plain(name, "string", keys),
             len(repetition)),
            (repeated + _levels(value_definition) + _plain(name, "string", items),
             len(repetition))]


def _levels(levels: list[int]) -> bytes:
    """Levels in the RLE/bit-packed hybrid (:func:`_encoded_levels`); those of the pages of a
    few rows, which come back commit after commit, from a cache."""
    if len(levels) > _CACHED_LEVELS:
        return _encoded_levels(levels)
    key = tuple(levels)
    encoded = _levels_cache.get(key)
    if encoded is None:
        encoded = _levels_cache[key] = _encoded_levels(levels)
    return encoded


# Levels are 0 to 3: at most 4 + 16 + 64 + 256 lists of up to four of them.
_CACHED_LEVELS = 4
_levels_cache: dict[tuple[int, ...], bytes] = {}


def _encoded_levels(levels: list[int]) -> bytes:
    """Levels in the RLE/bit-packed hybrid, as runs of equal levels (each a varint of the
    run length shifted left once, then the level in one byte), after their length in four
    bytes. The levels here are at most 3, so a level's bit width is at most 2 and one byte
    holds it (a run's value takes the bit width rounded up to whole bytes)."""
    body = bytearray()
    start = 0
    while start < len(levels):
        end = start + 1
        while end < len(levels) and levels[end] == levels[start]:
            end += 1
        run = (end - start) << 1
        while run > 0x7F:
            body.append((run & 0x7F) | 0x80)
            run >>= 7
        body.append(run)
        body.append(levels[start])
        start = end
    return _PACK_I32(len(body)) + bytes(body)


# The definition levels of a page of one value: null, or present.
_ONE_NULL = _levels([0])
_ONE_PRESENT = _levels([1])


def _plain(column: str, kind: str, values: list) -> bytes:
    """PLAIN-encoded values of a column (no nulls among them)."""
    if kind == "string":
        out = bytearray()
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"column {column!r} holds strings, not {value!r}")
            data = value.encode("utf-8")
            out += _PACK_I32(len(data))
            out += data
        return bytes(out)
    if kind == "int64":
        if any(isinstance(value, bool) for value in values):  # an int, but not a number
            raise TypeError(f"column {column!r} holds integers, not {values!r}")
        try:
            return struct.pack(f"<{len(values)}q", *map(operator.index, values))
        except TypeError:
            raise TypeError(f"column {column!r} holds integers, not {values!r}") from None
        except struct.error:
            raise ValueError(f"column {column!r}: {values!r} is out of the int64 range") from None
    # booleans: one bit each, the first value in the lowest bit
    out = bytearray((len(values) + 7) // 8)
    for position, value in enumerate(values):
        if not isinstance(value, bool):
            raise TypeError(f"column {column!r} holds booleans, not {value!r}")
        if value:
            out[position // 8] |= 1 << (position % 8)
    return bytes(out)


def _plain_one(column: str, kind: str, value: object) -> bytes:
    """One PLAIN-encoded value (not null) of a column."""
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError(f"column {column!r} holds strings, not {value!r}")
        data = value.encode("utf-8")
        return _PACK_I32(len(data)) + data
    if kind == "int64":
        if isinstance(value, bool):
            raise TypeError(f"column {column!r} holds integers, not {value!r}")
        try:
            return _PACK_I64(operator.index(value))
        except TypeError:
            raise TypeError(f"column {column!r} holds integers, not {value!r}") from None
        except struct.error:
            raise ValueError(f"column {column!r}: {value!r} is out of the int64 range") from None
    if not isinstance(value, bool):
        raise TypeError(f"column {column!r} holds booleans, not {value!r}")
    return b"\x01" if value else b"\x00"


def _schema_elements(schema: pa.Schema) -> bytes:
    """Field 2 of FileMetaData (the list of SchemaElements, depth first), written once per
    schema. The field header assumes field 1 came before it."""
    elements: list[dict] = [{"name": "schema", "num_children": len(schema)}]
    for field in schema:
        kind = _kind(field.type)
        repetition = _OPTIONAL if field.nullable else _REQUIRED
        if kind == "map":
            value_nullable = field.type.item_field.nullable
            elements += [
                {"repetition": repetition, "name": field.name, "num_children": 1,
                 "converted": _MAP, "logical": 2},
                {"repetition": _REPEATED, "name": "key_value", "num_children": 2},
                {"type": _BYTE_ARRAY, "repetition": _REQUIRED, "name": "key",
                 "converted": _UTF8, "logical": 1},
                {"type": _BYTE_ARRAY, "repetition": _OPTIONAL if value_nullable else _REQUIRED,
                 "name": "value", "converted": _UTF8, "logical": 1},
            ]
        else:
            element = {"type": _physical(kind), "repetition": repetition, "name": field.name}
            if kind == "string":
                element |= {"converted": _UTF8, "logical": 1}
            elements.append(element)
    out = _Thrift(last_field=1)
    out.list_header(2, _T_STRUCT, len(elements))
    for element in elements:
        out.begin_struct()
        if "type" in element:
            out.i32(1, element["type"])
        if "repetition" in element:
            out.i32(3, element["repetition"])
        out.binary(4, element["name"].encode("utf-8"))
        if "num_children" in element:
            out.i32(5, element["num_children"])
        if "converted" in element:
            out.i32(6, element["converted"])
        if "logical" in element:
            # LogicalType is a union: field 1 STRING, field 2 MAP, each an empty struct.
            out.begin_struct(10)
            out.begin_struct(element["logical"])
            out.end_struct()
            out.end_struct()
        out.end_struct()
    return bytes(out.out)

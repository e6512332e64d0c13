"""The rows of a saved search state as stored, and read a part at a time.

A new process's first search needs, of each table's saved state, only the rows of the keys its
filter and order name and the rows of the one page of runs it returns. Decoding every row of
a million runs' params and metric summaries (20 million rows) took most of such a search, so
the rows are stored as an Arrow IPC *file* (random access to its record batches) laid out for
reading parts:

* Every string column is dictionary-encoded with one dictionary for the whole file, so a run id
  is stored once however many rows it has. The run ids' dictionary of the runs table's state
  is its run ids in row order; the other tables' states take that order when the process
  saving them holds the runs (``run_order``), so a search finds each row's run by its index.
  Otherwise, the order in which the rows first name them.
* The rows of tables with a key (params, tags, metric summaries) are grouped by key, each
  group in record batches of its own: one key's rows are read without the others
  (:meth:`StoredRows.with_key`, :meth:`StoredRows.key_column`).
* Within a key, rows are in the order of their run ids' dictionary indices, and those are
  stored as steps from the row before (:func:`_with_run_steps`): mostly 1, they compress to
  almost nothing. A page of runs finds its rows by binary search on them, reading only the
  columns the page shows (:meth:`StoredRows.of_runs`).
* Floating-point columns (metric values), which compress by a few percent at most, are a
  second IPC file stored as it is: a key or a page reads them in place.

Reading all rows (:meth:`StoredRows.all`) gives the rows that were saved, grouped as above.
Rows of some runs can be left out of every read (:meth:`StoredRows.without_runs`): a state
loaded and then brought up to date keeps the newer rows of the runs that changed apart.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from sparktrack._store.rows import bool_mask

__all__ = ["Encoded", "StoredRows", "decoded", "encode", "read_all"]

RUN_ID = "run_id"
KEY = "key"
_ALIGNMENT = 64  # a part starts at a multiple of it: Arrow reads its buffers in place


class Encoded(NamedTuple):
    """Rows as stored: the bytes, the key of each record batch (None for a table without a
    key column), and the (offset, length) of each IPC file in the bytes."""

    stored: pa.Buffer
    batch_keys: list[str | None]
    parts: list[tuple[int, int]]


def encode(rows: pa.Table, *, window_rows: int, compress: bool,
           run_order: pa.Array | None = None) -> Encoded:
    """``rows`` as stored: one Arrow IPC file of the columns, compressed if ``compress``;
    when compressed, the floating-point columns (metric values) in a second file as they are.

    Args:
        run_order: run ids (distinct) in the order to give the run ids' dictionary, ids not
            among them following in the order the rows first name them: the runs' own
            order, so that a search finds each row's run by its index, with no lookup.
    """
    rows = _plain(rows)
    names = rows.column_names

    def strings_encoded(name: str) -> pa.DictionaryArray:
        if name == RUN_ID and run_order is not None:
            return _run_ids_encoded(rows.column(name), run_order)
        return _dictionary_encoded(rows.column(name), sort=name == KEY)

    columns = [strings_encoded(field.name) if pa.types.is_string(field.type)
               else rows.column(field.name).combine_chunks() for field in rows.schema]
    del rows  # a large state is not held twice while it is saved
    group_by = KEY if KEY in names else RUN_ID
    grouping = columns[names.index(group_by)].indices.to_numpy(zero_copy_only=False)
    # Rows in the order of their run ids, within each key: the stored run id indices then
    # rise (stored as steps, they compress to almost nothing), and one key's rows are together.
    # Two stable sorts, each cheap: the run ids' indices are in the order the rows first name
    # them, so mostly sorted already, and the keys are few (a radix sort).
    order = np.argsort(columns[names.index(RUN_ID)].indices.to_numpy(zero_copy_only=False),
                       kind="stable")
    if group_by == KEY:
        key_type = np.int16 if len(columns[names.index(KEY)].dictionary) < (1 << 15) else np.int32
        order = order[np.argsort(grouping[order].astype(key_type), kind="stable")]
    grouped = grouping[order]
    if not len(order):
        groups, keys = [], None
    elif group_by == KEY:
        starts = np.flatnonzero(np.diff(grouped)) + 1
        groups = list(zip([0, *starts.tolist()], [*starts.tolist(), len(order)], strict=True))
        keys = columns[names.index(KEY)].dictionary
    else:
        groups, keys = [(0, len(order))], None
    encoded = pa.Table.from_arrays(columns, names=names)
    plain = [field.name for field in encoded.schema
             if compress and pa.types.is_floating(field.type)]
    packed = [name for name in names if name not in plain]
    # On the calling thread only: the saver is one background thread, not a pool's worth.
    options = ipc.IpcWriteOptions(compression=pa.Codec("zstd", 1) if compress else None,
                                  use_threads=False)
    batch_keys: list[str | None] = []
    packed_sink, plain_sink = pa.BufferOutputStream(), pa.BufferOutputStream()
    with (ipc.new_file(packed_sink, encoded.select(packed).schema, options=options)
          as packed_writer,
          ipc.new_file(plain_sink, encoded.select(plain).schema,
                       options=ipc.IpcWriteOptions(use_threads=False)) as plain_writer):
        for start, end in groups:
            key = keys[int(grouped[start])].as_py() if keys is not None else None
            # A window of rows at a time: saving a large state copies one window, not all.
            for window in range(start, end, window_rows):
                taken = encoded.take(pa.array(order[window:min(window + window_rows, end)]))
                batch = _with_run_steps(taken.combine_chunks().to_batches()[0])
                packed_writer.write_batch(batch.select(packed))
                plain_writer.write_batch(batch.select(plain))
                batch_keys.append(key)
    head = packed_sink.getvalue()
    if not plain:
        return Encoded(head, batch_keys, [(0, head.size)])
    # The plain part starts aligned, as Arrow reads its buffers in place.
    tail = plain_sink.getvalue()
    plain_at = head.size + (-head.size % _ALIGNMENT)
    sink = pa.BufferOutputStream()
    sink.write(head)
    sink.write(b"\0" * (plain_at - head.size))
    sink.write(tail)
    return Encoded(sink.getvalue(), batch_keys, [(0, head.size), (plain_at, tail.size)])


class StoredRows:
    """The stored rows of one state (see the module's docstring), decoded on demand.

    Raises:
        ValueError: ``stored`` is not an IPC file whose batches match ``batch_keys`` and whose
            columns are those of ``schema`` (strings dictionary-encoded).
    """

    def __init__(self, stored: pa.Buffer, batch_keys: Sequence[str | None],
                 schema: pa.Schema, *, parts: Sequence[Sequence[int]] | None = None) -> None:
        self._stored = stored
        self._schema = schema
        self._parts = [_Part(part) for part in _split(stored, parts)]
        for part in self._parts:
            if part.reader.num_record_batches != len(batch_keys):
                raise ValueError(f"{part.reader.num_record_batches} record batches, "
                                 f"{len(batch_keys)} listed")
        if not _fits(_joined_schema([part.reader.schema for part in self._parts], schema),
                     schema):
            raise ValueError("the stored columns are not those of the table")
        self._batch_keys = list(batch_keys)
        self._batches_of_key: dict[str | None, list[int]] = {}
        for index, key in enumerate(batch_keys):
            self._batches_of_key.setdefault(key, []).append(index)
        self._keyed = KEY in schema.names
        self._run_ids: pa.Array | None = None
        self._lock = threading.Lock()  # a file reader is not shared between threads
        self._hidden: np.ndarray | None = None  # per run id of the dictionary: rows left out
        # Columns read for pages, every batch (shared with the copies of without_runs).
        self._page_columns: dict[tuple[str, ...], list[pa.RecordBatch]] = {}

    def without_runs(self, run_ids: pa.Array) -> StoredRows:
        """These rows but those of ``run_ids`` (their newer rows are kept elsewhere). Shares
        the stored file, its readers and what was read of it."""
        hidden = bool_mask(pc.is_in(self.run_ids(), value_set=run_ids))
        if self._hidden is not None:
            hidden |= self._hidden
        masked = copy.copy(self)
        masked._hidden = hidden
        return masked

    @property
    def nbytes(self) -> int:
        """The stored size and the page columns read (what holding it costs)."""
        with self._lock:
            pages = sum(batch.nbytes for batches in self._page_columns.values()
                        for batch in batches)
        return self._stored.size + pages

    @property
    def keyed(self) -> bool:
        """Whether rows are grouped by a key column (:meth:`with_key` reads one key's)."""
        return self._keyed

    def all(self) -> pa.Table:
        """Every row, decoded in the table's schema."""
        return self._decoded(range(len(self)), self._schema.names)

    def with_key(self, key: str) -> pa.Table:
        """The rows whose key is ``key``, decoded in the table's schema."""
        return self._decoded(self._batches_of_key.get(key, []), self._schema.names)

    def key_column(self, key: str, column: str) -> tuple[np.ndarray, pa.Array]:
        """For the rows whose key is ``key``: the index of each row's run id in
        :meth:`run_ids` and its value of ``column`` (decoded)."""
        batches = self._batches(self._batches_of_key.get(key, []), (RUN_ID, column))
        if not batches:
            return (np.empty(0, dtype=np.int32),
                    pa.array([], type=self._schema.field(column).type))
        table = pa.Table.from_batches(batches)
        indices = pa.chunked_array([chunk.indices for chunk in table.column(RUN_ID).chunks])
        values = _decoded_column(table.column(column), self._schema.field(column).type)
        return (indices.combine_chunks().to_numpy(zero_copy_only=False),
                values.combine_chunks())

    def run_ids(self) -> pa.Array:
        """The distinct run ids of the rows in their stored order (the run id column's
        dictionary: the runs' order, or the order the rows first name them)."""
        if self._run_ids is None:
            if len(self) == 0:
                self._run_ids = pa.array([], type=pa.string())
            else:
                self._batches([0], (RUN_ID,))  # keeps the dictionary
        return self._run_ids

    def of_runs(self, run_ids: pa.Array, columns: Sequence[str]) -> pa.Table:
        """``columns`` (decoded) of the rows whose run is one of ``run_ids``.

        The columns read for pages are kept once read (a run id index and a value per row,
        a small part of the rows decoded): the next page of an unchanged state filters them.
        """
        # A batch's key is listed in the header: its column is not read.
        read = tuple(dict.fromkeys(
            [RUN_ID, *(name for name in columns if name != KEY or not self._keyed)]))
        with self._lock:
            kept = self._page_columns.get(read)
        if kept is None:
            kept = self._read_batches(list(range(len(self))), read)
            with self._lock:
                self._page_columns[read] = kept
        batches = self._without_hidden(kept)
        wanted = np.flatnonzero(bool_mask(pc.is_in(self.run_ids(), value_set=run_ids)))
        kept = []
        for batch, key in zip(batches, self._batch_keys, strict=True):
            rows = _rows_of_indices(batch.column(0).indices.to_numpy(zero_copy_only=False),
                                    wanted)
            if len(rows):
                batch = batch.take(pa.array(rows))
                if KEY in columns and KEY not in read:
                    batch = batch.append_column(KEY, pa.array([key] * batch.num_rows,
                                                              type=pa.string()))
                kept.append(batch)
        return self._table(kept, tuple(columns))

    def __len__(self) -> int:
        return len(self._batch_keys)

    def _decoded(self, indices: Sequence[int], columns: Sequence[str]) -> pa.Table:
        return self._table(self._batches(indices, tuple(columns)), tuple(columns))

    def _table(self, batches: list[pa.RecordBatch], columns: tuple[str, ...]) -> pa.Table:
        fields = [self._schema.field(name) for name in columns]
        if not batches:
            return pa.schema(fields).empty_table()
        table = pa.Table.from_batches(batches)
        return pa.Table.from_arrays(
            [_decoded_column(table.column(field.name), field.type) for field in fields],
            schema=pa.schema(fields))

    def _batches(self, indices: Sequence[int], columns: tuple[str, ...]
                 ) -> list[pa.RecordBatch]:
        """Record batches ``indices`` with ``columns`` (in that order), run ids as indices,
        the rows of runs left out (:meth:`without_runs`) removed."""
        return self._without_hidden(self._read_batches(list(indices), columns))

    def _without_hidden(self, batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
        if self._hidden is None or not batches or RUN_ID not in batches[0].schema.names:
            return batches
        return [batch.filter(pa.array(np.logical_not(self._hidden[
            batch.column(RUN_ID).indices.to_numpy(zero_copy_only=False)])))
            for batch in batches]

    def _read_batches(self, indices: list[int], columns: tuple[str, ...]
                      ) -> list[pa.RecordBatch]:
        with self._lock:
            read = [part.batches(indices, tuple(name for name in columns if name in part.names))
                    for part in self._parts]
        batches = []
        for number in range(len(indices)):
            arrays = {}
            for part in read:
                if part:
                    batch = part[number]
                    arrays.update(zip(batch.schema.names, batch.columns, strict=True))
            batches.append(pa.RecordBatch.from_arrays([arrays[name] for name in columns],
                                                      names=list(columns)))
        if batches and self._run_ids is None and RUN_ID in columns:
            self._run_ids = batches[0].column(RUN_ID).dictionary
        return batches


def _rows_of_indices(indices: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The rows of a batch whose run id index is one of ``wanted`` (sorted): a batch's rows
    are in the order of their run ids' indices (:func:`encode`), so each is found by a
    binary search instead of a look at every row."""
    low = np.searchsorted(indices, wanted, side="left")
    counts = np.searchsorted(indices, wanted, side="right") - low
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    # Each wanted index's rows low .. low + count - 1, all of them in a row.
    firsts = np.repeat(low, counts)
    return firsts + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


class _Part:
    """One IPC file of stored rows, read a projection of its columns at a time."""

    def __init__(self, stored: pa.Buffer) -> None:
        self.stored = stored
        self.reader = ipc.open_file(stored)
        self.names = frozenset(self.reader.schema.names)
        self._readers: dict[tuple[str, ...], ipc.RecordBatchFileReader] = {}

    def batches(self, indices: list[int], columns: tuple[str, ...]) -> list[pa.RecordBatch]:
        """Batches ``indices`` of ``columns`` (any order), run ids as indices; [] for no
        columns. The caller holds the lock: a file reader is not shared between threads."""
        if not columns:
            return []
        reader = self._readers.get(columns)
        if reader is None:
            if set(columns) == self.names:
                reader = self.reader
            else:
                # Only the buffers of these columns are read (and decompressed).
                included = [self.reader.schema.get_field_index(name) for name in columns]
                reader = ipc.open_file(self.stored,
                                       options=ipc.IpcReadOptions(included_fields=included))
            self._readers[columns] = reader
        return [_with_run_indices(reader.get_batch(index)) for index in indices]


def _split(stored: pa.Buffer, parts: Sequence[Sequence[int]] | None) -> list[pa.Buffer]:
    """The IPC files of ``stored`` ((offset, length) of each; None: it is one)."""
    if parts is None:
        return [stored]
    if not parts:
        raise ValueError("no stored parts listed")
    found = []
    for offset, length in parts:
        if not (0 <= offset and 0 <= length and offset + length <= stored.size):
            raise ValueError(f"a part at {offset} of {length} bytes is not within the rows")
        found.append(stored.slice(offset, length))
    return found


def _joined_schema(schemas: list[pa.Schema], schema: pa.Schema) -> pa.Schema:
    """The fields of the parts' ``schemas`` in the order of ``schema`` (a part's field that
    ``schema`` lacks, or one stored twice, leaves it out of order: it then does not fit)."""
    fields = {field.name: field for part in schemas for field in part}
    if sum(len(part) for part in schemas) != len(fields):
        return pa.schema([])
    ordered = [fields[name] for name in schema.names if name in fields]
    return pa.schema(ordered + [f for name, f in fields.items() if name not in schema.names])


def read_all(stored: pa.Buffer, *, parts: Sequence[Sequence[int]] | None = None) -> pa.Table:
    """Every stored row as it is stored (strings dictionary-encoded), for inspection."""
    tables = []
    for part in _split(stored, parts):
        reader = ipc.open_file(part)
        tables.append(pa.Table.from_batches(
            [_with_run_indices(reader.get_batch(index))
             for index in range(reader.num_record_batches)], schema=reader.schema))
    table = tables[0]
    for other in tables[1:]:
        for name in other.column_names:
            table = table.append_column(other.schema.field(name), other.column(name))
    return table


def _with_run_steps(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with the run ids' dictionary indices stored as steps from the row before.

    The rows are in the order of these indices within a key, so the steps are small and
    mostly 1 and compress to almost nothing, where the indices themselves (a few MB per key
    at a million runs) compress poorly. A step is never negative nor above the largest
    index, so the column is still a valid dictionary column.
    """
    column = batch.column(RUN_ID)
    indices = column.indices.to_numpy(zero_copy_only=False)
    steps = np.diff(indices, prepend=np.int32(0)).astype(np.int32)
    return batch.set_column(batch.schema.get_field_index(RUN_ID), RUN_ID,
                            pa.DictionaryArray.from_arrays(pa.array(steps), column.dictionary))


def _with_run_indices(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The stored ``batch`` with its run id steps (:func:`_with_run_steps`) back as indices."""
    at = batch.schema.get_field_index(RUN_ID)
    if at < 0:
        return batch
    column = batch.column(at)
    # int32 throughout: the sum of a batch's steps is its last index, below 2**31.
    indices = np.cumsum(column.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
    return batch.set_column(at, RUN_ID, pa.DictionaryArray.from_arrays(
        pa.array(indices), column.dictionary))


def decoded(rows: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """Stored rows back in ``schema`` (dictionaries decoded); None if they do not fit it."""
    if not _fits(rows.schema, schema):
        return None
    return pa.Table.from_arrays(
        [_decoded_column(rows.column(field.name), field.type) for field in schema],
        schema=schema)


def _fits(stored: pa.Schema, schema: pa.Schema) -> bool:
    if stored.names != schema.names:
        return False
    for column, field in zip(stored, schema, strict=True):
        value_type = (column.type.value_type if pa.types.is_dictionary(column.type)
                      else column.type)
        if value_type != field.type:
            return False
    return True


def _decoded_column(column: pa.ChunkedArray, value_type: pa.DataType) -> pa.ChunkedArray:
    if not pa.types.is_dictionary(column.type):
        return column
    if column.num_chunks == 1:
        chunk = column.chunk(0)
        indices = chunk.indices
        # Each row its own value, in the dictionary's order (the runs' ids, names and artifact
        # locations): the dictionary is the column, no copy to make.
        if (len(indices) == len(chunk.dictionary) and not indices.null_count
                and np.array_equal(indices.to_numpy(zero_copy_only=False),
                                   np.arange(len(indices), dtype=np.int32))):
            return pa.chunked_array([chunk.dictionary], type=value_type)
    return column.cast(value_type)


def _plain(rows: pa.Table) -> pa.Table:
    """``rows`` with dictionary-encoded columns (a state read back as it is) decoded."""
    if not any(pa.types.is_dictionary(field.type) for field in rows.schema):
        return rows
    return pa.Table.from_arrays(
        [_decoded_column(rows.column(field.name), field.type.value_type)
         if pa.types.is_dictionary(field.type) else rows.column(field.name)
         for field in rows.schema], names=rows.column_names)


def _run_ids_encoded(column: pa.ChunkedArray, order: pa.Array) -> pa.DictionaryArray:
    """``column`` (run ids, no nulls) dictionary-encoded in ``order``, then first named."""
    distinct = pc.unique(column)
    dictionary = order.filter(pc.is_in(order, value_set=distinct))
    if len(dictionary) < len(distinct):
        others = distinct.filter(pc.invert(pc.is_in(distinct, value_set=dictionary)))
        dictionary = pa.concat_arrays([dictionary, others])
    indices = pc.index_in(column, value_set=dictionary)
    if isinstance(indices, pa.ChunkedArray):
        indices = indices.combine_chunks()
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _dictionary_encoded(column: pa.ChunkedArray, *, sort: bool) -> pa.DictionaryArray:
    """``column`` dictionary-encoded with one dictionary, in the order the rows first name its
    values or sorted (``sort``); nulls stay null."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    if not sort or len(encoded.dictionary) < 2:
        return encoded
    order = pc.array_sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return pa.DictionaryArray.from_arrays(pc.take(pa.array(rank), encoded.indices),
                                          encoded.dictionary.take(pa.array(order)))

"""Reading the rows of a planned Arrow dataset, without Arrow's threads calling into Python.

Local tables are read through Arrow's own filesystem, whose I/O threads never touch Python:
they are scanned by Arrow as usual, in parallel. Object-store tables are read through
deltalake's filesystem, a Python object (``pyarrow.fs.PyFileSystem``). Scanned by Arrow, its
I/O threads would call that Python object and drop its files: work that needs the GIL and
that can still be in flight just after a read returns. If the interpreter exits then (a script
whose last act is a flush or a search), the thread asking for the GIL is ended mid-way and the
process aborts with Arrow's ``terminate called without an active exception`` (exit -6/134).

So object-store files are fetched here on the calling thread, copied into Arrow's memory and
decoded without threads; only then does Arrow filter them. It costs no parallelism: deltalake's
filesystem holds the GIL while it waits for the network, so its reads never overlapped anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

__all__ = ["read_parquet_file", "scan_batches", "scan_fragment", "scan_table"]


def scan_table(
    dataset: pds.Dataset,
    *,
    where: pds.Expression | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """The rows of ``dataset`` matching ``where``, with only ``columns`` (all if None)."""
    if not _calls_python(dataset.filesystem):
        return dataset.to_table(filter=where, columns=columns)
    parts = [_matching(scan_fragment(fragment, dataset.schema), where)
             for fragment in _fragments(dataset, where)]
    rows = pa.concat_tables(parts) if parts else dataset.schema.empty_table()
    return rows if columns is None else rows.select(columns)


def scan_batches(
    dataset: pds.Dataset,
    *,
    where: pds.Expression | None = None,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """:func:`scan_table` as a stream of batches of at most ``batch_size`` rows."""
    if not _calls_python(dataset.filesystem):
        yield from dataset.to_batches(filter=where, batch_size=batch_size)
        return
    for fragment in _fragments(dataset, where):
        rows = _matching(scan_fragment(fragment, dataset.schema), where)
        yield from rows.to_batches(max_chunksize=batch_size)


def scan_fragment(fragment: Any, schema: pa.Schema) -> pa.Table:
    """Every row of one Parquet ``fragment`` in ``schema`` (partition columns filled in from
    the fragment's partition values, columns the file lacks as nulls).

    Raises:
        FileNotFoundError: the file is gone (vacuumed since the dataset was planned).
    """
    if not _calls_python(fragment.filesystem):
        return fragment.to_table(schema=schema)
    rows = read_parquet_file(fragment.filesystem, fragment.path)
    return _conform(rows, schema, pds.get_partition_keys(fragment.partition_expression))


def read_parquet_file(filesystem: pafs.FileSystem | None, path: str) -> pa.Table:
    """Every row of the Parquet file at ``path`` of ``filesystem`` (None: a local path).

    Raises:
        FileNotFoundError: there is no such file.
    """
    if filesystem is None or not _calls_python(filesystem):
        return pq.read_table(path, filesystem=filesystem)
    with filesystem.open_input_file(path) as source:
        data = source.read()
    # A copy in Arrow's memory: a buffer over the Python bytes would need the GIL to be freed.
    buffer = pa.array([data], pa.large_binary()).buffers()[2]
    return pq.ParquetFile(pa.BufferReader(buffer)).read(use_threads=False)


def _fragments(dataset: pds.Dataset, where: pds.Expression | None) -> list[Any]:
    """The fragments that may hold rows matching ``where`` (by their partition values and
    file statistics)."""
    if where is None:
        return list(dataset.get_fragments())
    return list(dataset.get_fragments(filter=where))


def _calls_python(filesystem: pafs.FileSystem) -> bool:
    return isinstance(filesystem, pafs.PyFileSystem)


def _matching(rows: pa.Table, where: pds.Expression | None) -> pa.Table:
    return rows if where is None else rows.filter(where)


def _conform(rows: pa.Table, schema: pa.Schema, partition: dict[str, Any]) -> pa.Table:
    columns = []
    for field in schema:
        # As Arrow's scanner does: the file's column first (a partition expression may also
        # hold statistics), then the partition value, else nulls (a column added later).
        if field.name in rows.column_names:
            column = rows.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        elif field.name in partition:
            columns.append(pa.array([partition[field.name]] * rows.num_rows, field.type))
        else:
            columns.append(pa.nulls(rows.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)

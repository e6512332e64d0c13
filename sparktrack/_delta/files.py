"""Data files of a table: writing one (with its Delta statistics) and reading given ones.

The data source's executors read exactly the files a plan listed, never the folder (compaction
leaves replaced files behind until vacuum); :func:`read_data_files` and
:func:`iter_data_files` do that and translate what Arrow raises into StoreError.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

from sparktrack._delta.errors import translated
from sparktrack._delta.paths import filesystem, in_base
from sparktrack._delta.scan import scan_batches, scan_table

__all__ = ["file_stats", "iter_data_files", "read_data_files", "split_by_partition",
           "write_data_file"]

# A data file to read: its path relative to the table and its partition values.
DataFileRef = tuple[str, Mapping[str, str]]


def split_by_partition(
    rows: pa.Table, partition_by: Sequence[str]
) -> list[tuple[dict[str, str], pa.Table]]:
    """``rows`` grouped by the values of the partition columns."""
    if not partition_by:
        return [({}, rows)]
    keys = rows.select(list(partition_by)).group_by(list(partition_by)).aggregate([]).to_pylist()
    parts = []
    for key in keys:
        mask = None
        for column, value in key.items():
            condition = pc.equal(rows.column(column), value)
            mask = condition if mask is None else pc.and_(mask, condition)
        parts.append(({column: str(value) for column, value in key.items()}, rows.filter(mask)))
    return parts


def write_data_file(
    fs: pafs.FileSystem, rows: pa.Table, *, folder: str, partition: dict[str, str], now: int,
) -> tuple[str, AddAction]:
    """Write ``rows`` as a new Parquet file of a table; returns its path and its add action."""
    path = f"{folder}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    with fs.open_output_stream(path) as sink:
        pq.write_table(rows, sink, compression="zstd", compression_level=3)
    size = fs.get_file_info(path).size
    return path, AddAction(path, size, partition, now, True, file_stats(rows))


def file_stats(rows: pa.Table) -> str:
    """Delta statistics of a data file: row and null counts, and the min/max of the flat
    columns JSON renders exactly (integers, strings of up to 32 characters), which readers use
    to skip the file."""
    minimum, maximum, nulls = {}, {}, {}
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if pa.types.is_nested(column.type):
            continue
        nulls[name] = column.null_count
        if column.null_count == len(column):
            continue
        exact = pa.types.is_integer(column.type) or (
            pa.types.is_string(column.type)
            and pc.max(pc.utf8_length(column)).as_py() <= 32
        )
        if exact:
            low, high = pc.min_max(column).values()
            minimum[name], maximum[name] = low.as_py(), high.as_py()
    return json.dumps({"numRecords": rows.num_rows, "minValues": minimum,
                       "maxValues": maximum, "nullCount": nulls})


def _files_dataset(uri: str, schema: pa.Schema, files: Sequence[DataFileRef],
                   storage_options: dict[str, str] | None) -> pds.Dataset:
    fs, base = filesystem(uri, storage_options)
    file_format = pds.ParquetFileFormat(
        default_fragment_scan_options=pds.ParquetFragmentScanOptions(pre_buffer=True)
    )
    fragments = [
        file_format.make_fragment(in_base(base, path), filesystem=fs,
                                  partition_expression=_partition_expression(partition))
        for path, partition in files
    ]
    return pds.FileSystemDataset(fragments, schema, file_format, fs)


def _partition_expression(partition: Mapping[str, Any]) -> pds.Expression:
    expression = None
    for column, value in partition.items():
        condition = pc.field(column) == value
        expression = condition if expression is None else expression & condition
    return pc.scalar(True) if expression is None else expression


def read_data_files(
    uri: str,
    schema: pa.Schema,
    files: Sequence[DataFileRef],
    *,
    storage_options: dict[str, str] | None = None,
    columns: list[str] | None = None,
    where: pds.Expression | None = None,
) -> pa.Table:
    """Rows of the given data files of the table at ``uri`` (partition columns filled in from
    the partition values given with each file).

    Raises:
        StoreError: a file is missing, unreadable or corrupt (named, with the table).
    """
    with translated("reading Delta table", uri):
        return scan_table(_files_dataset(uri, schema, files, storage_options),
                          where=where, columns=columns)


def iter_data_files(
    uri: str,
    schema: pa.Schema,
    files: Sequence[DataFileRef],
    *,
    storage_options: dict[str, str] | None = None,
    where: pds.Expression | None = None,
    batch_size: int = 131_072,
) -> Iterator[pa.RecordBatch]:
    """:func:`read_data_files` as a stream of Arrow batches."""
    with translated("reading Delta table", uri):
        dataset = _files_dataset(uri, schema, files, storage_options)
        yield from scan_batches(dataset, where=where, batch_size=batch_size)

"""Small pyarrow helpers shared by the store's readers (the rules that use them to pick the
current rows are in :mod:`sparktrack._store.current_rules`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "bool_mask",
    "concat_tables",
    "group_codes",
    "repeated_codes",
    "newest_rows",
    "next_version",
    "now_millis",
    "oldest_rows",
]

_clock_lock = threading.Lock()
_last_version = 0


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def next_version() -> int:
    """Microseconds since the epoch, strictly increasing within this process.

    Rows that replace earlier rows ("newest wins") carry it, so two updates in the same
    microsecond still have an order.
    """
    global _last_version
    with _clock_lock:
        _last_version = max(time.time_ns() // 1000, _last_version + 1)
        return _last_version


def concat_tables(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """``parts`` as one table (no copy): the only part itself, or ``schema``'s empty table."""
    if not parts:
        return schema.empty_table()
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def bool_mask(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow boolean column as a numpy bool array, null as False."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def group_codes(table: pa.Table, keys: Sequence[str]) -> np.ndarray | None:
    """One int64 per row, equal exactly when the rows' ``keys`` are equal; None if a key is null.

    Dictionary-encodes each key column and folds the indices together, so grouping becomes
    integer work for numpy instead of a sort of strings.
    """
    combined: np.ndarray | None = None
    for key in keys:
        column = table.column(key)
        if column.null_count:
            return None
        indices, size = _dictionary_indices(column)
        combined = indices if combined is None else combined * size + indices
    return combined


def _dictionary_indices(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """The dictionary indices (int64) of ``column``'s values, and the dictionary's size."""
    # Chunk by chunk: Arrow encodes a chunked column with one dictionary that every chunk
    # shares, so the strings need not be copied into one array first (a third of the time).
    encoded = pc.dictionary_encode(column)
    sizes = {len(chunk.dictionary) for chunk in encoded.chunks}
    if len(sizes) > 1:  # not one shared dictionary: encode the values as one array
        encoded = pa.chunked_array([pc.dictionary_encode(column.combine_chunks())])
    if encoded.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), 1
    indices = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False)
                              for chunk in encoded.chunks]).astype(np.int64, copy=False)
    return indices, max(len(encoded.chunks[0].dictionary), 1)


def repeated_codes(codes: np.ndarray) -> np.ndarray:
    """Per code of :func:`group_codes`: whether another row has the same one."""
    if len(codes) == 0:
        return np.zeros(0, dtype=bool)
    top = int(codes.max()) + 1
    if top <= 4 * len(codes) + 1024:
        # Counting is linear; the codes of a few keys' dictionaries are small enough for it.
        return np.bincount(codes, minlength=top)[codes] > 1
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    return counts[inverse] > 1


def _pick(
    table: pa.Table, keys: Sequence[str], order: str, direction: str, tie_break: str | None = None
) -> pa.Table:
    if table.num_rows == 0:
        return table
    codes = group_codes(table, keys)
    ordering = table.column(order)
    if codes is None or ordering.null_count or (
        tie_break is not None and table.column(tie_break).null_count
    ):
        return _pick_by_sorting(table, keys, order, direction, tie_break)
    # Most groups have one row (a param logged once, a tag set once): those are picked as they
    # are, and only the rows of repeated groups are sorted.
    repeated = repeated_codes(codes)
    if not repeated.any():
        return table
    if repeated.all():
        return _pick_among(table, codes, order, direction, tie_break)
    mask = pa.array(repeated)
    picked = _pick_among(table.filter(mask), codes[repeated], order, direction, tie_break)
    return pa.concat_tables([table.filter(pc.invert(mask)), picked])


def _pick_among(
    table: pa.Table, codes: np.ndarray, order: str, direction: str, tie_break: str | None
) -> pa.Table:
    rank = table.column(order).to_numpy()
    if direction == "descending":
        rank = -rank.astype(np.float64) if rank.dtype.kind == "f" else -rank
    sort_keys = (rank, codes)
    if tie_break is not None:
        # Rows that tie on ``order`` are told apart by the smallest ``tie_break`` value, so every
        # process and every file layout picks the same row.
        sort_keys = (_value_rank(table.column(tie_break)), rank, codes)
    # Stable: rows that tie on ``order`` keep the first in table order, as the sort below does.
    permutation = np.lexsort(sort_keys)
    grouped = codes[permutation]
    first = np.empty(len(grouped), dtype=bool)
    first[0] = True
    np.not_equal(grouped[1:], grouped[:-1], out=first[1:])
    return table.take(pa.array(permutation[first]))


def _value_rank(column: pa.ChunkedArray) -> np.ndarray:
    encoded = pc.dictionary_encode(column.combine_chunks())
    dictionary_rank = pc.rank(encoded.dictionary, sort_keys="ascending", tiebreaker="dense")
    return dictionary_rank.to_numpy()[encoded.indices.to_numpy(zero_copy_only=False)]


def _pick_by_sorting(
    table: pa.Table, keys: Sequence[str], order: str, direction: str, tie_break: str | None = None
) -> pa.Table:
    extra = [(tie_break, "ascending")] if tie_break is not None else []
    ordered = table.sort_by([*((key, "ascending") for key in keys), (order, direction), *extra])
    numbered = ordered.append_column("__row", pa.array(range(ordered.num_rows), type=pa.int64()))
    firsts = numbered.group_by(list(keys), use_threads=False).aggregate([("__row", "first")])
    return ordered.take(firsts.column("__row_first"))


def newest_rows(table: pa.Table, keys: Sequence[str], order: str = "updated_at") -> pa.Table:
    """The row with the greatest ``order`` value for each distinct ``keys``."""
    return _pick(table, keys, order, "descending")


def oldest_rows(
    table: pa.Table, keys: Sequence[str], order: str, *, tie_break: str | None = None
) -> pa.Table:
    """The row with the smallest ``order`` value for each distinct ``keys``; among rows that tie
    on it, the one with the smallest ``tie_break`` value (when given)."""
    return _pick(table, keys, order, "ascending", tie_break)


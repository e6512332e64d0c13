"""Where run ids are in large columns: each id's position in a list of runs, and which rows
belong to some runs. Exact answers, faster than Arrow's string hashing.

Search joins the current params, metrics and tags of an experiment (one row per run and key)
to its runs by run id. Hashing the strings is most of a search at a million runs (about 0.2 s
per 500,000 ids), so for ids of 32 characters (sparktrack's and MLflow's: a UUID's hex digits)
each id is read as integers straight from Arrow's string buffer: ``_code_of_words`` packs its
first 16 bytes into one int64 and ``bucket_codes`` its first 8 into a small bucket number. Equal
ids always get equal numbers; different ids rarely do, so every match the numbers suggest is
checked (by :func:`positions` on all 32 bytes read as four integers, by :func:`members` against
the strings), and columns of other ids (other lengths, nulls) take Arrow's string path. Either
way the answer is the one an exact string join gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._store.rows import bool_mask

__all__ = ["BUCKET_BITS", "IdIndex", "bucket_codes", "members", "positions"]

_ID_BYTES = 32
_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads every input bit upward
#: Bits of a bucket code: a table of 2**20 flags (1 MB) stays in the CPU's cache.
BUCKET_BITS = 20

Column = pa.Array | pa.ChunkedArray


class IdIndex:
    """Run ids (unique) prepared for :func:`positions` of many columns in them: built once
    per list of runs and kept by its reader, it saves hashing the list again for each key."""

    def __init__(self, run_ids: pa.Array) -> None:
        self.run_ids = run_ids
        self._words = _words(run_ids, count=_ID_BYTES // 8)
        self._index: pd.Index | None = None
        if self._words is not None:
            index = pd.Index(_code_of_words(self._words))
            # Two ids sharing a code (or a repeated id): only the strings tell them apart.
            self._index = index if index.is_unique else None

    def positions(self, column: Column) -> np.ndarray | None:
        """For each row of ``column``, the position of its id here, or -1; None when the
        codes cannot say (ids of other lengths, shared codes: use the strings)."""
        if self._index is None:
            return None
        words = _words(column, count=_ID_BYTES // 8)
        if words is None:
            return None
        found = self._index.get_indexer(_code_of_words(words)).astype(np.int64)
        hit = found >= 0
        # A code is two of an id's four words mixed: a hit is exact when all four are equal,
        # which is comparing the two strings' 32 bytes.
        if not np.array_equal(words[hit], self._words[found[hit]]):
            return None  # an id shares a code with another run's: use the strings
        return found


def positions(column: Column, run_ids: pa.Array | IdIndex) -> np.ndarray:
    """For each row of ``column``, the position of its id in ``run_ids`` (unique), or -1.

    Args:
        run_ids: the ids, or an :class:`IdIndex` of them kept by the caller.
    """
    index = run_ids if isinstance(run_ids, IdIndex) else IdIndex(run_ids)
    found = index.positions(column)
    if found is not None:
        return found
    found = pc.index_in(column, value_set=index.run_ids)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def members(column: Column, run_ids: pa.Array, *, codes: np.ndarray | None = None
            ) -> np.ndarray:
    """For each row of ``column``, whether its id is one of ``run_ids`` (a bool array).

    Args:
        codes: ``bucket_codes(column)`` when the caller keeps them (a column searched again
            and again); computed here otherwise.
    """
    wanted = bucket_codes(run_ids)
    codes = bucket_codes(column) if codes is None else codes
    if wanted is None or codes is None:
        return bool_mask(pc.is_in(column, value_set=run_ids))
    flags = np.zeros(1 << BUCKET_BITS, dtype=bool)
    flags[wanted] = True
    candidates = np.flatnonzero(flags[codes])
    result = np.zeros(len(column), dtype=bool)
    if len(candidates):
        # A bucket holds about len(column) / 2**20 other ids: check the few candidates exactly.
        suggested = np.zeros(len(column), dtype=bool)
        suggested[candidates] = True
        # A filter works chunk by chunk; a take from many chunks would copy them into one.
        exact = pc.is_in(column.filter(pa.array(suggested)), value_set=run_ids)
        result[candidates[bool_mask(exact)]] = True
    return result


def bucket_codes(column: Column) -> np.ndarray | None:
    """One number below ``2**BUCKET_BITS`` per id (uint32), equal for equal ids; None unless
    every id is a non-null string of 32 bytes."""
    words = _words(column, count=1)
    if words is None:
        return None
    return ((words[:, 0] * _MIX) >> np.uint64(64 - BUCKET_BITS)).astype(np.uint32)


def _codes(column: Column) -> np.ndarray | None:
    """One int64 per id from its first 16 bytes; None unless all are strings of 32 bytes."""
    words = _words(column, count=2)
    return None if words is None else _code_of_words(words)


def _code_of_words(words: np.ndarray) -> np.ndarray:
    """One int64 per id from its first two 8-byte words."""
    return ((words[:, 0] * _MIX) ^ words[:, 1]).view(np.int64)


def _words(column: Column, *, count: int) -> np.ndarray | None:
    """The first ``count`` 8-byte words of each id, one row per id (read in place)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if not pa.types.is_string(column.type):
        return None
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            return None
        if len(chunk) == 0:
            continue
        _, offsets_buffer, data = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32,
                                count=len(chunk) + 1, offset=4 * chunk.offset)
        first = int(offsets[0])
        if not np.array_equal(
            offsets, np.arange(first, first + _ID_BYTES * (len(chunk) + 1), _ID_BYTES,
                               dtype=np.int32)):
            return None
        ids = np.frombuffer(data, dtype=np.uint64, count=len(chunk) * _ID_BYTES // 8,
                            offset=first).reshape(len(chunk), _ID_BYTES // 8)
        parts.append(ids[:, :count])
    if not parts:
        return np.zeros((0, count), dtype=np.uint64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)

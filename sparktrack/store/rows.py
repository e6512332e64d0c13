"""Small pyarrow helpers shared by the store's readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pyarrow as pa

__all__ = ["newest_rows", "next_version", "now_millis", "oldest_rows"]

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


def _pick(table: pa.Table, keys: Sequence[str], order: str, direction: str) -> pa.Table:
    if table.num_rows == 0:
        return table
    ordered = table.sort_by([*((key, "ascending") for key in keys), (order, direction)])
    numbered = ordered.append_column("__row", pa.array(range(ordered.num_rows), type=pa.int64()))
    firsts = numbered.group_by(list(keys), use_threads=False).aggregate([("__row", "first")])
    return ordered.take(firsts.column("__row_first"))


def newest_rows(table: pa.Table, keys: Sequence[str], order: str = "updated_at") -> pa.Table:
    """The row with the greatest ``order`` value for each distinct ``keys``."""
    return _pick(table, keys, order, "descending")


def oldest_rows(table: pa.Table, keys: Sequence[str], order: str) -> pa.Table:
    """The row with the smallest ``order`` value for each distinct ``keys``."""
    return _pick(table, keys, order, "ascending")

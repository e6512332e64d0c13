"""The process-wide write buffer: rows of every run of a process, committed together.

``log_metric`` appends a tuple to a list under a lock (microseconds); a background thread
commits what has gathered every ``flush_interval_seconds``, sooner when ``flush_max_rows`` rows
wait, and the rest is committed by ``flush()``, by every read through the same process
(read-your-writes) and at interpreter exit.

What a crash can lose: a process killed hard (SIGKILL, power loss) loses the rows it buffered
during the last ``flush_interval_seconds`` plus the duration of one commit. A normal exit,
an exception or Ctrl-C loses nothing (the store's atexit hook flushes). Rows are never dropped
silently: if a commit fails after its retries the rows stay buffered, and the error is raised
on the caller's next logging call or flush.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterable

import pyarrow as pa

from sparktrack.config import Settings
from sparktrack.errors import StoreError
from sparktrack.store.delta import DeltaTableHandle
from sparktrack.store.schemas import METRIC_SUMMARIES, METRICS, PARAMS, RUNS, TAGS
from sparktrack.store.summaries import summarize_points

__all__ = ["WriteBuffer", "close_all", "flush_all"]

# Commit order: a reader in another process sees a run's row before its params and metrics.
_BUFFERED_TABLES = (RUNS.name, TAGS.name, PARAMS.name, METRICS.name)
_COMMIT_ORDER = (*_BUFFERED_TABLES, METRIC_SUMMARIES.name)

_live_buffers: weakref.WeakSet[WriteBuffer] = weakref.WeakSet()


class WriteBuffer:
    """Buffers rows for the tables of one store and commits them in batches."""

    def __init__(self, tables: dict[str, DeltaTableHandle], settings: Settings) -> None:
        self._tables = tables
        self._settings = settings
        self._lock = threading.Lock()  # guards _rows and _row_count
        self._flush_lock = threading.Lock()  # one commit sequence at a time
        self._rows: dict[str, list[tuple]] = {name: [] for name in _BUFFERED_TABLES}
        self._row_count = 0
        # Rows already converted to Arrow whose commit has not succeeded yet.
        self._pending: dict[str, list[pa.Table]] = {name: [] for name in _COMMIT_ORDER}
        self._error: StoreError | None = None
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        _live_buffers.add(self)

    # -- adding rows -----------------------------------------------------------------------
    def add(self, table: str, row: tuple) -> None:
        """Buffer one row (a tuple in the table's column order)."""
        self._raise_pending_error()
        with self._lock:
            self._rows[table].append(row)
            self._row_count += 1
            count = self._row_count
        self._after_add(count)

    def add_many(self, table: str, rows: Iterable[tuple]) -> None:
        self._raise_pending_error()
        with self._lock:
            before = len(self._rows[table])
            self._rows[table].extend(rows)
            self._row_count += len(self._rows[table]) - before
            count = self._row_count
        self._after_add(count)

    def _after_add(self, count: int) -> None:
        if self._thread is None:
            self._start_thread()
        if count >= self._settings.max_pending_rows:
            self.flush()  # back-pressure: the caller logs faster than commits keep up
        elif count >= self._settings.flush_max_rows:
            self._wake.set()

    @property
    def row_count(self) -> int:
        return self._row_count + sum(t.num_rows for ts in self._pending.values() for t in ts)

    # -- committing ------------------------------------------------------------------------
    def flush(self) -> None:
        """Commit every buffered row now; raise StoreError if a commit finally fails.

        The commit retries what a failed background commit left pending, so an earlier
        background error is raised only if this commit fails too (then as its fresh error).
        """
        self._error = None
        self._commit()

    def _commit(self) -> None:
        with self._flush_lock:
            with self._lock:
                taken, self._rows = self._rows, {name: [] for name in _BUFFERED_TABLES}
                self._row_count = 0
            self._convert(taken)
            for name in _COMMIT_ORDER:
                batches = self._pending[name]
                if not batches:
                    continue
                rows = pa.concat_tables(batches) if len(batches) > 1 else batches[0]
                self._tables[name].append(rows)  # raises StoreError: pending rows are kept
                self._pending[name] = []

    def _convert(self, taken: dict[str, list[tuple]]) -> None:
        for name, rows in taken.items():
            if not rows:
                continue
            schema = self._tables[name].spec.schema
            columns = list(zip(*rows, strict=True))
            table = pa.table(
                [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
                schema=schema,
            )
            if name == METRICS.name:
                # Keep a run's points together: smaller files, faster per-run reads.
                table = table.sort_by([("experiment_id", "ascending"), ("run_id", "ascending"),
                                       ("key", "ascending"), ("step", "ascending")])
                summary = summarize_points(table, updated_at=time.time_ns() // 1000)
                self._pending[METRIC_SUMMARIES.name].append(summary)
            self._pending[name].append(table)

    def _raise_pending_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    # -- background thread -----------------------------------------------------------------
    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="sparktrack-flusher", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._settings.flush_interval_seconds)
            self._wake.clear()
            if self._closed or not self.row_count:
                continue
            try:
                self._commit()
            except StoreError as exc:
                self._error = exc
            except Exception as exc:  # noqa: BLE001 - the thread must survive to retry later
                self._error = StoreError(f"Background commit failed: {exc!r}")

    def commit_if_failing(self) -> None:
        """Commit now if an earlier commit failed and its rows still wait; raise StoreError if
        it fails again. Cheap when commits succeed: nothing is committed then."""
        failing = self._error is not None
        # Rows left pending by a failed commit; a commit in progress is not waited for.
        if not failing and self._flush_lock.acquire(blocking=False):
            try:
                failing = any(self._pending.values())
            finally:
                self._flush_lock.release()
        if failing:
            self.flush()

    def close(self) -> None:
        """Commit what is left and stop the background thread."""
        self._closed = True
        self._wake.set()
        self._commit()

    def _forget_after_fork(self) -> None:
        # The parent process owns the rows it buffered; the child starts empty.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._rows = {name: [] for name in _BUFFERED_TABLES}
        self._pending = {name: [] for name in _COMMIT_ORDER}
        self._row_count = 0
        self._thread = None
        self._wake = threading.Event()


def flush_all() -> None:
    """Commit the rows of every live buffer of this process."""
    for buffer in list(_live_buffers):
        buffer.flush()


def close_all() -> list[tuple[int, Exception]]:
    """Commit and stop every live buffer (the store's exit hook calls it first).

    Returns what could not be committed: (rows lost, error) for each buffer whose final commit
    failed. Every buffer is tried, whatever the others do.
    """
    failures = []
    for buffer in list(_live_buffers):
        try:
            buffer.close()
        except Exception as exc:  # noqa: BLE001 - reported by the exit hook, never masked
            failures.append((buffer.row_count, exc))
    return failures


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        after_in_child=lambda: [buffer._forget_after_fork() for buffer in list(_live_buffers)]
    )

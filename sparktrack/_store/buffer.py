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
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa

from sparktrack.config import Settings
from sparktrack.errors import SparkTrackError, StoreError
from sparktrack._delta import DeltaTableHandle
from sparktrack._store.rows import now_millis
from sparktrack._store.schemas import METRIC_SUMMARIES, METRICS, PARAMS, RUNS, TAGS
from sparktrack._store.summary_repair import (
    BATCH_KEY,
    COVERS_KEY,
    summarize_batch,
    summary_file_name,
    writer_metadata,
)

__all__ = ["CommitChecks", "WriteBuffer", "close_all", "flush_all"]

# Commit order: a reader in another process sees a run's row before its params and metrics.
_BUFFERED_TABLES = (RUNS.name, TAGS.name, PARAMS.name, METRICS.name)

_live_buffers: weakref.WeakSet[WriteBuffer] = weakref.WeakSet()


@dataclass(slots=True)
class _Summary:
    """The summary of one committed metrics batch, waiting for its own commit."""

    batch: str
    rows: pa.Table


@dataclass(frozen=True, slots=True)
class CommitChecks:
    """What the store checks around a commit, against what other processes committed.

    ``before`` gets the rows about to be committed ({table: Arrow table}) and returns them
    without the rows it refuses (raising nothing: refusals are reported through ``after``'s
    return value or its own error); ``after`` gets the rows just committed and returns an error
    to raise on the writer's next call, or None.
    """

    before: Callable[[dict[str, pa.Table]], tuple[dict[str, pa.Table], SparkTrackError | None]]
    after: Callable[[dict[str, pa.Table]], SparkTrackError | None]


class WriteBuffer:
    """Buffers rows for the tables of one store and commits them in batches."""

    def __init__(
        self,
        tables: dict[str, DeltaTableHandle],
        settings: Settings,
        *,
        checks: CommitChecks | None = None,
    ) -> None:
        self._tables = tables
        self._settings = settings
        self._checks = checks
        self._lock = threading.Lock()  # guards _rows and _row_count
        self._flush_lock = threading.Lock()  # one commit sequence at a time
        self._rows: dict[str, list[tuple]] = {name: [] for name in _BUFFERED_TABLES}
        self._row_count = 0
        # Rows already converted to Arrow whose commit has not succeeded yet.
        self._pending: dict[str, list[pa.Table]] = {name: [] for name in _BUFFERED_TABLES}
        # Rows Arrow could not convert (validation should make this impossible): kept, never
        # committed, reported at every flush instead of being dropped with their batch.
        self._unconvertible: dict[str, list[tuple]] = {name: [] for name in _BUFFERED_TABLES}
        self._summaries: list[_Summary] = []
        self._error: SparkTrackError | None = None  # a failed background commit (retried)
        self._refusal: SparkTrackError | None = None  # what the commit checks refused (raised once)
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        _live_buffers.add(self)

    # -- adding rows -----------------------------------------------------------------------
    def add(self, table: str, row: tuple, *, defer_backpressure: bool = False) -> None:
        """Buffer one row (a tuple in the table's column order).

        When ``max_pending_rows`` rows wait, the caller commits them first (back-pressure);
        with ``defer_backpressure`` it does not, and must call :meth:`relieve_backpressure`
        once it has released its own locks (a commit is Delta I/O).
        """
        self._raise_pending_error()
        with self._lock:
            self._rows[table].append(row)
            self._row_count += 1
            count = self._row_count
        self._after_add(count, defer_backpressure)

    def add_many(
        self, table: str, rows: Iterable[tuple], *, defer_backpressure: bool = False
    ) -> None:
        """Buffer rows of one table (see :meth:`add`)."""
        self._raise_pending_error()
        with self._lock:
            before = len(self._rows[table])
            self._rows[table].extend(rows)
            self._row_count += len(self._rows[table]) - before
            count = self._row_count
        self._after_add(count, defer_backpressure)

    def _after_add(self, count: int, defer_backpressure: bool) -> None:
        if self._thread is None:
            self._start_thread()
        if count >= self._settings.max_pending_rows:
            if not defer_backpressure:
                self.flush()  # back-pressure: the caller logs faster than commits keep up
        elif count >= self._settings.flush_max_rows:
            self._wake.set()

    def relieve_backpressure(self) -> None:
        """Commit now if ``max_pending_rows`` rows wait (after adds that deferred it)."""
        if self._row_count >= self._settings.max_pending_rows:
            self.flush()

    @property
    def row_count(self) -> int:
        """Rows not committed yet (buffered, converted and waiting, or unconvertible)."""
        return (
            self._row_count
            + sum(t.num_rows for ts in self._pending.values() for t in ts)
            + sum(len(rows) for rows in self._unconvertible.values())
        )

    # -- committing ------------------------------------------------------------------------
    def flush(self) -> None:
        """Commit every buffered row now; raise StoreError if a commit finally fails.

        The commit retries what a failed background commit left pending, so an earlier
        background error is raised only if this commit fails too (then as its fresh error).
        An error the commit checks reported (a param another process set first, a run another
        process deleted) is raised once, here or on the next call.
        """
        self._error = None
        self._raise_refusal()
        self._commit()
        self._raise_refusal()

    def _commit(self) -> None:
        with self._flush_lock:
            with self._lock:
                taken, self._rows = self._rows, {name: [] for name in _BUFFERED_TABLES}
                self._row_count = 0
            held_before = sum(len(rows) for rows in self._unconvertible.values())
            self._convert(taken)
            if sum(len(rows) for rows in self._unconvertible.values()) > held_before:
                self._report(self._unconvertible_error())
            ready = {name: self._merged(name) for name in _BUFFERED_TABLES}
            ready = {name: rows for name, rows in ready.items() if rows is not None}
            if self._checks is not None and ready:
                ready, refused = self._checks.before(ready)
                self._pending = {name: [] for name in _BUFFERED_TABLES}
                for name, rows in ready.items():
                    self._pending[name] = [rows]
                self._report(refused)
            committed: dict[str, pa.Table] = {}
            for name in _BUFFERED_TABLES:
                rows = self._merged(name)
                if rows is None:
                    continue
                if name == METRICS.name:
                    self._commit_metrics(rows)
                else:
                    self._tables[name].append(rows)  # raises StoreError: pending rows are kept
                self._pending[name] = []
                committed[name] = rows
            self._commit_summaries()
            if self._checks is not None:
                # Also with nothing new: values committed recently are checked again.
                self._report(self._checks.after(committed))

    def _merged(self, name: str) -> pa.Table | None:
        batches = self._pending[name]
        if not batches:
            return None
        return pa.concat_tables(batches) if len(batches) > 1 else batches[0]

    def _commit_metrics(self, rows: pa.Table) -> None:
        # The batch id ties this commit to the summary committed next, so a reader can tell a
        # batch whose summary a crash lost (see sparktrack._store.summary_repair).
        batch = uuid.uuid4().hex
        self._tables[METRICS.name].append(rows, metadata={BATCH_KEY: batch, **writer_metadata()})
        self._summaries.append(_Summary(batch, summarize_batch(rows)))

    def _commit_summaries(self) -> None:
        # One file per batch, named after it: a repair of the same batch by a reader commits the
        # same file, which Delta keeps once, so a summary is never counted twice.
        while self._summaries:
            summary = self._summaries[0]
            self._tables[METRIC_SUMMARIES.name].put_named_file(
                summary.rows, name=summary_file_name(summary.batch),
                metadata={COVERS_KEY: summary.batch},
            )
            self._summaries.pop(0)

    def _convert(self, taken: dict[str, list[tuple]]) -> None:
        for name, rows in taken.items():
            if not rows:
                continue
            if name == PARAMS.name:
                # Stamped at commit: the first value committed is the one every reader sees.
                stamp = now_millis()
                rows = [(*row[:-1], stamp) for row in rows]
            try:
                table = self._to_arrow(name, rows)
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                table = self._convert_row_by_row(name, rows)
            if table is None:
                continue
            if name == METRICS.name:
                # Keep a run's points together: smaller files, faster per-run reads.
                table = table.sort_by([("experiment_id", "ascending"), ("run_id", "ascending"),
                                       ("key", "ascending"), ("step", "ascending")])
            self._pending[name].append(table)

    def _to_arrow(self, name: str, rows: list[tuple]) -> pa.Table:
        schema = self._tables[name].spec.schema
        columns = list(zip(*rows, strict=True))
        return pa.table(
            [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
            schema=schema,
        )

    def _convert_row_by_row(self, name: str, rows: list[tuple]) -> pa.Table | None:
        # One bad row must not take the others of its batch with it: keep the good rows, and
        # hold the bad ones back (reported, never dropped silently).
        good = []
        for row in rows:
            try:
                self._to_arrow(name, [row])
            except (pa.ArrowException, OverflowError, TypeError, ValueError):
                self._unconvertible[name].append(row)
            else:
                good.append(row)
        return self._to_arrow(name, good) if good else None

    def _unconvertible_error(self) -> StoreError | None:
        held = [(name, row) for name, rows in self._unconvertible.items() for row in rows]
        if not held:
            return None
        name, row = held[0]
        return StoreError(
            f"{len(held)} buffered row(s) cannot be stored (first: table {name!r}, row "
            f"{_short(row)}); they are held back (never committed) and every other row was "
            "committed. This is a bug in sparktrack's validation: please report it with the "
            "row above."
        )

    def _report(self, refusal: SparkTrackError | None) -> None:
        if refusal is not None and self._refusal is None:
            self._refusal = refusal

    def _raise_pending_error(self) -> None:
        self._raise_refusal()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _raise_refusal(self) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            raise refusal

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
                failing = any(self._pending.values()) or bool(self._summaries)
            finally:
                self._flush_lock.release()
        if failing:
            self.flush()

    def close(self) -> None:
        """Stop the background thread, then commit what is left; raise if rows are left.

        Returns only once the thread has ended: the interpreter's exit hook calls this, and a
        background commit still running when the interpreter finalizes is ended inside
        deltalake's native code as it takes the GIL back, which crashes the process (SIGSEGV).
        """
        self._closed = True
        self._wake.set()
        self._stop_thread()
        self._commit()
        held = self._unconvertible_error()
        if held is not None:
            raise held

    def _stop_thread(self) -> None:
        # The thread may be waiting for the flush lock (it woke during a flush): it makes
        # that commit, sees the buffer closed and ends. It must not commit after close()
        # returns, so it is waited for here rather than merely told to stop.
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _forget_after_fork(self) -> None:
        # The parent process owns the rows it buffered; the child starts empty.
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._rows = {name: [] for name in _BUFFERED_TABLES}
        self._pending = {name: [] for name in _BUFFERED_TABLES}
        self._unconvertible = {name: [] for name in _BUFFERED_TABLES}
        self._summaries = []
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


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"

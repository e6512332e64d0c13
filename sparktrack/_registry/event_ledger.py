"""Every registry change gets its ``registry_events`` rows, even if its writer dies between the
change's commit and theirs.

A change and its events are two Delta commits (two tables cannot commit together). So the
change's own commit carries its events in its commit info (``sparktrack.events``), and the
events are then committed to ``registry_events``.

The writer commits them off the caller's path: a background thread of the process commits the
events of the changes of the last few milliseconds together, as one commit (a change costs
its caller one Delta commit, not two). Whatever reads the history in the process commits the
queue first (:meth:`EventLedger.flush`), and so does the interpreter's exit; a process that
ends without it (killed) leaves its changes to the repair below, as if it had died between the
two commits. The thread also writes the checkpoints the state tables fall due for.

Every process reads the state tables' new commits before each registry operation
(:class:`~sparktrack._registry.tables.TableMirror`); events that are still not in
``registry_events`` a grace period after a process first saw their change (the writer is
stalled), or at once when their writer is known to be gone (a process of this machine that no
longer exists), are committed from the commit info by that process.

Events are committed serially (:mod:`sparktrack._delta.serial`), writer and repair alike: a
commit holds the events not in the table as of the version it was decided on, and lands as
the next version or is decided again. So no event is ever recorded twice.

A process that starts checks the commits made since the last version known to be complete,
remembered per table in ``<store>/_search_state/registry_events_checked.json``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterable


from sparktrack._delta import DeltaTableHandle
from sparktrack._delta.serial import SerialLog, TailCommit
from sparktrack._store.atomic_file import replace_file
from sparktrack._store.summary_repair import WRITER_KEY, writer_gone
from sparktrack.errors import StoreError

__all__ = ["EVENTS_KEY", "EventLedger"]

#: The commit-info key of a state commit that holds the change's events (a JSON list).
EVENTS_KEY = "sparktrack.events"

# Remember how far a table was checked once this many more of its commits were (a new process
# then reads at most this many log entries of it again).
_SAVE_EVERY = 100
# How long the background writer waits before trying a failed commit again.
_RETRY_SECONDS = 1.0
# How long a reader of the history waits for the events of changes it has seen whose writer is
# alive (it commits them a millisecond or so after its change) before it reads without them.
_WAIT_FOR_WRITERS_SECONDS = 0.5
# How long the background writer gathers changes before it commits their events.
_BATCH_SECONDS = 0.01
# Attempts at committing a batch of events; each lost one is another process's commit.
_MAX_ATTEMPTS = 1000
# The background writer's thread ends after this long without work.
_IDLE_SECONDS = 10.0


class EventLedger:
    """The events of the registry's changes: recorded by their writer, repaired by readers.

    Args:
        events: the ``registry_events`` table.
        grace_seconds: how long a change's events may be missing before they are repaired
            (their writer is between its two commits).
        checkpoint_path: where the versions checked are remembered (None: nowhere).
        writer_events: the same table, opened separately for the background writer's thread
            (default: ``events``).
    """

    def __init__(self, events: DeltaTableHandle, *, grace_seconds: float,
                 checkpoint_path: str | None,
                 writer_events: DeltaTableHandle | None = None) -> None:
        self.log = SerialLog(events)
        self._writer_log = SerialLog(writer_events or events)
        self._grace_seconds = grace_seconds
        self._checkpoint_path = checkpoint_path
        self._checked = _load(checkpoint_path)
        self._event_ids: set[str] | None = None  # of registry_events, as of _events_version
        self._events_version = -1
        self._pending: dict[tuple[str, int], tuple[list[dict], float]] = {}
        self._seen: dict[str, int] = {}  # the newest commit of each table seen
        # The background writer's work, under _lock: changes whose events are not committed
        # yet (table, version, events) and state tables due for a checkpoint.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._queued: list[tuple[str, int, list[dict]]] = []
        self._checkpoints: list[DeltaTableHandle] = []
        self._committing = threading.Lock()  # one commit of the queue at a time
        self._checkpointing = threading.Lock()
        self._ids_lock = threading.RLock()  # _event_ids and _events_version
        self._thread: threading.Thread | None = None
        self._thread_pid = -1
        self._stop = threading.Event()  # set at exit: the writer ends and none starts

    # -- writing ---------------------------------------------------------------------------
    def record(self, table: str, version: int, events: list[dict]) -> None:
        """Have the events of the change committed as ``version`` of ``table`` committed by
        the background writer (:meth:`flush` commits them at once)."""
        self._pending.pop((table, version), None)
        if events:
            self._hand_over(lambda: self._queued.append((table, version, events)))

    def checkpoint_later(self, table: DeltaTableHandle) -> None:
        """Have the background writer write a checkpoint of ``table`` (a handle only the
        writer uses: a checkpoint takes tens of milliseconds)."""
        self._hand_over(lambda: self._checkpoints.append(table))

    def flush(self, *, checkpoints: bool = False) -> None:
        """Commit the queued events now, in this thread (and the due checkpoints with
        ``checkpoints``); a failure raises here (the events stay queued)."""
        self._commit_queued()
        if checkpoints:
            self._write_checkpoints()

    def close(self) -> None:
        """End the background writer, wait for it, then commit what is left (the interpreter's
        exit). A commit of the writer's still running as the interpreter finalizes would end
        inside deltalake's native code and crash the process (SIGSEGV): after a failed commit
        the writer retries a second later, possibly after the exit hook returned."""
        self._stop.set()
        with self._work:
            self._work.notify()
            thread = self._thread if self._thread_pid == os.getpid() else None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush(checkpoints=True)

    def _hand_over(self, add) -> None:
        with self._work:
            add()
            stale = self._thread is None or self._thread_pid != os.getpid()
            if stale and not self._stop.is_set():  # after close(), a flush commits them
                self._start_writer()
            self._work.notify()

    def _start_writer(self) -> None:
        # Called under _lock. A forked child inherits no thread: it starts its own.
        self._thread = threading.Thread(target=self._write_in_background, daemon=True,
                                        name="sparktrack-registry-events")
        self._thread_pid = os.getpid()
        self._thread.start()
        _ledgers.add(self)

    def _write_in_background(self) -> None:
        while True:
            with self._work:
                if not (self._queued or self._checkpoints or self._stop.is_set()):
                    self._work.wait(_IDLE_SECONDS)
                if self._stop.is_set() or not (self._queued or self._checkpoints):
                    self._thread = None  # idle or closed: the next hand-over starts another
                    return
            # The changes of the next few milliseconds join this commit: one commit (and one
            # Parquet file) for many changes is what makes the events nearly free.
            if self._stop.wait(_BATCH_SECONDS):
                continue  # closed meanwhile: close() commits them
            try:
                self._commit_queued()
                self._write_checkpoints()
            except Exception:  # noqa: BLE001 - kept queued: retried, or raised by flush()
                self._stop.wait(_RETRY_SECONDS)

    def _commit_queued(self) -> None:
        """Commit the events of the queued changes (those not in the table yet)."""
        with self._committing:
            with self._lock:
                batch = list(self._queued)
            if not batch:
                return
            self._commit_missing([event for _, _, events in batch for event in events])
            with self._lock:
                del self._queued[:len(batch)]

    def _commit_missing(self, events: list[dict]) -> None:
        """Commit those of ``events`` not in the table, as the version after the one they
        were checked against (checked again if another process committed first)."""
        for _ in range(_MAX_ATTEMPTS):
            version = self._refresh_event_ids(self._writer_log)
            missing = [event for event in events if event["event_id"] not in self._event_ids]
            if not missing:
                return
            if self._writer_log.commit_next(version, missing):
                with self._ids_lock:
                    if self._events_version == version:
                        self._events_version = version + 1
                    self._event_ids.update(event["event_id"] for event in missing)
                return
        raise StoreError(
            f"could not commit registry events to {self.log.handle.uri}: other processes "
            f"committed first {_MAX_ATTEMPTS} times in a row. They are not lost (the changes' "
            "commits carry them); read the registry's history again to retry."
        )

    def _write_checkpoints(self) -> None:
        with self._checkpointing:
            with self._lock:
                due, self._checkpoints[:] = list(self._checkpoints), []
            for table in due:
                SerialLog(table).checkpoint()

    # -- checking --------------------------------------------------------------------------
    def saw(self, table: str, commits: Iterable[TailCommit], *,
            seen_at: float | None = None) -> None:
        """Note the changes other processes committed to ``table`` (their events may be
        pending); ``seen_at`` -inf: no grace period (their writers are long done)."""
        seen_at = time.monotonic() if seen_at is None else seen_at
        for commit in commits:
            events = commit.metadata.get(EVENTS_KEY)
            if events:
                # A writer known to be gone (killed, or its pool terminated) gets no grace.
                gone = writer_gone(commit.metadata.get(WRITER_KEY))
                self._pending.setdefault((table, commit.version),
                                         (json.loads(events), -float("inf") if gone else seen_at))
            self._seen[table] = max(self._seen.get(table, -1), commit.version)

    def loaded(self, table: str, log: SerialLog, version: int) -> None:
        """A process read ``table`` whole at ``version``: check the commits since the last
        version known to be complete."""
        # Version 0 created the table (its schema, no rows): changes start at 1.
        first = max(self._checked.get(table, 0) + 1, 1)
        if first > version:
            return
        commits = log.commits(first, version)
        if commits is None:  # entries cleaned up (older than the log retention): unknowable
            self._mark_checked(table, version)
            return
        # Changes from before this process looked: no grace, their writers are done or gone.
        self.saw(table, commits, seen_at=-float("inf"))
        self.settle()
        if not any(key[0] == table for key in self._pending):
            self._mark_checked(table, version)

    def settle(self) -> None:
        """Drop the pending changes whose events arrived; repair those past the grace period."""
        if not self._pending:
            return
        self._refresh_event_ids()
        now = time.monotonic()
        with self._ids_lock, self._lock:  # this process's own queued events count as arrived
            present = self._event_ids | {e["event_id"] for _, _, events in self._queued
                                         for e in events}
        for key, (events, seen) in list(self._pending.items()):
            if all(event["event_id"] in present for event in events):
                del self._pending[key]
            elif now - seen >= self._grace_seconds:
                self.record(*key, events)
        for table, version in self._seen.items():
            complete = not any(key[0] == table for key in self._pending)
            if complete and version - self._checked.get(table, -1) >= _SAVE_EVERY:
                self._mark_checked(table, version)

    def await_writers(self) -> None:
        """Wait (up to half a second) for the events other live processes commit right after
        their changes, of the changes seen; those still missing then are left to the repair."""
        deadline = time.monotonic() + min(_WAIT_FOR_WRITERS_SECONDS, self._grace_seconds)
        self.settle()
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.002)
            self.settle()

    def _refresh_event_ids(self, log: SerialLog | None = None) -> int:
        """Bring the ids of the events in the table up to date (reading through ``log``,
        default: the readers'); the version they are complete up to."""
        with self._ids_lock:
            log = log or self.log
            tail = None if self._event_ids is None else log.since(self._events_version)
            if tail is None:
                version, rows = log.load()
                self._event_ids = set(rows.column("event_id").to_pylist())
            else:
                version = tail.version
                self._event_ids.update(tail.rows.column("event_id").to_pylist())
            self._events_version = version
            return version

    def _mark_checked(self, table: str, version: int) -> None:
        self._checked[table] = version
        if self._checkpoint_path is None:
            return
        try:  # a cache: without it the next process checks a little more of the log
            folder = os.path.dirname(self._checkpoint_path)
            os.makedirs(folder, exist_ok=True)
            replace_file(self._checkpoint_path, json.dumps(self._checked).encode())
        except OSError:
            pass


# Every ledger that has had work handed over, to commit what is left when the interpreter exits.
_ledgers: weakref.WeakSet[EventLedger] = weakref.WeakSet()


def _flush_at_exit() -> None:
    for ledger in list(_ledgers):
        try:
            ledger.close()
        except (StoreError, OSError) as exc:
            # Not lost: the changes' commits carry their events, and the next process that
            # reads the registry commits them.
            print(f"sparktrack: could not commit registry events at exit ({exc}); the next "
                  "process that reads the registry commits them.", file=sys.stderr)


atexit.register(_flush_at_exit)


def checkpoint_path(root: str) -> str | None:
    """Where a local store remembers the registry commits checked (None for object stores)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return os.path.join(root.removeprefix("file://"), "_search_state",
                        "registry_events_checked.json")


def _load(path: str | None) -> dict[str, int]:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            found = json.load(file)
        return {str(k): int(v) for k, v in found.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}  # none yet, or unreadable: check from the start

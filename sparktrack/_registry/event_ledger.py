"""Every registry change gets its ``registry_events`` rows, even if its writer dies between the
change's commit and theirs.

A change and its events are two Delta commits (two tables cannot commit together). So the
change's own commit carries its events in its commit info (``sparktrack.events``), and the
events are then committed to ``registry_events`` in a file named after the change's commit
(``<table>-<version>.parquet``). Every process reads the state tables' new commits before each
registry operation (:class:`~sparktrack._registry.tables.TableMirror`); events that are still
not in ``registry_events`` a grace period after a process first saw their change (the writer
is stalled), or at once when their writer is known to be gone (a process of this machine that
no longer exists), are committed from the commit info by that process. A writer and a
repair commit the same named file, and Delta lists a path once, so no event is recorded twice.

A process that starts checks the commits made since the last version known to be complete,
remembered per table in ``<store>/_search_state/registry_events_checked.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

import pyarrow as pa

from sparktrack._delta import DeltaTableHandle
from sparktrack._delta.serial import SerialLog, TailCommit
from sparktrack._store.atomic_file import replace_file
from sparktrack._store.schemas import REGISTRY_EVENTS
from sparktrack._store.summary_repair import WRITER_KEY, writer_gone

__all__ = ["EVENTS_KEY", "EventLedger"]

#: The commit-info key of a state commit that holds the change's events (a JSON list).
EVENTS_KEY = "sparktrack.events"

# Remember how far a table was checked once this many more of its commits were (a new process
# then reads at most this many log entries of it again).
_SAVE_EVERY = 100


class EventLedger:
    """The events of the registry's changes: recorded by their writer, repaired by readers.

    Args:
        events: the ``registry_events`` table.
        grace_seconds: how long a change's events may be missing before they are repaired
            (their writer is between its two commits).
        checkpoint_path: where the versions checked are remembered (None: nowhere).
    """

    def __init__(self, events: DeltaTableHandle, *, grace_seconds: float,
                 checkpoint_path: str | None) -> None:
        self.log = SerialLog(events)
        self._grace_seconds = grace_seconds
        self._checkpoint_path = checkpoint_path
        self._checked = _load(checkpoint_path)
        self._event_ids: set[str] | None = None  # of registry_events, as of _events_version
        self._events_version = -1
        self._pending: dict[tuple[str, int], tuple[list[dict], float]] = {}
        self._seen: dict[str, int] = {}  # the newest commit of each table seen

    # -- writing ---------------------------------------------------------------------------
    def record(self, table: str, version: int, events: list[dict]) -> None:
        """Commit the events of the change committed as ``version`` of ``table``."""
        if events:
            self.log.append(pa.Table.from_pylist(events, schema=REGISTRY_EVENTS.schema),
                            name=f"{table}-{version:020d}")
        self._pending.pop((table, version), None)
        if self._event_ids is not None:
            self._event_ids.update(event["event_id"] for event in events)

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
        for key, (events, seen) in list(self._pending.items()):
            if all(event["event_id"] in self._event_ids for event in events):
                del self._pending[key]
            elif now - seen >= self._grace_seconds:
                self.record(*key, events)
        for table, version in self._seen.items():
            complete = not any(key[0] == table for key in self._pending)
            if complete and version - self._checked.get(table, -1) >= _SAVE_EVERY:
                self._mark_checked(table, version)

    def _refresh_event_ids(self) -> None:
        tail = None if self._event_ids is None else self.log.since(self._events_version)
        if tail is None:
            version, rows = self.log.load()
            self._event_ids = set(rows.column("event_id").to_pylist())
        else:
            version = tail.version
            self._event_ids.update(tail.rows.column("event_id").to_pylist())
        self._events_version = version

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

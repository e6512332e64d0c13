"""The registry's history: one row of the append-only ``registry_events`` table per change.

Events are written right after the change they describe commits (two Delta tables cannot
commit together); the state tables are versioned too, so a question such as "which version
was Production on 3 March" can be answered from either (see the README's Model registry).
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from sparktrack._delta import DeltaTableHandle
from sparktrack._delta.serial import SerialLog
from sparktrack._store.rows import next_version, now_millis
from sparktrack._store.schemas import REGISTRY_EVENTS

__all__ = ["EVENTS", "Events"]

# Every kind of change the registry records, in the `event` column.
EVENTS = (
    "CREATE_REGISTERED_MODEL",
    "RENAME_REGISTERED_MODEL",
    "UPDATE_REGISTERED_MODEL",
    "DELETE_REGISTERED_MODEL",
    "SET_REGISTERED_MODEL_TAG",
    "DELETE_REGISTERED_MODEL_TAG",
    "CREATE_MODEL_VERSION",
    "UPDATE_MODEL_VERSION",
    "DELETE_MODEL_VERSION",
    "SET_MODEL_VERSION_TAG",
    "DELETE_MODEL_VERSION_TAG",
    "TRANSITION_STAGE",
    "SET_ALIAS",
    "MOVE_ALIAS",
    "DELETE_ALIAS",
)


class Events:
    """Appends event rows; one Delta commit per call."""

    def __init__(self, handle: DeltaTableHandle) -> None:
        self.handle = handle
        self.log = SerialLog(handle)

    def record(self, rows: list[dict]) -> None:
        """Commit ``rows`` (dicts with ``event``, ``model_id``, ``name`` and any optional
        column of REGISTRY_EVENTS) stamped with one time."""
        if not rows:
            return
        stamp = now_millis()
        full = [
            {column: None for column in REGISTRY_EVENTS.schema.names}
            | {"event_id": _event_id(), "timestamp": stamp}
            | row
            for row in rows
        ]
        unknown = {row["event"] for row in full} - set(EVENTS)
        assert not unknown, f"unknown registry event {unknown}"
        self.log.append(pa.Table.from_pylist(full, schema=REGISTRY_EVENTS.schema))


def _event_id() -> str:
    """Unique, and ordered like the changes of one process (events of one call share a
    timestamp): the process's strictly increasing microsecond clock, then random hex."""
    return f"{next_version():016x}-{uuid.uuid4().hex[:16]}"

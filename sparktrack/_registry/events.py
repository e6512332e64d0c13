"""The registry's history: one row of the append-only ``registry_events`` table per change.

A change's events travel in its own commit and are committed to ``registry_events`` right
after it (two Delta tables cannot commit together); a change whose writer died in between
gets them from whoever reads the registry next (:mod:`.event_ledger`).
"""

from __future__ import annotations

import os

from sparktrack._context import current_user
from sparktrack._store.rows import next_version, now_millis
from sparktrack._store.schemas import REGISTRY_EVENTS

__all__ = ["EVENTS", "complete"]

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


def complete(rows: list[dict]) -> list[dict]:
    """Full ``registry_events`` rows of ``rows`` (dicts with ``event``, ``model_id``, ``name``
    and any optional column), with event ids, one timestamp and the user of the process."""
    unknown = {row["event"] for row in rows} - _KNOWN
    assert not unknown, f"unknown registry event {unknown}"
    common = _EMPTY | {"timestamp": now_millis(), "user_id": current_user()}
    return [common | {"event_id": _event_id()} | row for row in rows]


_KNOWN = frozenset(EVENTS)
_EMPTY = dict.fromkeys(REGISTRY_EVENTS.schema.names)


def _event_id() -> str:
    """Unique, and ordered like the changes of one process (events of one call share a
    timestamp): the process's strictly increasing microsecond clock, then random hex."""
    return f"{next_version():016x}-{os.urandom(8).hex()}"

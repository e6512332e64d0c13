"""Search state saved beside the tables, so a new process starts from it instead of the rows.

One Arrow IPC file per (table, experiment) under ``<store>/_search_state/<table>/``, holding
the resolved rows of :class:`~sparktrack.store.current_state.CurrentState` and, in its schema
metadata, the Delta data files those rows were resolved from. A process that finds it
memory-maps it (uncompressed, so loading costs no decoding) and, exactly as for a snapshot in
memory, merges in the files committed since, or rebuilds if a file it covers is gone. The files
are a cache: deleting them is always safe, a file that cannot be read is ignored and
replaced, and the Delta tables stay the only source of truth. Local stores only; on object
stores the state lives in memory alone.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import NamedTuple

import pyarrow as pa
import pyarrow.ipc as ipc

from sparktrack.store.schemas import SCHEMA_VERSION

__all__ = ["SavedState", "StateFiles"]

logger = logging.getLogger(__name__)

FOLDER = "_search_state"
_FILES_KEY = b"sparktrack.files"
_VERSION_KEY = b"sparktrack.version"
_SCHEMA_KEY = b"sparktrack.schema_version"


class SavedState(NamedTuple):
    version: int
    files: frozenset[str]
    rows: pa.Table


class StateFiles:
    """The saved search state of one table (``None`` folder: saving is off)."""

    def __init__(self, folder: str | None, schema: pa.Schema) -> None:
        self._folder = folder
        self._schema = schema

    @classmethod
    def for_table(cls, root: str, table: str, schema: pa.Schema) -> StateFiles:
        local = "://" not in root
        return cls(os.path.join(root, FOLDER, table) if local else None, schema)

    def _path(self, experiment_id: str) -> str | None:
        if self._folder is None:
            return None
        return os.path.join(self._folder, f"experiment_id={experiment_id}.arrow")

    def load(self, experiment_id: str) -> SavedState | None:
        """The saved state of an experiment, or None (none saved, unreadable, other schema)."""
        path = self._path(experiment_id)
        if path is None or not os.path.exists(path):
            return None
        try:
            rows = ipc.open_file(pa.memory_map(path)).read_all()
            metadata = rows.schema.metadata or {}
            if int(metadata[_SCHEMA_KEY]) != SCHEMA_VERSION:
                return None
            rows = rows.replace_schema_metadata(None)
            if not rows.schema.equals(self._schema):
                return None
            files = frozenset(json.loads(metadata[_FILES_KEY]))
            return SavedState(int(metadata[_VERSION_KEY]), files, rows)
        except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
            logger.warning("Ignoring unreadable search state %s (it is rebuilt): %s", path, exc)
            return None

    def save(self, experiment_id: str, state: SavedState) -> None:
        """Replace the saved state of an experiment (atomically; a failure is only logged)."""
        path = self._path(experiment_id)
        if path is None:
            return
        metadata = {
            _FILES_KEY: json.dumps(sorted(state.files)).encode(),
            _VERSION_KEY: str(state.version).encode(),
            _SCHEMA_KEY: str(SCHEMA_VERSION).encode(),
        }
        rows = state.rows.replace_schema_metadata(metadata)
        temporary = None
        try:
            os.makedirs(self._folder, exist_ok=True)  # type: ignore[arg-type]
            handle, temporary = tempfile.mkstemp(dir=self._folder, suffix=".tmp")
            os.close(handle)
            with pa.OSFile(temporary, "wb") as sink, ipc.new_file(sink, rows.schema) as writer:
                writer.write_table(rows)
            # Readers that mapped the old file keep it: replace() swaps the name only.
            os.replace(temporary, path)
        except OSError as exc:
            logger.warning("Could not save search state %s: %s", path, exc)
            if temporary is not None and os.path.exists(temporary):
                os.remove(temporary)

    def remove(self, experiment_id: str) -> None:
        """Delete the saved state of an experiment (gc: removed runs must not linger in it)."""
        path = self._path(experiment_id)
        if path is not None and os.path.exists(path):
            os.remove(path)

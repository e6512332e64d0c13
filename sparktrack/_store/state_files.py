"""Search state saved beside the tables, so a new process starts from it instead of the rows.

One file per (table, experiment) under ``<store>/_search_state/<table>/``, holding the
resolved rows of :class:`~sparktrack._store.current_state.CurrentState` and the Delta data files
those rows were resolved from. A process that finds it loads it and, exactly as for a snapshot in
memory, merges in the files committed since, or rebuilds if a file it covers is gone. The files
are a cache: deleting them is always safe, a file that cannot be read is ignored and
replaced, and the Delta tables stay the only source of truth. Local stores only; on object
stores the state lives in memory alone.

Saving happens on one background thread per process (:meth:`StateFiles.save` returns at
once): encoding and compressing a state costs about as much as reading the tables it comes
from, and the search that made the state need not wait for other processes' cache. A search
holds its saves until it is done (:func:`saves_held`), so it has every core to itself. Saves run
in the order they were asked for; loading or removing a state first waits for its pending
save, and a process waits for all of them before it exits (:func:`wait_for_saves` waits on
demand). A save that a newer one of the same file follows in the queue is skipped. When gc
removes runs, :meth:`StateFiles.remove` leaves a marker of the table version it reached
(``experiment_id=<id>.removed``), and no process writes a state of an older version after it:
a save queued before the gc would bring the removed runs' rows back to disk.

The layout of a file (:func:`write_file`, :func:`read_file`)::

    SPARKTRACK-STATE-3\n | header length (8 bytes, little-endian) | header (JSON) | padding
    | the rows as an Arrow IPC file

The rows are stored small and in parts (:mod:`sparktrack._store.stored_rows`): string columns
dictionary-encoded (a run id once per run, not once per param), rows grouped by key, and states
of more than ``COMPRESS_FROM_BYTES`` compressed with zstd. At 100,000 runs with 10 params and
10 metrics that is about 35 MB, less than the tables it summarizes, where the rows in memory
take 220 MB. A loaded state is decoded a part at a time as a search asks for it: the keys it
names and the rows of its page, all rows only when they are needed (an update, an all-runs
frame). The header lists the key of each record batch (``batches``) and where each IPC file
is (``parts``: the compressed columns', and the metric values' kept as they are).

A file that still parses can still be wrong (one changed byte changes a metric), so the header
holds a CRC-32 checksum of what the file covers (its table, experiment, table version and data
files) and of the stored bytes of its rows. A file whose checksum does not match is ignored and
replaced like an unreadable one. The check reads the stored bytes once (about 10 ms for 35 MB).
It catches any one changed byte and misses other damage with odds of about 1 in 4 billion. It
guards against accidents (a bad disk, an interrupted copy, a hand edit), not against someone who
can write the store.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import NamedTuple

import pyarrow as pa

from sparktrack._store.atomic_file import replace_file
from sparktrack._store.schemas import SCHEMA_VERSION
from sparktrack._store.stored_rows import Encoded, StoredRows, decoded, encode, read_all

__all__ = ["LoadedState", "SavedState", "StateFiles", "read_file", "saves_held",
           "wait_for_saves", "write_file"]

logger = logging.getLogger(__name__)

FOLDER = "_search_state"
MAGIC = b"SPARKTRACK-STATE-3\n"
_OLDER_MAGIC = b"SPARKTRACK-STATE-"  # how the files of other layouts of this header begin
# States this big (in memory) are compressed; smaller ones are stored as they are.
COMPRESS_FROM_BYTES = 1 << 20
_WINDOW_ROWS = 1 << 20  # rows encoded at a time when saving
_ALIGNMENT = 64  # the rows start at a multiple of it: Arrow reads them in place
_ARROW_FILE_MAGIC = b"ARROW1"  # how the files of older sparktracks (an Arrow IPC file) begin


# The background saver: one thread, so saves of one file land in the order they were made.
_saver: ThreadPoolExecutor | None = None
_pending: dict[str, Future] = {}  # path -> its latest save not known to be done
_saver_lock = threading.Lock()


_held_depth = 0  # how many saves_held blocks are open in this process
_held_saves: list[tuple[str, Callable[[], None]]] = []


@contextmanager
def saves_held() -> Iterator[None]:
    """Start the saves asked for during this block when it ends, not at once.

    A first search builds its state and asks for it to be saved before it is done: encoding
    the state in the background while the search still filters and pages would take half of
    the cores from it. The hold is the process's (a search builds its tables' states on
    threads of its own); blocks may nest and overlap, and the last one to end starts the
    saves, also when it raises (the states are complete)."""
    global _held_depth, _held_saves
    with _saver_lock:
        _held_depth += 1
    try:
        yield
    finally:
        with _saver_lock:
            _held_depth -= 1
            saves, _held_saves = (_held_saves, []) if _held_depth == 0 else ([], _held_saves)
        for path, save in saves:
            _save_in_background(path, save)


def wait_for_saves() -> None:
    """Wait until every state save asked for so far is on disk (or has failed and been logged)."""
    with _saver_lock:
        pending = list(_pending.values())
    for future in pending:
        future.result()


def _wait_for_save(path: str) -> None:
    with _saver_lock:
        pending = _pending.get(path)
    if pending is not None:
        pending.result()


def _save_in_background(path: str, save) -> None:
    global _saver
    with _saver_lock:
        if _saver is None:
            # Its worker is joined at interpreter exit after the queued saves ran.
            # At normal priority: a process that exits (or flushes) waits for it, and a niced
            # thread starved by other busy processes kept a test waiting 110 s for 1 s of work.
            _saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparktrack-state-save")
        future = _saver.submit(_unless_superseded, path, save)
        _pending[path] = future

    def forget(done: Future) -> None:
        with _saver_lock:
            if _pending.get(path) is done:
                del _pending[path]

    future.add_done_callback(forget)


def _unless_superseded(path: str, save) -> None:
    """Run ``save`` unless a newer save of the same file is queued (it would replace it)."""
    with _saver_lock:
        newest = _pending.get(path)
    # This save is the one running: a newer one still queued would replace what it writes.
    if newest is not None and not newest.running():
        return
    save()


class SavedState(NamedTuple):
    """A state to save: the rows resolved from ``files`` at table version ``version``, or a
    function giving them (called on the saving thread: rows still to decode are decoded
    there, not by the search that asked for the save)."""

    version: int
    files: frozenset[str]
    rows: pa.Table | Callable[[], pa.Table]
    #: The runs' ids in the order to store the rows' run ids (a hint: see stored_rows.encode).
    run_order: Callable[[], pa.Array | None] | None = None


class LoadedState(NamedTuple):
    """A saved state as loaded: its rows are decoded on demand."""

    version: int
    files: frozenset[str]
    stored: StoredRows

    @property
    def rows(self) -> pa.Table:
        """Every row, decoded."""
        return self.stored.all()


class StateFiles:
    """The saved search state of one table (``None`` folder: saving is off)."""

    def __init__(self, folder: str | None, schema: pa.Schema) -> None:
        self._folder = folder
        self._schema = schema
        # Part of every checksum: a state copied under another table's name does not verify.
        self._table = os.path.basename(folder) if folder is not None else ""

    @property
    def enabled(self) -> bool:
        """Whether states are saved (a local store); on object stores nothing is."""
        return self._folder is not None

    @classmethod
    def for_table(cls, root: str, table: str, schema: pa.Schema) -> StateFiles:
        local = "://" not in root
        return cls(os.path.join(root, FOLDER, table) if local else None, schema)

    def _path(self, experiment_id: str) -> str | None:
        if self._folder is None:
            return None
        return os.path.join(self._folder, f"experiment_id={experiment_id}.arrow")

    def load(self, experiment_id: str) -> LoadedState | None:
        """The saved state of an experiment, or None (none saved, unreadable, other schema, or
        its checksum does not match)."""
        path = self._path(experiment_id)
        if path is None:
            return None
        _wait_for_save(path)
        if not os.path.exists(path):
            return None
        try:
            header, stored = _read_parts(path)
            if header is None:
                logger.warning("Ignoring search state %s: it was saved by an older sparktrack; "
                               "it is rebuilt from the tables", path)
                return None
            if int(header["schema_version"]) != SCHEMA_VERSION:
                return None
            version, files = int(header["version"]), frozenset(header["files"])
            batches = [None if key is None else str(key) for key in header["batches"]]
            parts = [(int(offset), int(length)) for offset, length in header["parts"]]
            if header["checksum"] != self._checksum(experiment_id, version, files,
                                                    _layout(batches, parts), stored):
                logger.warning(
                    "Ignoring search state %s: its content or the table version it covers does "
                    "not match its checksum (it is rebuilt from the tables)", path,
                )
                return None
            return LoadedState(version, files, StoredRows(stored, batches, self._schema,
                                                          parts=parts))
        except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
            # TypeError: a header that parses as JSON of the wrong shape (files not strings).
            logger.warning("Ignoring unreadable search state %s (it is rebuilt): %s", path, exc)
            return None

    def exists(self, experiment_id: str) -> bool:
        """Whether a state of the experiment is saved (or being saved); not whether it loads."""
        path = self._path(experiment_id)
        if path is None:
            return False
        with _saver_lock:
            if path in _pending:
                return True
        return os.path.exists(path)

    def save(self, experiment_id: str, state: SavedState) -> None:
        """Replace the saved state of an experiment, in the background (atomically; a failure
        is only logged): ``state`` must not change afterwards."""
        path = self._path(experiment_id)
        if path is None:
            return
        save = lambda: self._save_now(path, experiment_id, state)  # noqa: E731
        with _saver_lock:
            if _held_depth:
                _held_saves.append((path, save))
                return
        _save_in_background(path, save)

    def _save_now(self, path: str, experiment_id: str, state: SavedState) -> None:
        try:
            if not self._make_folder():
                # The store was moved or deleted since the search: saving must not bring its
                # folder back.
                logger.debug("Not saving search state %s: its store is gone", path)
                return
            encoded = _stored_rows(
                state.rows() if callable(state.rows) else state.rows,
                run_order=state.run_order() if state.run_order is not None else None)
            layout = _layout(encoded.batch_keys, encoded.parts)
            header = {
                "version": state.version,
                "files": sorted(state.files),
                "schema_version": SCHEMA_VERSION,
                **layout,
                "checksum": self._checksum(experiment_id, state.version, state.files, layout,
                                           encoded.stored),
            }
            if self._removed_after(path, state.version):
                logger.debug("Not saving search state %s: runs were removed since", path)
                return
            _write_parts(path, header, encoded.stored)
        except Exception as exc:  # a cache: nothing may escape a background thread unseen
            logger.warning("Could not save search state %s: %s", path, exc)

    def _make_folder(self) -> bool:
        """Create ``<store>/_search_state/<table>`` but never the store's own folder: False
        if that is gone."""
        folder_of_table = str(self._folder)
        for folder in (os.path.dirname(folder_of_table), folder_of_table):
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except FileNotFoundError:
                return False
        return True

    def _checksum(self, experiment_id: str, version: int, files: frozenset[str],
                  layout: dict, stored: pa.Buffer) -> str:
        """CRC-32 (8 hex digits) of what a state covers, how its rows are laid out (the key of
        each stored part, where the plain part starts) and the stored bytes of its rows."""
        covered = json.dumps({
            "table": self._table,
            "experiment_id": experiment_id,
            "schema_version": SCHEMA_VERSION,
            "version": version,
            "files": sorted(files),
            **layout,
        })
        crc = zlib.crc32(covered.encode())
        return f"{zlib.crc32(stored, crc):08x}"  # the stored (mapped) bytes, no copy

    def remove(self, experiment_id: str, *, table_version: int | None = None) -> None:
        """Delete the saved state of an experiment (gc: removed runs must not linger in it).

        Args:
            table_version: the table's version once the runs were removed. No process saves
                a state of an older version of the experiment afterwards: one that searched
                before the removal and saves in the background would bring the runs back.
        """
        path = self._path(experiment_id)
        if path is None:
            return
        _wait_for_save(path)  # this process's pending save
        if table_version is not None and self._make_folder():
            # Other processes' saves check it just before they write (only a save between
            # that check and its write when the marker lands slips through: microseconds).
            replace_file(self._removed_path(path), str(table_version).encode())
        if os.path.exists(path):
            os.remove(path)

    @staticmethod
    def _removed_path(path: str) -> str:
        return f"{path[:-len('.arrow')]}.removed"

    def _removed_after(self, path: str, version: int) -> bool:
        """Whether rows were removed from the table after ``version`` (a state of it may hold
        them)."""
        try:
            with open(self._removed_path(path), "rb") as marker:
                return int(marker.read()) > version
        except (FileNotFoundError, NotADirectoryError):
            return False  # none (a broken folder fails the write itself, with a warning)
        except (OSError, ValueError):
            return True  # unreadable: do not risk saving removed rows


def write_file(path: str, header: dict, rows: pa.Table) -> None:
    """Write a state file of ``rows`` with ``header`` as it is (no checksum is computed), but
    for the layout of the rows (:func:`_layout`), which is that of ``rows`` as stored."""
    encoded = _stored_rows(rows)
    _write_parts(path, {**header, **_layout(encoded.batch_keys, encoded.parts)},
                 encoded.stored)


def read_file(path: str) -> tuple[dict, pa.Table]:
    """The header and the stored rows of a state file, unchecked (for inspection and tests).

    Raises:
        ValueError: not a state file of this layout.
    """
    header, stored = _read_parts(path)
    if header is None:
        raise ValueError(f"{path} is not a sparktrack search state file of this version")
    return header, read_all(stored, parts=header.get("parts"))


def _stored_rows(rows: pa.Table, *, run_order: pa.Array | None = None) -> Encoded:
    """``rows`` as stored (compressed if large)."""
    return encode(rows, window_rows=_WINDOW_ROWS, compress=rows.nbytes >= COMPRESS_FROM_BYTES,
                  run_order=run_order)


def _layout(batch_keys: list[str | None], parts: list[tuple[int, int]]) -> dict:
    """What the header says of how the rows are stored: the key of each record batch, and
    the (offset, length) of each IPC file (the compressed columns', the plain ones')."""
    return {"batches": batch_keys, "parts": [list(part) for part in parts]}


def _decoded(rows: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """Stored rows back in ``schema`` (dictionaries decoded); None if they do not fit it."""
    return decoded(rows, schema)


def _write_parts(path: str, header: dict, stored: pa.Buffer) -> None:
    encoded = json.dumps(header).encode()
    start = len(MAGIC) + 8 + len(encoded)
    padding = b"\0" * (-start % _ALIGNMENT)
    replace_file(path, MAGIC + struct.pack("<q", len(encoded)) + encoded + padding, stored)


def _read_parts(path: str) -> tuple[dict | None, pa.Buffer]:
    """(header, stored rows) of a state file, header None for a file of an older layout.

    Raises:
        ValueError: neither layout, or a truncated header.
    """
    # Read, not mapped: the rows are decoded later, from the bytes the checksum was checked on
    # (a mapped file changed or truncated in place meanwhile would change them, or crash).
    with pa.OSFile(path, "rb") as source:
        content = source.read_buffer()
    head = content.slice(0, len(MAGIC)).to_pybytes()
    if head.startswith(_ARROW_FILE_MAGIC) or (head.startswith(_OLDER_MAGIC) and head != MAGIC):
        return None, content
    if head != MAGIC or content.size < len(MAGIC) + 8:
        raise ValueError("not a search state file")
    (length,) = struct.unpack("<q", content.slice(len(MAGIC), 8).to_pybytes())
    start = len(MAGIC) + 8
    if not 0 <= length <= content.size - start:
        raise ValueError(f"header length {length} does not fit the file")
    header = json.loads(content.slice(start, length).to_pybytes())
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    stored_at = start + length + (-(start + length) % _ALIGNMENT)
    return header, content.slice(stored_at)

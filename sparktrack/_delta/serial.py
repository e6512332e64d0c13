"""Serial commits: commit as version N + 1 of a table read at version N, or not at all.

Delta's own writers rebase an append onto whatever was committed in the meantime. That is right
for rows that never conflict, and wrong for a change that was only valid against the state it
was decided on ("version 4 of model m is mine", "stage Production replaces Staging"). A serial
commit succeeds only as the version right after the one its caller read; when another writer
got there first it says so, and the caller reads the new commits (:meth:`SerialLog.since`) and
decides again. Every change of such a table is then ordered as if one writer made them all.

On a local folder the log entry is written unnamed and hard-linked into place, which is atomic
and fails if the entry exists (what deltalake itself does there, with a named aside):
:mod:`.unnamed_files`. A commit costs a fraction of a millisecond instead of deltalake's
~10 ms. Elsewhere (object stores) deltalake commits it, with no retry, so that a lost race is
reported rather than rebased.

Used for the model registry's small, unpartitioned tables.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction

from sparktrack._delta import ops, small_parquet
from sparktrack._delta.unnamed_files import publish, unique_suffix
from sparktrack._delta.errors import store_error, translated
from sparktrack._delta.paths import filesystem, in_base, is_local, local_path
from sparktrack._delta.scan import read_parquet_file
from sparktrack.errors import StoreError

if TYPE_CHECKING:
    from sparktrack._delta.table import DeltaTableHandle

__all__ = ["SerialLog", "Tail", "TailCommit"]

# deltalake checkpoints every 100 commits after its own writes; serial commits keep that pace so
# that opening a table never replays more than 100 JSON entries.
_CHECKPOINT_INTERVAL = 100
# Log entries are cleaned up once older than the log retention (30 days unless a table says
# otherwise). If the entry after the version a reader knows is missing and the reader looked
# at the log less than this long ago, that entry was never written (it would be younger than
# the look), so the cleanup need not be checked.
_CLEANUP_AGE = 3600.0
# Versions an append tries before giving up: each lost one is another writer's commit.
_MAX_APPENDS = 1000


@dataclass(frozen=True, slots=True)
class TailCommit:
    """One commit of a tail: its version, the custom keys of its commit info, its files."""

    version: int
    metadata: dict[str, str]
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tail:
    """What was committed after a version, up to ``version``: the rows added and the commits."""

    version: int
    rows: pa.Table
    commits: tuple[TailCommit, ...] = ()


class SerialLog:
    """Serial commits to, and incremental reads of, one unpartitioned table."""

    def __init__(self, handle: DeltaTableHandle, *, fast_local_path: bool = True,
                 checkpoint_later: Callable[[SerialLog], None] | None = None) -> None:
        """``fast_local_path=False`` commits through deltalake on local tables too, as on
        object stores. ``checkpoint_later`` takes the checkpoints that fall due (every 100th
        commit) to write them off the committer's path (it calls :meth:`checkpoint`); without
        it the commit that falls due writes the checkpoint."""
        if handle.spec.partition_by:
            raise ValueError(f"serial commits need an unpartitioned table, not {handle.uri}")
        self.handle = handle
        self.schema = handle.spec.schema
        self._local = (local_path(handle.uri)
                       if fast_local_path and is_local(handle.uri) else None)
        self._local_prefix = (os.path.join(self._local, "")
                              if self._local is not None else None)
        self._next_free = 0  # a guess at the next version :meth:`append` can take
        self._empty = self.schema.empty_table()
        self._looked_at = -float("inf")  # when :meth:`since` last read the log
        self._checkpoint_later = checkpoint_later
        self._encoder = (small_parquet.Encoder(self.schema)
                         if small_parquet.supports(self.schema) else None)

    # -- reading ---------------------------------------------------------------------------
    def load(self) -> tuple[int, pa.Table]:
        """The newest version (-1 if the table does not exist yet) and all its rows."""
        return self.handle.read_versioned()

    def since(self, version: int, *, rows: bool = True) -> Tail | None:
        """What was committed after ``version`` (the rows only if ``rows``), or None when it
        cannot be told from the log alone (rows were removed or rewritten, the schema changed,
        or the log entries were cleaned up): the caller then loads the table again."""
        if version < 0:  # no table yet: still none, or load the one created since
            return Tail(version, self._empty) if self._entry(0) is None else None
        tables, commits, newest = [], [], version
        while True:
            actions = self._entry(newest + 1)
            if actions is None:
                break
            commit = _tail_commit(newest + 1, actions)
            if commit is None:
                return None
            if rows:
                try:
                    tables.extend(self._read(path) for path in commit.paths)
                except FileNotFoundError:
                    return None  # compacted and vacuumed since: the table holds the rows now
            commits.append(commit)
            newest += 1
        now = time.monotonic()
        if newest == version and now - self._looked_at > _CLEANUP_AGE and \
                self._cleaned_up_past(version):
            return None
        self._looked_at = now
        return Tail(newest, pa.concat_tables(tables) if tables else self._empty, tuple(commits))

    def commits(self, first: int, last: int) -> list[TailCommit] | None:
        """The commits ``first .. last``, of any kind, with the custom keys of their commit
        info and the files they add (None if the entry of one of them is gone)."""
        found = []
        for number in range(max(first, 0), last + 1):
            actions = self._entry(number)
            if actions is None:
                return None
            found.append(_tail_commit(number, actions, appends_only=False))
        return found

    def _entry(self, number: int) -> list[dict] | None:
        """The actions of log entry ``number``, None if there is none (yet)."""
        try:
            text = self._entry_text(f"_delta_log/{number:020d}.json")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise store_error("reading the Delta log of", self.handle.uri, exc) from exc
        try:
            return [json.loads(line) for line in text.decode("utf-8").splitlines() if line.strip()]
        except ValueError as exc:
            raise StoreError(
                f"broken Delta log of {self.handle.uri}: commit {number} is not valid JSON "
                f"({exc}). Restore the table's _delta_log folder from a backup."
            ) from exc

    def _cleaned_up_past(self, version: int) -> bool:
        """Whether the log was checkpointed past ``version`` (its entries may be gone)."""
        try:
            pointer = self._entry_text("_delta_log/_last_checkpoint")
        except FileNotFoundError:
            return False
        try:
            return int(json.loads(pointer)["version"]) > version
        except (ValueError, KeyError, TypeError):
            return True  # unreadable: load the table instead of trusting the tail

    def _entry_text(self, name: str) -> bytes:
        """The bytes of the log file ``name`` (relative to the table); FileNotFoundError."""
        if self._local is not None:
            # Most looks find no new entry: one system call, no path joined.
            return _read_local(self._local_prefix + name)
        fs, base = filesystem(self.handle.uri, self.handle.storage_options)
        with fs.open_input_stream(in_base(base, name)) as entry:
            return entry.read()

    def _read(self, path: str) -> pa.Table:
        """The rows of one data file; FileNotFoundError if it is gone."""
        if self._local is not None:
            where, fs = os.path.join(self._local, path), None
            if not os.path.exists(where):
                raise FileNotFoundError(where)
        else:
            fs, base = filesystem(self.handle.uri, self.handle.storage_options)
            where = in_base(base, path)
        with translated("reading a data file of", self.handle.uri):
            rows = read_parquet_file(fs, where)
        return rows.select(self.schema.names).cast(self.schema)

    # -- writing ---------------------------------------------------------------------------
    def commit_next(self, version: int, rows: pa.Table | Sequence[dict], *,
                    metadata: dict[str, str] | None = None, name: str | None = None) -> bool:
        """Commit ``rows`` as version ``version + 1``; False if that version exists already.

        ``rows`` is a table or a list of rows (dicts by column name, as ``to_pylist`` gives
        them), which is encoded without Arrow when the table's column types allow
        (:mod:`.small_parquet`).

        ``version`` is the one the caller's decision was based on (-1: the table did not exist;
        it is created first, and the caller must read it again). With ``name``, the data file
        is ``<name>.parquet``, written only if missing: two writers that commit the same rows
        under the same name (a change's events, by its writer and by a repair) leave one file,
        and Delta's snapshot lists a path once however often it was added.
        """
        if version < 0:
            self.handle.ensure_created()
            return False
        encoded, count = self._encoded(rows)
        if self._local is not None:
            committed = self._commit_local(version + 1, encoded, count, metadata or {}, name)
        else:
            committed = self._commit_with_deltalake(version, encoded, count, metadata or {},
                                                    name)
        if committed and (version + 1) % _CHECKPOINT_INTERVAL == 0:
            if self._checkpoint_later is not None:
                self._checkpoint_later(self)
            else:
                self.checkpoint()
        return committed

    def append(self, rows: pa.Table | Sequence[dict], *, metadata: dict[str, str] | None = None,
               name: str | None = None) -> int:
        """Commit ``rows`` at the next free version, whatever it is (rows that conflict with
        nothing, such as history); the version committed. ``name`` as in :meth:`commit_next`."""
        version = self._next_free - 1
        for _ in range(_MAX_APPENDS):
            if self.commit_next(version, rows, metadata=metadata, name=name):
                self._next_free = version + 2
                return version + 1
            version = self._newest_from(version)
        raise StoreError(
            f"could not append to {self.handle.uri}: other writers committed first "
            f"{_MAX_APPENDS} times in a row. Retry the call."
        )

    def _newest_from(self, version: int) -> int:
        """The newest version, looking forward from ``version`` (known to exist, or -1)."""
        if self._local is None or version < 0:
            newest = self.handle.version()
            return -1 if newest is None else newest
        while os.path.exists(os.path.join(self._local, f"_delta_log/{version + 1:020d}.json")):
            version += 1
        return version

    def _encoded(self, rows: pa.Table | Sequence[dict]) -> tuple[bytes, int]:
        """``rows`` as a small Parquet file, and how many there are."""
        if isinstance(rows, pa.Table):
            if not rows.schema.equals(self.schema):
                rows = rows.select(self.schema.names).cast(self.schema)
            return _parquet_bytes(rows), rows.num_rows
        if self._encoder is not None:
            return self._encoder.encode(rows), len(rows)
        return _parquet_bytes(pa.Table.from_pylist(list(rows), schema=self.schema)), len(rows)

    def _commit_local(self, number: int, encoded: bytes, count: int,
                      metadata: dict[str, str], named: str | None) -> bool:
        name = f"{named}.parquet" if named else _data_file_name()
        data = os.path.join(self._local, name)
        try:
            if named:
                _write_once(encoded, data)
            elif not publish(encoded, self._local, name):
                raise FileExistsError(errno.EEXIST, "a data file of this name exists", data)
            entry = _log_entry(name, len(encoded), count, metadata).encode("utf-8")
            # Atomic, and refused if the entry exists: the race for this version is lost.
            if not publish(entry, os.path.join(self._local, "_delta_log"),
                           f"{number:020d}.json"):
                if not named:  # a named file may be another writer's, committed or about to be
                    os.remove(data)
                return False
        except OSError as exc:
            raise store_error(f"committing {count} row(s) to", self.handle.uri, exc) from exc
        return True

    def _commit_with_deltalake(self, version: int, encoded: bytes, count: int,
                               metadata: dict[str, str], named: str | None) -> bool:
        table = self.handle.snapshot(version=version)
        fs, base = filesystem(self.handle.uri, self.handle.storage_options)
        # Object stores have no create-if-missing here: a named file written twice holds the
        # same rows both times.
        name = f"{named}.parquet" if named else _data_file_name()
        with translated(f"committing {count} row(s) to", self.handle.uri):
            with fs.open_output_stream(in_base(base, name)) as sink:
                sink.write(encoded)
            add = AddAction(name, len(encoded), {}, int(time.time() * 1000), True,
                            _stats(count))
            try:
                table.create_write_transaction(
                    [add], mode="append", schema=self.schema,
                    commit_properties=CommitProperties(max_commit_retries=0,
                                                       custom_metadata=metadata),
                )
            except CommitFailedError:
                if not named:
                    fs.delete_file(in_base(base, name))
                return False
        return True

    def checkpoint(self) -> None:
        """Write a checkpoint of the log (it only speeds up opening the table: failing to write
        one loses nothing, and maintenance writes one later)."""
        try:
            ops.checkpoint(self.handle)
        except StoreError:
            pass


def _log_entry(name: str, size: int, count: int, metadata: dict[str, str]) -> str:
    """The Delta log entry that adds the data file ``name``: commit info, then the add action
    (each a line of JSON; written out here, as building the dicts for ``json.dumps`` cost a
    tenth of a commit)."""
    now = time.time_ns() // 1_000_000
    custom = json.dumps(metadata)[1:-1]  # the keys are sparktrack.*: none of the fixed ones
    return (
        f'{{"commitInfo": {{"timestamp": {now}, "operation": "WRITE", '
        f'"operationParameters": {{"mode": "Append"}}, "clientVersion": "sparktrack-serial"'
        f'{", " if custom else ""}{custom}}}}}\n'
        f'{{"add": {{"path": {json.dumps(quote(name))}, "partitionValues": {{}}, '
        f'"size": {size}, "modificationTime": {now}, "dataChange": true, '
        f'"stats": {json.dumps(_stats(count))}}}}}\n'
    )


def _parquet_bytes(rows: pa.Table) -> bytes:
    """``rows`` as a small Parquet file, as :mod:`.small_parquet` writes them (in memory:
    written then with one system call)."""
    # A serial commit holds a row or a few: compression, dictionaries and column statistics
    # would cost more than the rest of the commit (1.2 ms against 0.4 ms here) and save a few
    # hundred bytes; compaction rewrites the files compressed. Nor is the Arrow schema stored
    # (a fifth of the encoding, and 40% of the file): the Parquet types say the same for these
    # tables' columns, and every reader casts to the table's schema.
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink, compression="none", use_dictionary=False,
                   write_statistics=False, store_schema=False)
    return sink.getvalue().to_pybytes()


def _data_file_name() -> str:
    """A new data file's name (uncompressed: see :func:`_parquet_bytes`)."""
    return f"part-00000-{unique_suffix()}-c000.parquet"


def _read_local(path: str) -> bytes:
    """The bytes of a local file; FileNotFoundError if there is none."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(descriptor, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _stats(count: int) -> str:
    # Only the row count: min/max statistics serve file pruning, which tables of a few
    # thousand rows do not need.
    return f'{{"numRecords": {count}}}'


def _write_once(data: bytes, path: str) -> None:
    """Write ``data`` at ``path`` unless a file is there (another writer's, with the same
    rows)."""
    if not os.path.exists(path):
        publish(data, os.path.dirname(path), os.path.basename(path))


def _tail_commit(number: int, actions: list[dict], *,
                 appends_only: bool = True) -> TailCommit | None:
    """The commit of these log actions; with ``appends_only``, None if it is more than
    appends (a reload is due)."""
    metadata: dict[str, str] = {}
    paths = []
    for action in actions:
        if ("metaData" in action or "protocol" in action) and appends_only:
            return None
        if "commitInfo" in action:
            info = action["commitInfo"] or {}
            metadata = {k: v for k, v in info.items() if k.startswith("sparktrack.")}
            continue
        change = action.get("add") or action.get("remove")
        if change is None or not change.get("dataChange", True):
            continue  # compaction re-adding the same rows
        if "remove" in action:
            if appends_only:
                return None
            continue
        paths.append(unquote(change["path"]))
    return TailCommit(number, metadata, tuple(paths))

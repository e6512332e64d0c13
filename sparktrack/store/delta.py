"""One Delta table of the store: create on first use, append with retries, read a snapshot.

This is the only module that talks to ``deltalake``. Appends never conflict logically under
Delta's optimistic concurrency, so a commit that loses a race is simply retried; any other
failure is translated into :class:`StoreError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from sparktrack.errors import StoreError
from sparktrack.store.schemas import SCHEMA_VERSION, TableSpec

__all__ = ["Commit", "DeltaTableHandle", "PruningFilter", "join_uri"]

# A file-pruning filter in deltalake's tuple form, e.g. [("experiment_id", "in", ["1", "2"])].
PruningFilter = Sequence[tuple[str, str, Any]]

# zstd keeps the metric history small on disk; dictionary encoding does the rest for run ids/keys.
_WRITER_PROPERTIES = WriterProperties(compression="ZSTD", compression_level=3)


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit of a table's Delta log: its version, commit info and the data files it added.

    ``metadata`` holds the custom keys sparktrack wrote into the commit info (e.g. the
    ``sparktrack.batch`` id of a write-buffer commit); ``added`` the paths (relative to the
    table) of files added with ``dataChange`` (compaction re-adds rows and is left out).
    """

    version: int
    timestamp_ms: int
    metadata: dict[str, str]
    added: tuple[str, ...]


def join_uri(root: str, *parts: str) -> str:
    """Join a store root (local folder or object-store URI) with relative parts."""
    return "/".join([root.rstrip("/"), *[part.strip("/") for part in parts]])


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


# What the engines (deltalake, Arrow, the OS) raise when a store cannot be read or written.
# Each is translated into a StoreError at this module's boundary, cause first.
_ENGINE_ERRORS = (DeltaError, OSError, pa.ArrowException)
# Causes a retry cannot fix: a commit fails at once instead of after its backoff.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_QUOTED_PATH = re.compile(r"(?:file|path|directory)[: ]+'?(/[^'\s:#]+)", re.IGNORECASE)
_DATA_FILE = re.compile(r"'([^'\s]+\.parquet)'")


def _engine_message(exc: BaseException) -> str:
    """The engine's message without the Rust backtrace and colour codes, on one line."""
    lines = []
    for line in _ANSI.sub("", str(exc)).splitlines():
        stripped = line.strip().lstrip("↳").strip()
        # deltalake appends a backtrace: "0: <unknown>", "at ./nptl/pthread_create.c:442:8".
        if re.match(r"^\d+: ", stripped) or stripped.startswith("at "):
            break
        if stripped:
            lines.append(stripped)
    message = " ".join(lines) or type(exc).__name__
    return message if len(message) <= 300 else message[:297] + "..."


def _errno_of(exc: BaseException, message: str) -> int | None:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = re.search(r"os error (\d+)", message)
    if found:
        return int(found.group(1))
    for code, text in ((errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
                       (errno.ENOENT, "no such file or directory"),
                       (errno.ENOSPC, "no space left on device")):
        if text in message.lower():
            return code
    return None


def _path_of(exc: BaseException, message: str, uri: str) -> str:
    """The file the engine names in its message, else the table."""
    if isinstance(exc, OSError) and exc.filename:
        return str(exc.filename)
    found = _QUOTED_PATH.search(message) or _DATA_FILE.search(message)
    if found is None:
        return uri
    path = found.group(1)
    # Arrow names a file of a Delta dataset relative to the table.
    return path if path.startswith("/") or "://" in path else join_uri(uri, path)


def _store_error(what: str, uri: str, exc: BaseException) -> StoreError:
    """A StoreError for ``exc``, met while doing ``what`` to the table at ``uri``.

    The message starts with the cause (``permission denied on <path>``, ``corrupt data file
    <path>``, ...) and says how to fix it; the engine's own message follows in parentheses.
    """
    message = _engine_message(exc)
    code = _errno_of(exc, message)
    path = _path_of(exc, message, uri)
    if code in (errno.EACCES, errno.EPERM):
        cause = f"permission denied on {path}"
        fix = ("Check that this process may read and write the store (owner and mode of its "
               "folders, a read-only mount).")
    elif code == errno.EROFS:
        cause, fix = f"read-only file system at {path}", "Use a writable location for the store."
    elif code in (errno.ENOSPC, errno.EDQUOT):
        cause, fix = f"no space left for {path}", "Free disk space (or quota) for the store."
    elif code == errno.ENOENT:
        cause = f"missing file {path}"
        fix = ("The Delta log still refers to it: restore it from a backup, or drop it from "
               "the log with deltalake's DeltaTable.repair().")
    elif isinstance(exc, pa.ArrowInvalid) or "parquet" in message.lower():
        cause = f"corrupt data file {path}"
        fix = ("Restore the file from a backup; or, giving up its rows, move it away and run "
               "deltalake's DeltaTable(<table>).repair().")
    elif isinstance(exc, DeltaError) and re.search(
        r"json|log|metadata|protocol|checkpoint|version", message, re.IGNORECASE
    ):
        cause = f"broken Delta log of {uri}"
        fix = "Restore the table's _delta_log folder from a backup."
    else:
        cause, fix = f"{what} failed", ""
    return StoreError(f"{cause}: {what} {uri} failed ({message}). {fix}".rstrip())


def _is_permanent(exc: BaseException) -> bool:
    """Whether a failed commit would fail again however often it is retried."""
    return _errno_of(exc, _engine_message(exc)) in _PERMANENT_ERRNOS


class DeltaTableHandle:
    """A table of the store, opened lazily and refreshed incrementally before each read."""

    def __init__(
        self,
        root: str,
        spec: TableSpec,
        *,
        storage_options: dict[str, str] | None = None,
        commit_retries: int = 8,
    ) -> None:
        self.spec = spec
        self.uri = join_uri(root, spec.name)
        self._storage_options = storage_options
        self._commit_retries = commit_retries
        self._table: DeltaTable | None = None
        # Local tables are read through Arrow's own filesystem: faster than deltalake's Python
        # one, and its I/O threads never need the GIL, so a read finishing as the interpreter
        # exits cannot abort it (Arrow's "terminate called without an active exception").
        self._filesystem = (
            pafs.SubTreeFileSystem(self.uri.removeprefix("file://"), pafs.LocalFileSystem())
            if _is_local(self.uri) else None
        )
        self._datasets: dict[tuple[int, str], pds.Dataset] = {}
        self._lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------
    def append(self, rows: pa.Table, *, metadata: dict[str, str] | None = None) -> None:
        """Commit ``rows`` as one Delta commit, creating the table on first use.

        ``metadata`` goes into the commit info (see :meth:`commits_since`).
        """
        if rows.num_rows == 0:
            return
        rows = rows.select(self.spec.schema.names).cast(self.spec.schema)
        self._ensure_created()
        attempt = 0
        while True:
            try:
                write_deltalake(
                    self.uri,
                    rows,
                    mode="append",
                    partition_by=list(self.spec.partition_by) or None,
                    storage_options=self._storage_options,
                    writer_properties=_WRITER_PROPERTIES,
                    commit_properties=CommitProperties(
                        max_commit_retries=50, custom_metadata=metadata
                    ),
                )
                return
            except _ENGINE_ERRORS as exc:
                # A lost race (or a passing I/O error) is retried; a read-only, unreadable or
                # broken store fails at once, cause first.
                retryable = isinstance(exc, CommitFailedError) or (
                    isinstance(exc, OSError) and not _is_permanent(exc)
                )
                attempt += 1
                if not retryable or attempt > self._commit_retries:
                    error = _store_error(f"committing {rows.num_rows} row(s) to", self.uri, exc)
                    raise StoreError(
                        f"{error} (after {attempt} attempt(s); the rows are kept and retried "
                        "on the next flush)"
                    ) from exc
                time.sleep(min(2.0, 0.01 * 2**attempt) * (0.5 + random.random()))

    def _ensure_created(self) -> None:
        if self._table is not None:
            return
        with self._lock:
            if self._table is not None:
                return
            if _is_local(self.uri):
                try:
                    os.makedirs(self.uri.removeprefix("file://"), exist_ok=True)
                except OSError as exc:
                    raise _store_error("creating Delta table", self.uri, exc) from exc
            for attempt in range(self._commit_retries + 1):
                try:
                    self._table = DeltaTable.create(
                        self.uri,
                        self.spec.schema,
                        mode="ignore",
                        partition_by=list(self.spec.partition_by) or None,
                        name=self.spec.name,
                        description=f"sparktrack schema v{SCHEMA_VERSION}: {self.spec.description}",
                        storage_options=self._storage_options,
                    )
                    return
                except _ENGINE_ERRORS as exc:
                    # Another process created it at the same moment: open theirs.
                    with self._translated("opening Delta table"):
                        exists = DeltaTable.is_deltatable(
                            self.uri, storage_options=self._storage_options
                        )
                        if exists:
                            self._table = self._open()
                            return
                    if attempt == self._commit_retries or _is_permanent(exc):
                        raise _store_error("creating Delta table", self.uri, exc) from exc
                    time.sleep(0.01 * (attempt + 1))

    # -- reading -------------------------------------------------------------------------
    def _open(self) -> DeltaTable:
        return DeltaTable(self.uri, storage_options=self._storage_options)

    def snapshot(self, *, version: int | None = None) -> DeltaTable | None:
        """The table at its newest (or the given) version, or None if it does not exist yet."""
        with self._lock:
            try:
                if version is not None:
                    table = self._open()
                    table.load_as_version(version)
                    return table
                if self._table is None:
                    self._table = self._open()
                else:
                    self._table.update_incremental()
                return self._table
            except TableNotFoundError as exc:
                if self._not_created_yet():
                    return None
                raise _store_error("reading Delta table", self.uri, exc) from exc
            except _ENGINE_ERRORS as exc:
                raise _store_error("reading Delta table", self.uri, exc) from exc

    def _not_created_yet(self) -> bool:
        """Whether deltalake's "table not found" means the table does not exist yet (it reads as
        empty), rather than a table this process cannot read or whose log is gone (StoreError).

        Only a local folder can be told apart; on an object store a missing log reads as empty.
        """
        if not _is_local(self.uri):
            return True
        path = self.uri.removeprefix("file://")
        try:
            entries = os.listdir(path)
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise _store_error("reading Delta table", self.uri, exc) from exc
        log = os.path.join(path, "_delta_log")
        try:
            log_entries = os.listdir(log) if "_delta_log" in entries else []
        except OSError as exc:
            raise _store_error("reading Delta table", self.uri, exc) from exc
        if log_entries or any(entry != "_delta_log" for entry in entries):
            # A creation in progress has an empty folder (and perhaps an empty log) only.
            raise StoreError(
                f"broken Delta log of {self.uri}: it holds "
                f"{', '.join(sorted(entries)[:5])} but deltalake finds no table version in "
                f"{log}. Restore the _delta_log folder from a backup."
            )
        return True

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Raise what the engines raise inside the block as StoreError naming this table (a
        lost commit race, CommitFailedError, is left to the caller to retry)."""
        try:
            yield
        except (StoreError, CommitFailedError):
            raise
        except _ENGINE_ERRORS as exc:
            raise _store_error(what, self.uri, exc) from exc

    def read(
        self,
        *,
        prune: PruningFilter | None = None,
        where: pds.Expression | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows of the current snapshot; ``prune`` skips whole files, ``where`` filters rows."""
        table = self.snapshot()
        for attempt in (1, 2):
            if table is None:
                schema = self.spec.schema
                if columns is not None:
                    schema = pa.schema([schema.field(name) for name in columns])
                return schema.empty_table()
            dataset = self._dataset(table, prune)
            try:
                return dataset.to_table(filter=where, columns=columns)
            except FileNotFoundError as exc:
                # A vacuum removed a file of the snapshot we planned with: plan again, once.
                # A file still missing then is one the Delta log refers to: a broken store.
                if attempt == 2:
                    raise _store_error("reading Delta table", self.uri, exc) from exc
            except _ENGINE_ERRORS as exc:
                raise _store_error("reading Delta table", self.uri, exc) from exc
            with self._lock:
                self._datasets.clear()
            table = self.snapshot()
        raise AssertionError("unreachable")

    def data_files(self, *, prune: PruningFilter | None = None) -> tuple[int, dict[str, Any]]:
        """The current version and its data files matching ``prune``, as {path: fragment}.

        With :meth:`read_files`, lets a reader that remembers which files it has read fetch only
        the ones committed since. Version -1 and no files when the table does not exist yet.
        """
        table = self.snapshot()
        if table is None:
            return -1, {}
        with self._translated("listing the files of Delta table"):
            fragments = self._dataset(table, prune).get_fragments()
            return table.version(), {fragment.path: fragment for fragment in fragments}

    def read_files(self, fragments: Sequence[Any]) -> pa.Table:
        """Rows of the given fragments of :meth:`data_files` (partition columns filled in).

        Raises:
            FileNotFoundError: a file was vacuumed since it was listed; list them again.
            StoreError: a file cannot be read (corrupt, no permission), or is missing although
                the newest version of the table still refers to it.
        """
        schema = self.spec.schema
        if not fragments:
            return schema.empty_table()
        first = fragments[0]
        dataset = pds.FileSystemDataset(
            list(fragments), schema, first.format, filesystem=first.filesystem
        )
        try:
            return dataset.to_table()
        except FileNotFoundError as exc:
            if self._still_referenced_missing(fragments):
                raise _store_error("reading Delta table", self.uri, exc) from exc
            raise
        except _ENGINE_ERRORS as exc:
            raise _store_error("reading Delta table", self.uri, exc) from exc

    def _still_referenced_missing(self, fragments: Sequence[Any]) -> bool:
        """Whether a file of ``fragments`` is gone although the newest snapshot still lists it
        (a damaged store), rather than vacuumed since the fragments were listed (a race)."""
        table = self.snapshot()
        if table is None:
            return False
        _, current = self.data_files()
        for fragment in fragments:
            info = fragment.filesystem.get_file_info(fragment.path)
            if info.type == pafs.FileType.NotFound and fragment.path in current:
                return True
        return False

    def _dataset(self, table: DeltaTable, prune: PruningFilter | None) -> pds.Dataset:
        # Planning a dataset (one fragment per file, with its statistics) costs far more than
        # a small read; reuse the plan while the table version and the pruning are unchanged.
        key = (table.version(), repr(prune))
        with self._lock, self._translated("planning a read of Delta table"):
            cached = self._datasets.get(key)
            if cached is None:
                cached = table.to_pyarrow_dataset(
                    file_pruning_predicate=list(prune) if prune else None,
                    filesystem=self._filesystem,
                )
                if len(self._datasets) >= 32 or any(k[0] != key[0] for k in self._datasets):
                    self._datasets.clear()
                self._datasets[key] = cached
            return cached

    def release(self) -> None:
        """Drop the open snapshot and the cached dataset plans (reopened on the next use)."""
        with self._lock:
            self._table = None
            self._datasets.clear()

    # -- maintenance -----------------------------------------------------------------------
    def remove_runs(
        self, experiment_id: str, run_ids: Sequence[str], *, deadline: float | None = None
    ) -> int:
        """Rewrite the files of one experiment's partition that hold the given runs' rows,
        without those rows; returns the number of rows removed.

        One commit removes those files and adds their rewritten rows (written by Arrow with the
        table's exact column types, unlike ``DeltaTable.delete``). It names the files it
        removes, so rows appended meanwhile, in files of their own, never conflict with it and
        are kept. A conflict (another process removed one of those files: a compaction, another
        gc) is retried on a fresh snapshot with exponential backoff and jitter until
        ``deadline`` (a ``time.monotonic()`` value; default: two minutes from now), then
        StoreError.
        """
        if "experiment_id" not in self.spec.partition_by:
            raise StoreError(f"Table {self.spec.name} is not partitioned by experiment.")
        doomed = pa.array(list(run_ids), type=pa.string())
        if deadline is None:
            deadline = time.monotonic() + 120.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._remove_rows_once(experiment_id, doomed)
            except CommitFailedError as exc:
                pause = min(5.0, 0.05 * 2**attempt) * (0.5 + random.random())
                if time.monotonic() + pause > deadline:
                    raise StoreError(
                        f"gc could not rewrite {self.uri} (experiment {experiment_id}): "
                        f"{attempt} commit(s) conflicted with other writers until the deadline "
                        f"({_engine_message(exc)})"
                    ) from exc
                time.sleep(pause)

    def _remove_rows_once(self, experiment_id: str, doomed: pa.Array) -> int:
        latest = self.snapshot()
        if latest is None:
            return 0
        # One pinned snapshot: the files read are exactly the files the commit removes.
        pinned = self.snapshot(version=latest.version())
        with self._translated("gc rewriting Delta table"):
            dataset = pinned.to_pyarrow_dataset(
                file_pruning_predicate=[("experiment_id", "=", experiment_id)],
                filesystem=self._filesystem,
            )
            # File statistics skip the files whose run_id range holds none of the runs.
            candidates = dataset.get_fragments(
                filter=(pds.field("experiment_id") == experiment_id)
                & pds.field("run_id").isin(doomed)
            )
            sizes = dict(zip(*pa.table(pinned.get_add_actions(flatten=True))
                             .select(["path", "size_bytes"]).to_pydict().values(), strict=True))
            affected, kept, removed_rows = [], [], 0
            for fragment in candidates:
                rows = fragment.to_table(schema=dataset.schema)
                stays = pc.invert(pc.is_in(rows.column("run_id"), value_set=doomed))
                keep = rows.filter(stays)
                if keep.num_rows < rows.num_rows:
                    affected.append(fragment)
                    kept.append(keep)
                    removed_rows += rows.num_rows - keep.num_rows
            if not affected:
                return 0
            partition = {"experiment_id": experiment_id}
            now = time.time_ns() // 1_000_000
            actions: list[Any] = [
                RemoveAction(fragment.path, True, now, sizes.get(fragment.path), partition)
                for fragment in affected
            ]
            filesystem = affected[0].filesystem
            written = None
            rows = pa.concat_tables(kept).select(self.spec.schema.names).cast(self.spec.schema)
            if rows.num_rows:
                written, add = _write_data_file(
                    filesystem, rows.drop_columns(list(self.spec.partition_by)),
                    folder=f"experiment_id={experiment_id}", partition=partition, now=now,
                )
                actions.insert(0, add)
            token = uuid.uuid4().hex
            try:
                _commit_actions(pinned, actions, self.spec, token=token)
            except BaseException:
                if written is not None:
                    filesystem.delete_file(written)  # never committed: nobody refers to it
                raise
            self._undo_if_overtaken(pinned, token, [a.path for a in affected], written)
        return removed_rows

    def _undo_if_overtaken(
        self, pinned: DeltaTable, token: str, removed: list[str], written: str | None
    ) -> None:
        """Undo a gc commit whose files another commit had already removed, then retry.

        deltalake does not see a conflict when a compaction (``dataChange=false``) removed the
        files first: its merged file would keep the runs' rows, and the rows rewritten here
        would be there twice. Remove the file added here and report a conflict instead.
        """
        newest = self.snapshot()
        history = newest.history(limit=max(1, newest.version() - pinned.version()))
        ours = next((entry["version"] for entry in history if entry.get("sparktrack.gc") == token),
                    None)
        if ours is None or ours == pinned.version() + 1:
            return  # nothing committed in between: the files were live
        before = self.snapshot(version=ours - 1)
        live = set(pa.table(before.get_add_actions(flatten=True)).column("path").to_pylist())
        if all(path in live for path in removed):
            return
        if written is not None:
            now = time.time_ns() // 1_000_000
            undo = [RemoveAction(written, True, now, None, None)]
            _commit_actions(self.snapshot(version=self.snapshot().version()), undo, self.spec,
                            token=uuid.uuid4().hex)
        raise CommitFailedError(
            f"another commit removed files of {self.uri} before this gc commit (a compaction?)"
        )

    def vacuum(self, *, retention_hours: int) -> int:
        """Remove files no longer referenced for ``retention_hours``; returns how many."""
        table = self.snapshot()
        if table is None:
            return 0
        with self._lock, self._translated("vacuuming Delta table"):
            removed = table.vacuum(
                retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
            )
        return len(removed)

    def version(self) -> int | None:
        table = self.snapshot()
        return None if table is None else table.version()

    def put_named_file(
        self, rows: pa.Table, *, name: str, metadata: dict[str, str] | None = None
    ) -> None:
        """Commit ``rows`` as files called ``name`` (one per partition), at most once.

        Delta's snapshot keys files by path, so committing a file of the same path again adds
        nothing: two processes that commit the same rows under the same name (a summary that a
        writer and a repair both commit) leave one copy. The file is created only if missing, so
        both commits describe the same bytes.
        """
        if rows.num_rows == 0:
            return
        rows = rows.select(self.spec.schema.names).cast(self.spec.schema)
        self._ensure_created()
        actions = []
        for partition, part in _split_by_partition(rows, self.spec.partition_by):
            folder = "/".join(f"{key}={value}" for key, value in partition.items())
            path = f"{folder}/{name}.parquet" if folder else f"{name}.parquet"
            data = part.drop_columns(list(self.spec.partition_by)) if partition else part
            size = self._create_once(path, data)
            actions.append(AddAction(path, size, partition, int(time.time() * 1000), True,
                                     _file_stats(data)))
        table = self.snapshot()
        for attempt in range(self._commit_retries + 1):
            try:
                table.create_write_transaction(
                    actions, mode="append", schema=self.spec.schema,
                    partition_by=list(self.spec.partition_by) or None,
                    commit_properties=CommitProperties(max_commit_retries=50,
                                                       custom_metadata=metadata),
                )
                return
            except _ENGINE_ERRORS as exc:
                retryable = isinstance(exc, CommitFailedError) or (
                    isinstance(exc, OSError) and not _is_permanent(exc)
                )
                if not retryable or attempt == self._commit_retries:
                    error = _store_error(f"committing {name} to", self.uri, exc)
                    raise StoreError(
                        f"{error} (after {attempt + 1} attempt(s); the rows are kept and retried "
                        "on the next flush)"
                    ) from exc
                time.sleep(min(2.0, 0.01 * 2**attempt) * (0.5 + random.random()))
                table = self.snapshot()

    def _create_once(self, path: str, data: pa.Table) -> int:
        """Write ``data`` as Parquet at ``path`` unless a file is there; return the file's size."""
        if self._filesystem is None:
            raise StoreError(
                f"{self.uri}: committing named files needs a local table (object stores come "
                "with the object-store support)."
            )
        local = os.path.join(self.uri.removeprefix("file://"), path)
        try:
            if not os.path.exists(local):
                os.makedirs(os.path.dirname(local), exist_ok=True)
                temporary = f"{local}.{os.getpid()}.{threading.get_ident()}.tmp"
                pq.write_table(data, temporary, compression="zstd", compression_level=3)
                try:
                    os.link(temporary, local)  # atomic, and fails if another writer was first
                except FileExistsError:
                    pass
                finally:
                    os.remove(temporary)
            return os.path.getsize(local)
        except OSError as exc:
            raise _store_error("writing a data file of", self.uri, exc) from exc

    # -- the log ---------------------------------------------------------------------------
    def commits_since(self, version: int, *, until: int) -> list[Commit]:
        """The commits ``version + 1 .. until`` read from the Delta log, oldest first.

        Commits whose log entry is gone (cleaned up after a checkpoint) are left out: they are
        older than the log retention, so nothing that reads them is still pending.
        """
        commits = []
        for number in range(max(version + 1, 0), until + 1):
            lines = self._log_entry(number)
            if lines is None:
                continue
            info: dict = {}
            added = []
            for line in lines:
                if not line.strip():
                    continue
                action = json.loads(line)
                if "commitInfo" in action:
                    info = action["commitInfo"] or {}
                add = action.get("add")
                if add and add.get("dataChange", True):
                    added.append(unquote(add["path"]))
            metadata = {k: v for k, v in info.items() if k.startswith("sparktrack.")}
            commits.append(Commit(number, int(info.get("timestamp") or 0), metadata,
                                  tuple(added)))
        return commits

    def _log_entry(self, number: int) -> list[str] | None:
        name = f"_delta_log/{number:020d}.json"
        try:
            if self._filesystem is not None:
                with self._filesystem.open_input_stream(name) as stream:
                    return stream.read().decode("utf-8").splitlines()
            from deltalake.fs import DeltaStorageHandler

            handler = DeltaStorageHandler(self.uri, self._storage_options)
            with handler.open_input_stream(name) as stream:
                return stream.read().decode("utf-8").splitlines()
        except FileNotFoundError:
            return None

    def read_paths(self, paths: Sequence[str]) -> pa.Table:
        """Rows of the given data files (paths relative to the table), partition columns filled.

        Raises:
            FileNotFoundError: a file was removed (vacuumed) since it was listed.
        """
        if not paths:
            return self.spec.schema.empty_table()
        table = self.snapshot()
        current = {} if table is None else self.data_files()[1]
        by_name = {path: fragment for path, fragment in current.items()}
        fragments = []
        for path in paths:
            fragment = by_name.get(path) or _find_fragment(by_name, path)
            if fragment is None:
                raise FileNotFoundError(f"{self.uri}/{path} is no longer part of the table")
            fragments.append(fragment)
        return self.read_files(fragments)


def _split_by_partition(
    rows: pa.Table, partition_by: Sequence[str]
) -> list[tuple[dict[str, str], pa.Table]]:
    if not partition_by:
        return [({}, rows)]
    keys = rows.select(list(partition_by)).group_by(list(partition_by)).aggregate([]).to_pylist()
    parts = []
    for key in keys:
        mask = None
        for column, value in key.items():
            condition = pc.equal(rows.column(column), value)
            mask = condition if mask is None else pc.and_(mask, condition)
        parts.append(({column: str(value) for column, value in key.items()}, rows.filter(mask)))
    return parts


def _find_fragment(fragments: dict[str, Any], path: str) -> Any | None:
    # Fragment paths are the filesystem's (absolute for local tables): match on the suffix.
    for name, fragment in fragments.items():
        if name.endswith("/" + path) or name == path:
            return fragment
    return None

def _write_data_file(
    filesystem: pafs.FileSystem, rows: pa.Table, *, folder: str, partition: dict[str, str],
    now: int,
) -> tuple[str, AddAction]:
    """Write ``rows`` as a new Parquet file of a table; returns its path and its add action."""
    path = f"{folder}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    with filesystem.open_output_stream(path) as sink:
        pq.write_table(rows, sink, compression="zstd", compression_level=3)
    size = filesystem.get_file_info(path).size
    return path, AddAction(path, size, partition, now, True, _file_stats(rows))


def _file_stats(rows: pa.Table) -> str:
    """Delta statistics of a data file: row and null counts, and the min/max of the flat
    columns JSON renders exactly (integers, strings of up to 32 characters), which readers use
    to skip the file."""
    minimum, maximum, nulls = {}, {}, {}
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if pa.types.is_nested(column.type):
            continue
        nulls[name] = column.null_count
        if column.null_count == len(column):
            continue
        exact = pa.types.is_integer(column.type) or (
            pa.types.is_string(column.type)
            and pc.max(pc.utf8_length(column)).as_py() <= 32
        )
        if exact:
            low, high = pc.min_max(column).values()
            minimum[name], maximum[name] = low.as_py(), high.as_py()
    return json.dumps({"numRecords": rows.num_rows, "minValues": minimum,
                       "maxValues": maximum, "nullCount": nulls})


def _commit_actions(table: DeltaTable, actions: list[Any], spec: TableSpec, *, token: str) -> None:
    """Commit add and remove actions on top of ``table``'s version as one Delta commit, marked
    with ``token`` in its commit info (``sparktrack.gc``) so it can be found again."""
    table.create_write_transaction(
        actions, mode="append", schema=spec.schema, partition_by=list(spec.partition_by),
        commit_properties=CommitProperties(custom_metadata={"sparktrack.gc": token}),
    )

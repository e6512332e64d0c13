"""One Delta table of the store: create on first use, append with retries, read a snapshot.

A :class:`DeltaTableHandle` keeps the table open and refreshes it incrementally before each
read. Appends never conflict logically under Delta's optimistic concurrency, so a commit that
loses a race is retried (:mod:`sparktrack._delta.retry`); any other failure is a StoreError.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.transaction import AddAction

from sparktrack._delta import log, ops, rewrite
from sparktrack._delta.errors import (
    ENGINE_ERRORS,
    TableNotFoundError,
    store_error,
    translated,
)
from sparktrack._delta.files import file_stats, split_by_partition
from sparktrack._delta.paths import filesystem, in_base, is_local, join_uri, local_path
from sparktrack._delta.retry import RetryPolicy, retrying
from sparktrack._delta.scan import scan_table
from sparktrack.errors import StoreError

if TYPE_CHECKING:
    from sparktrack._delta.log import Commit
    from sparktrack._store.schemas import TableSpec

__all__ = ["DeltaTableHandle", "PruningFilter"]

# A file-pruning filter in deltalake's tuple form, e.g. [("experiment_id", "in", ["1", "2"])].
PruningFilter = Sequence[tuple[str, str, Any]]

# zstd keeps the metric history small on disk; dictionary encoding does the rest for run ids/keys.
_WRITER_PROPERTIES = WriterProperties(compression="ZSTD", compression_level=3)
_KEPT = "; the rows are kept and retried on the next flush"


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
        self.storage_options = storage_options
        self._policy = RetryPolicy(retries=commit_retries)
        self._table: DeltaTable | None = None
        # Local tables are read through Arrow's own filesystem: faster than deltalake's Python
        # one, and its I/O threads never need the GIL, so a read finishing as the interpreter
        # exits cannot abort it (Arrow's "terminate called without an active exception").
        # Object-store tables are read on the calling thread for the same reason (_delta.scan).
        self._filesystem = (
            pafs.SubTreeFileSystem(local_path(self.uri), pafs.LocalFileSystem())
            if is_local(self.uri) else None
        )
        self._datasets: dict[tuple[int, str], pds.Dataset] = {}
        self._paths: dict[tuple[int, str], tuple[int, frozenset[str]]] = {}  # data_paths
        # Guards the shared snapshot (refreshed in place) and the dataset plans.
        self.lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------
    def append(self, rows: pa.Table, *, metadata: dict[str, str] | None = None) -> None:
        """Commit ``rows`` as one Delta commit, creating the table on first use.

        ``metadata`` goes into the commit info (see :meth:`commits_since`).
        """
        if rows.num_rows == 0:
            return
        rows = rows.select(self.spec.schema.names).cast(self.spec.schema)
        self.ensure_created()

        def commit() -> None:
            write_deltalake(
                self.uri,
                rows,
                mode="append",
                partition_by=list(self.spec.partition_by) or None,
                storage_options=self.storage_options,
                writer_properties=_WRITER_PROPERTIES,
                commit_properties=CommitProperties(
                    max_commit_retries=50, custom_metadata=metadata
                ),
            )

        retrying(commit, what=f"committing {rows.num_rows} row(s) to", uri=self.uri,
                 policy=self._policy, note=_KEPT)

    def ensure_created(self) -> None:
        """Create the table (empty, version 0) unless it exists."""
        if self._table is not None:
            return
        with self.lock:
            if self._table is not None:
                return
            if is_local(self.uri):
                try:
                    os.makedirs(local_path(self.uri), exist_ok=True)
                except OSError as exc:
                    raise store_error("creating Delta table", self.uri, exc) from exc
            self._table = retrying(self._create, what="creating Delta table", uri=self.uri,
                                   policy=self._policy)

    def _create(self) -> DeltaTable:
        # Imported here: sparktrack._store imports this package (an import cycle otherwise).
        from sparktrack._store.schemas import SCHEMA_VERSION

        try:
            return DeltaTable.create(
                self.uri,
                self.spec.schema,
                mode="ignore",
                partition_by=list(self.spec.partition_by) or None,
                name=self.spec.name,
                description=f"sparktrack schema v{SCHEMA_VERSION}: {self.spec.description}",
                storage_options=self.storage_options,
                # Not retried: a create that lost the race for version 0 would otherwise be
                # committed again as version 1 (or later, after other writers' rows), a second
                # table id and schema in the log of a live table (Spark streams of the table
                # stop on a new id, and serial readers reload it).
                commit_properties=CommitProperties(max_commit_retries=0),
            )
        except ENGINE_ERRORS:
            # Another process created it at the same moment: open theirs.
            with translated("opening Delta table", self.uri):
                if DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
                    return self._open()
            raise

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
        self.ensure_created()
        actions = []
        for partition, part in split_by_partition(rows, self.spec.partition_by):
            folder = "/".join(f"{key}={value}" for key, value in partition.items())
            path = f"{folder}/{name}.parquet" if folder else f"{name}.parquet"
            data = part.drop_columns(list(self.spec.partition_by)) if partition else part
            size = self._create_once(path, data)
            actions.append(AddAction(path, size, partition, int(time.time() * 1000), True,
                                     file_stats(data)))

        def commit() -> None:
            self.snapshot().create_write_transaction(
                actions, mode="append", schema=self.spec.schema,
                partition_by=list(self.spec.partition_by) or None,
                commit_properties=CommitProperties(max_commit_retries=50,
                                                   custom_metadata=metadata),
            )

        retrying(commit, what=f"committing {name} to", uri=self.uri, policy=self._policy,
                 note=_KEPT)

    def _create_once(self, path: str, data: pa.Table) -> int:
        """Write ``data`` as Parquet at ``path`` unless a file is there; return the file's size."""
        if self._filesystem is None:
            return self._create_once_in_object_store(path, data)
        local = os.path.join(local_path(self.uri), path)
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
            raise store_error("writing a data file of", self.uri, exc) from exc

    def _create_once_in_object_store(self, path: str, data: pa.Table) -> int:
        """:meth:`_create_once` on an object store: one PUT, which readers see whole or not
        at all, skipped when the object exists.

        Two writers that both find it missing both PUT it; that is safe because a named
        file's bytes are a function of its rows (see :meth:`put_named_file`: the same rows,
        written by the same code with the same options), so what either writer leaves is the
        same, and so is the size each commits.
        """
        fs, base = filesystem(self.uri, self.storage_options)
        where = in_base(base, path)
        with translated("writing a data file of", self.uri):
            info = fs.get_file_info(where)
            if info.type == pafs.FileType.File:
                return info.size
            sink = pa.BufferOutputStream()
            pq.write_table(data, sink, compression="zstd", compression_level=3)
            payload = sink.getvalue()
            with fs.open_output_stream(where) as stream:
                stream.write(payload)
            return payload.size

    # -- reading -------------------------------------------------------------------------
    def _open(self) -> DeltaTable:
        return DeltaTable(self.uri, storage_options=self.storage_options)

    def snapshot(self, *, version: int | None = None) -> DeltaTable | None:
        """The table at its newest (or the given) version, or None if it does not exist yet."""
        with self.lock:
            try:
                if version is not None:
                    table = self._open()
                    table.load_as_version(version)
                    return table
                if self._table is None:
                    self._table = self._open()
                elif not self._nothing_newer_than_loaded():
                    self._table.update_incremental()
                return self._table
            except TableNotFoundError as exc:
                if self._not_created_yet():
                    return None
                # Another process may have finished creating the table since deltalake looked
                # (its first log entry lands a moment after the folder): look once more.
                time.sleep(0.05)
                try:
                    self._table = self._open()
                    return self._table
                except TableNotFoundError:
                    pass
                except ENGINE_ERRORS as again:
                    raise store_error("reading Delta table", self.uri, again) from again
                raise self._broken_log() from exc
            except ENGINE_ERRORS as exc:
                raise store_error("reading Delta table", self.uri, exc) from exc

    def _nothing_newer_than_loaded(self) -> bool:
        """Whether a local table's log still ends at the version loaded: two file checks
        (microseconds) instead of deltalake's refresh (about 0.7 ms per table, four tables per
        search). Versions are consecutive, so a newer commit means a next entry. If the loaded
        version's own entry is gone, deltalake refreshes and reports the damage."""
        if not is_local(self.uri):
            return False
        log_folder = os.path.join(local_path(self.uri), "_delta_log")
        version = self._table.version()
        if os.path.exists(os.path.join(log_folder, f"{version + 1:020d}.json")):
            return False
        return any(os.path.exists(os.path.join(log_folder, f"{version:020d}.{suffix}"))
                   for suffix in ("json", "checkpoint.parquet"))

    def _not_created_yet(self) -> bool:
        """Whether deltalake's "table not found" means the table does not exist yet (it reads as
        empty), rather than a table this process cannot read or whose log is gone (StoreError).

        Only a local folder can be told apart; on an object store a missing log reads as empty.
        """
        if not is_local(self.uri):
            return True
        path = local_path(self.uri)
        try:
            entries = os.listdir(path)
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise store_error("reading Delta table", self.uri, exc) from exc
        log_folder = os.path.join(path, "_delta_log")
        try:
            log_entries = os.listdir(log_folder) if "_delta_log" in entries else []
        except OSError as exc:
            raise store_error("reading Delta table", self.uri, exc) from exc
        # A creation in progress has an empty folder, and a log with nothing or only the
        # temporary file of its first commit.
        committed = [entry for entry in log_entries
                     if not entry.startswith((".", "_")) and not entry.endswith(".tmp")]
        return not committed and all(entry == "_delta_log" for entry in entries)

    def _broken_log(self) -> StoreError:
        path = local_path(self.uri) if is_local(self.uri) else self.uri
        entries = sorted(os.listdir(path)) if is_local(self.uri) and os.path.isdir(path) else []
        return StoreError(
            f"broken Delta log of {self.uri}: it holds {', '.join(entries[:5])} but deltalake "
            f"finds no table version in {path}/_delta_log. Restore the _delta_log folder from a "
            "backup."
        )

    def version(self) -> int | None:
        """The newest version, None if the table does not exist yet."""
        table = self.snapshot()
        return None if table is None else table.version()

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
                return scan_table(dataset, where=where, columns=columns)
            except FileNotFoundError as exc:
                # A vacuum removed a file of the snapshot we planned with: plan again, once.
                # A file still missing then is one the Delta log refers to: a broken store.
                if attempt == 2:
                    raise store_error("reading Delta table", self.uri, exc) from exc
            except ENGINE_ERRORS as exc:
                raise store_error("reading Delta table", self.uri, exc) from exc
            with self.lock:
                self._datasets.clear()
            table = self.snapshot()
        raise AssertionError("unreachable")

    def read_versioned(self) -> tuple[int, pa.Table]:
        """A version of the table (-1 if it does not exist yet) and its rows.

        The rows are read after the version is taken, so they may include later commits: a
        caller that applies the commits after that version again must do so idempotently.
        """
        version = self.version()
        if version is None:
            return -1, self.spec.schema.empty_table()
        return version, self.read()

    def data_files(self, *, prune: PruningFilter | None = None) -> tuple[int, dict[str, Any]]:
        """The current version and its data files matching ``prune``, as {path: fragment}.

        With :meth:`read_files`, lets a reader that remembers which files it has read fetch only
        the ones committed since. Version -1 and no files when the table does not exist yet.
        """
        table = self.snapshot()
        if table is None:
            return -1, {}
        with translated("listing the files of Delta table", self.uri):
            fragments = self._dataset(table, prune).get_fragments()
            return table.version(), {fragment.path: fragment for fragment in fragments}

    def data_paths(self, *, prune: PruningFilter | None = None) -> tuple[int, frozenset[str]]:
        """The current version and the paths of its data files matching ``prune``: the keys
        :meth:`data_files` would give, from the log's file list alone (no read plan).

        A reader that already holds the rows of these files learns that it is current for a
        few milliseconds; planning the read costs several times that.
        """
        table = self.snapshot()
        if table is None:
            return -1, frozenset()
        equal = [(column, value) for column, op, value in (prune or ()) if op == "="]
        if len(equal) != len(prune or ()):
            version, files = self.data_files(prune=prune)  # other operators: as planned
            return version, frozenset(files)
        key = (table.version(), repr(prune))
        with self.lock:
            cached = self._paths.get(key)
        if cached is not None:
            return cached
        with translated("listing the files of Delta table", self.uri):
            actions = pa.table(table.get_add_actions(flatten=True))
            version = table.version()
        mask = None
        for column, value in equal:
            matches = pc.equal(actions.column(f"partition.{column}"), str(value))
            mask = matches if mask is None else pc.and_(mask, matches)
        paths = actions.column("path") if mask is None else actions.column("path").filter(mask)
        found = version, frozenset(unquote(path) for path in paths.to_pylist())
        with self.lock:
            if len(self._paths) >= 32 or any(k[0] != key[0] for k in self._paths):
                self._paths.clear()  # kept for the newest version only, like the plans
            self._paths[key] = found
        return found

    def rows_per_partition(self, column: str) -> dict[str, int]:
        """Rows of the newest version per value of the partition ``column``, from the log's
        file statistics (no data read); files without statistics count as empty."""
        table = self.snapshot()
        if table is None:
            return {}
        with translated("reading the file statistics of Delta table", self.uri):
            actions = pa.table(table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return {}
        counts = actions.group_by(f"partition.{column}").aggregate([("num_records", "sum")])
        return {value: int(rows or 0) for value, rows in zip(
            counts.column(f"partition.{column}").to_pylist(),
            counts.column("num_records_sum").to_pylist(), strict=True)}

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
            return scan_table(dataset)
        except FileNotFoundError as exc:
            if self._still_referenced_missing(fragments):
                raise store_error("reading Delta table", self.uri, exc) from exc
            raise
        except ENGINE_ERRORS as exc:
            raise store_error("reading Delta table", self.uri, exc) from exc

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

    def read_paths(self, paths: Sequence[str]) -> pa.Table:
        """Rows of the given data files (paths relative to the table), partition columns filled.

        Raises:
            FileNotFoundError: a file was removed (vacuumed) since it was listed.
        """
        if not paths:
            return self.spec.schema.empty_table()
        table = self.snapshot()
        current = {} if table is None else self.data_files()[1]
        fragments = []
        for path in paths:
            fragment = current.get(path) or _find_fragment(current, path)
            if fragment is None:
                raise FileNotFoundError(f"{self.uri}/{path} is no longer part of the table")
            fragments.append(fragment)
        return self.read_files(fragments)

    def _dataset(self, table: DeltaTable, prune: PruningFilter | None) -> pds.Dataset:
        # Planning a dataset (one fragment per file, with its statistics) costs far more than
        # a small read; reuse the plan while the table version and the pruning are unchanged.
        key = (table.version(), repr(prune))
        with self.lock, translated("planning a read of Delta table", self.uri):
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
        with self.lock:
            self._table = None
            self._datasets.clear()
            self._paths.clear()

    # -- the log ---------------------------------------------------------------------------
    def commits_since(self, version: int, *, until: int) -> list[Commit]:
        """The commits ``version + 1 .. until`` read from the Delta log, oldest first.

        Commits whose log entry is gone (cleaned up after a checkpoint) are left out: they are
        older than the log retention, so nothing that reads them is still pending.
        """
        return log.commits_since(self.uri, version, until=until,
                                 storage_options=self.storage_options)

    # -- rewriting and maintenance ---------------------------------------------------------
    def remove_runs(
        self, experiment_id: str, run_ids: Sequence[str], *, deadline: float | None = None
    ) -> int:
        """Rewrite the experiment's files without the given runs' rows; the rows removed.

        See :func:`sparktrack._delta.rewrite.remove_runs`.
        """
        return rewrite.remove_runs(self, experiment_id, run_ids, deadline=deadline)

    def vacuum(self, *, retention_hours: float) -> int:
        """Delete files that left the table more than ``retention_hours`` ago; how many."""
        return ops.vacuum(self, retention_hours=retention_hours)


def _find_fragment(fragments: dict[str, Any], path: str) -> Any | None:
    # Fragment paths are the filesystem's (absolute for local tables): match on the suffix.
    for name, fragment in fragments.items():
        if name.endswith("/" + path) or name == path:
            return fragment
    return None

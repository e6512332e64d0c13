"""One Delta table of the store: create on first use, append with retries, read a snapshot.

This is the only module that talks to ``deltalake``. Appends never conflict logically under
Delta's optimistic concurrency, so a commit that loses a race is simply retried; any other
failure is translated into :class:`StoreError`.
"""

from __future__ import annotations

import os
import random
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

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
            except (CommitFailedError, OSError) as exc:
                attempt += 1
                if attempt > self._commit_retries:
                    raise StoreError(
                        f"Could not commit {rows.num_rows} rows to {self.uri} after "
                        f"{attempt} attempts: {exc}. The rows are kept and retried on the next "
                        "flush."
                    ) from exc
                time.sleep(min(2.0, 0.01 * 2**attempt) * (0.5 + random.random()))
            except DeltaError as exc:
                raise StoreError(f"Writing to Delta table {self.uri} failed: {exc}") from exc

    def _ensure_created(self) -> None:
        if self._table is not None:
            return
        with self._lock:
            if self._table is not None:
                return
            if _is_local(self.uri):
                os.makedirs(self.uri.removeprefix("file://"), exist_ok=True)
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
                except (CommitFailedError, DeltaError) as exc:
                    # Another process created it at the same moment: open theirs.
                    if DeltaTable.is_deltatable(self.uri, storage_options=self._storage_options):
                        self._table = self._open()
                        return
                    if attempt == self._commit_retries:
                        raise StoreError(f"Could not create Delta table {self.uri}: {exc}") from exc
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
            except TableNotFoundError:
                return None
            except DeltaError as exc:
                raise StoreError(f"Reading Delta table {self.uri} failed: {exc}") from exc

    def read(
        self,
        *,
        prune: PruningFilter | None = None,
        where: pds.Expression | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows of the current snapshot; ``prune`` skips whole files, ``where`` filters rows."""
        table = self.snapshot()
        if table is None:
            schema = self.spec.schema
            if columns is not None:
                schema = pa.schema([schema.field(name) for name in columns])
            return schema.empty_table()
        for attempt in (1, 2):
            dataset = self._dataset(table, prune)
            try:
                return dataset.to_table(filter=where, columns=columns)
            except FileNotFoundError:
                # A vacuum removed a file of the snapshot we planned with: plan again, once.
                if attempt == 2:
                    raise
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
        fragments = self._dataset(table, prune).get_fragments()
        return table.version(), {fragment.path: fragment for fragment in fragments}

    def read_files(self, fragments: Sequence[Any]) -> pa.Table:
        """Rows of the given fragments of :meth:`data_files` (partition columns filled in).

        Raises:
            FileNotFoundError: a file was vacuumed since it was listed; list them again.
        """
        schema = self.spec.schema
        if not fragments:
            return schema.empty_table()
        first = fragments[0]
        dataset = pds.FileSystemDataset(
            list(fragments), schema, first.format, filesystem=first.filesystem
        )
        return dataset.to_table()

    def _dataset(self, table: DeltaTable, prune: PruningFilter | None) -> pds.Dataset:
        # Planning a dataset (one fragment per file, with its statistics) costs far more than
        # a small read; reuse the plan while the table version and the pruning are unchanged.
        key = (table.version(), repr(prune))
        with self._lock:
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
    def remove_runs(self, experiment_id: str, run_ids: Sequence[str]) -> int:
        """Rewrite one experiment's partition without the given runs' rows; returns rows removed.

        A partition overwrite (not ``DeltaTable.delete``, whose rewritten files change the
        column types) that keeps files appended concurrently: they are not in the snapshot the
        overwrite replaces, and a conflicting commit is retried on a fresh snapshot.
        """
        if "experiment_id" not in self.spec.partition_by:
            raise StoreError(f"Table {self.spec.name} is not partitioned by experiment.")
        doomed = pa.array(list(run_ids), type=pa.string())
        for attempt in range(self._commit_retries + 1):
            latest = self.snapshot()
            if latest is None:
                return 0
            # Read and rewrite one pinned snapshot: a file committed in between is then a
            # conflict (retried below), not a file the overwrite removes with its rows.
            pinned = self.snapshot(version=latest.version())
            current = pinned.to_pyarrow_dataset(
                file_pruning_predicate=[("experiment_id", "=", experiment_id)],
                filesystem=self._filesystem,
            ).to_table(filter=pds.field("experiment_id") == experiment_id)
            keep = current.filter(pc.invert(pc.is_in(current.column("run_id"), value_set=doomed)))
            if keep.num_rows == current.num_rows:
                return 0
            try:
                write_deltalake(
                    pinned,
                    keep.select(self.spec.schema.names).cast(self.spec.schema),
                    mode="overwrite",
                    # experiment ids are validated digits/letters before they get here.
                    predicate=f"experiment_id = '{experiment_id}'",
                    partition_by=list(self.spec.partition_by),
                    storage_options=self._storage_options,
                    writer_properties=_WRITER_PROPERTIES,
                )
                return current.num_rows - keep.num_rows
            except CommitFailedError as exc:
                if attempt == self._commit_retries:
                    raise StoreError(f"Could not rewrite {self.uri} for gc: {exc}") from exc
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def vacuum(self, *, retention_hours: int) -> int:
        """Remove files no longer referenced for ``retention_hours``; returns how many."""
        table = self.snapshot()
        if table is None:
            return 0
        with self._lock:
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
        from deltalake.transaction import AddAction

        rows = rows.select(self.spec.schema.names).cast(self.spec.schema)
        self._ensure_created()
        actions = []
        for partition, part in _split_by_partition(rows, self.spec.partition_by):
            folder = "/".join(f"{key}={value}" for key, value in partition.items())
            path = f"{folder}/{name}.parquet" if folder else f"{name}.parquet"
            data = part.drop_columns(list(self.spec.partition_by)) if partition else part
            size = self._create_once(path, data)
            actions.append(AddAction(path, size, partition, int(time.time() * 1000), True,
                                     _stats(data)))
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
            except (CommitFailedError, OSError) as exc:
                if attempt == self._commit_retries:
                    raise StoreError(
                        f"Could not commit {name} to {self.uri} after {attempt + 1} attempts: "
                        f"{exc}. The rows are kept and retried on the next flush."
                    ) from exc
                time.sleep(min(2.0, 0.01 * 2**attempt) * (0.5 + random.random()))
                table = self.snapshot()
            except DeltaError as exc:
                raise StoreError(f"Writing to Delta table {self.uri} failed: {exc}") from exc

    def _create_once(self, path: str, data: pa.Table) -> int:
        """Write ``data`` as Parquet at ``path`` unless a file is there; return the file's size."""
        import pyarrow.parquet as pq

        if self._filesystem is None:
            raise StoreError(
                f"{self.uri}: committing named files needs a local table (object stores come "
                "with the object-store support)."
            )
        local = os.path.join(self.uri.removeprefix("file://"), path)
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


def _stats(data: pa.Table) -> str:
    """Delta file statistics (row count, min, max, nulls) so readers can skip the file."""
    minimum, maximum, nulls = {}, {}, {}
    for name in data.column_names:
        column = data.column(name)
        nulls[name] = column.null_count
        # Strings and integers only: a float column may hold NaN, which JSON cannot carry.
        if pa.types.is_string(column.type) or pa.types.is_integer(column.type):
            bounds = pc.min_max(column)
            if bounds["min"].is_valid:
                minimum[name], maximum[name] = bounds["min"].as_py(), bounds["max"].as_py()
    return json.dumps({"numRecords": data.num_rows, "minValues": minimum,
                       "maxValues": maximum, "nullCount": nulls})


def _find_fragment(fragments: dict[str, Any], path: str) -> Any | None:
    # Fragment paths are the filesystem's (absolute for local tables): match on the suffix.
    for name, fragment in fragments.items():
        if name.endswith("/" + path) or name == path:
            return fragment
    return None

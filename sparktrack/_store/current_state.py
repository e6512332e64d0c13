"""The current state of a table, per experiment, kept in memory and updated from new files only.

The tables search reads are append-only, and their current state is a function of the set of
rows that does not depend on how the rows are split into files: the newest row of each run or
tag, the first value of each param, the associative merge of the metric summaries. So the
state of the files already read, merged with the rows of the files committed since, is the
state of all files, and a search after a commit reads only that commit's files instead of the
whole experiment. When a file disappears (compaction, garbage collection) the experiment's
state is rebuilt from the files of the new version.

Each update re-resolves only the runs the new rows touch: every table groups by run first.
The state is also saved beside the tables (:mod:`sparktrack._store.state_files`) after a
rebuild and after every ``_RESAVE_AFTER_FILES`` merged files, and a process with nothing in
memory starts from the saved state the same way: merge what is newer, rebuild if a file it
covers is gone. A saved state is used only if its checksum matches (checked when it is loaded)
and the table has reached the version it covers: a table at an older version was replaced or
restored since, so the state describes another table.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sparktrack._delta import DeltaTableHandle
from sparktrack._store.rows import concat_tables
from sparktrack._store.state_files import SavedState, StateFiles
from sparktrack._store.stored_rows import StoredRows

__all__ = ["CurrentState", "Snapshot", "StateView"]

Resolve = Callable[[pa.Table], pa.Table]

logger = logging.getLogger(__name__)


# Save the state again once this many files were merged in since it was saved.
_RESAVE_AFTER_FILES = 32


class Snapshot:
    """The current rows of one experiment at one table version; never changed once made, so
    what is derived from it can be kept with it (``memo``) for as long as it is current.

    A snapshot loaded from a saved state holds its rows as stored (``stored``) and decodes
    them when they are first read: all of them (:attr:`rows`), or a key's
    (:meth:`rows_with_key`), and search reads parts of ``stored`` directly. Brought up to date
    with newer files, it keeps the stored rows but those of the runs the files touch, and
    those runs' current rows apart (``extra``): its rows are both.
    """

    def __init__(self, version: int, files: frozenset[str], rows: pa.Table | None = None, *,
                 stored: StoredRows | None = None, extra: pa.Table | None = None,
                 saved_files: frozenset[str] = frozenset()) -> None:
        if rows is None and stored is None:
            raise ValueError("a snapshot needs its rows, decoded or stored")
        self.version = version
        self.files = files
        self.saved_files = saved_files  # the files the saved state covers
        self.stored = stored
        self.extra = extra  # with ``stored``: current rows not in it
        self._rows = rows
        self.by_key: dict[str, pa.Table] = {}
        #: Values derived from the rows by their readers (e.g. search's per-run alignments).
        self.memo: dict[Any, Any] = {}
        self._decoding = threading.Lock()

    @property
    def rows(self) -> pa.Table:
        """Every current row (decoded from ``stored`` on first use)."""
        if self._rows is None:
            with self._decoding:  # two threads reading at once decode once
                if self._rows is None:
                    self._rows = self._with_extra(self.stored.all(), key=None)
        return self._rows

    @property
    def decoded(self) -> bool:
        """Whether :attr:`rows` were built (reading them is free)."""
        return self._rows is not None

    @property
    def nbytes(self) -> int:
        """Memory the snapshot holds (its decoded rows, or its stored rows and decoded keys)."""
        if self._rows is not None:
            return self._rows.nbytes
        extra = self.extra.nbytes if self.extra is not None else 0
        return self.stored.nbytes + extra + sum(rows.nbytes for rows in self.by_key.values())

    def rows_with_key(self, key: str) -> pa.Table:
        """The rows whose ``key`` column equals ``key`` (params, tags, summaries)."""
        cached = self.by_key.get(key)
        if cached is None:
            if self._rows is None and self.stored.keyed:
                # Without decoding the other keys.
                cached = self._with_extra(self.stored.with_key(key), key=key)
            else:
                cached = self.rows.filter(pc.equal(self.rows.column("key"), key))
            self.by_key[key] = cached  # safe to share: the rows never change
        return cached

    def extra_with_key(self, key: str) -> pa.Table | None:
        """The rows of ``extra`` whose ``key`` column equals ``key`` (None: no extra rows)."""
        if self.extra is None:
            return None
        return self.extra.filter(pc.equal(self.extra.column("key"), key))

    def _with_extra(self, stored: pa.Table, *, key: str | None) -> pa.Table:
        extra = self.extra if key is None else self.extra_with_key(key)
        if extra is None:
            return stored
        return concat_tables([stored, extra], stored.schema)

    def at(self, version: int, files: frozenset[str]) -> Snapshot:
        """The same rows, current at a later ``version`` whose new ``files`` added none."""
        same = Snapshot(version, files, self._rows, stored=self.stored, extra=self.extra,
                        saved_files=self.saved_files)
        same.by_key, same.memo = self.by_key, self.memo
        return same


class CurrentState:
    """Resolved rows of one table for each experiment, cached and brought up to date on read.

    Args:
        handle: the table.
        resolve: raw rows -> current rows (e.g. the newest row of each run); it must give the
            same answer for ``resolve(resolve(a) + b)`` as for ``resolve(a + b)``.
        max_bytes: memory the cached experiments may use; the least recently read are dropped
            first, the one just read never.
        saved: where the state is saved for other processes to start from (None: nowhere).
        run_order: the run ids of an experiment in the order its saved state should store
            them (the runs state's: :meth:`held_run_ids`), or None; a hint for speed only.
    """

    def __init__(
        self,
        handle: DeltaTableHandle,
        resolve: Resolve,
        *,
        max_bytes: int,
        saved: StateFiles | None = None,
        run_order: Callable[[str], pa.Array | None] | None = None,
    ) -> None:
        self._handle = handle
        self._resolve = resolve
        self._max_bytes = max_bytes
        self._saved = saved
        self._run_order = run_order
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()  # the snapshots held
        # One per experiment: its snapshot is read or updated by one thread at a time, while
        # other experiments of the table load beside it.
        self._loading: dict[str, threading.Lock] = {}

    def view(self, experiment_ids: Sequence[str]) -> StateView:
        """The current rows of the given experiments, as of now (later commits not seen)."""
        return self.view_of([self.snapshot(e, together=experiment_ids)
                             for e in experiment_ids])

    def snapshot(self, experiment_id: str, *, together: Sequence[str] = ()) -> Snapshot:
        """The current rows of one experiment, read as part of a view of ``together``."""
        # The experiments of one view are kept together: reading the second must not drop
        # the first (the view holds both anyway), or a search of several experiments larger
        # than the budget would reload one of them every time.
        return self._snapshot(experiment_id, together=frozenset(together))

    def view_of(self, snapshots: list[Snapshot]) -> StateView:
        """A view of snapshots of this table (from :meth:`snapshot`)."""
        return StateView(snapshots, self._schema())

    def held_run_ids(self, experiment_id: str) -> pa.Array | None:
        """The run ids of ``experiment_id``'s rows held here, in their order, if they are
        held decoded (None otherwise: nothing is read for it)."""
        with self._lock:
            snapshot = self._snapshots.get(experiment_id)
        if snapshot is None or not snapshot.decoded:
            return None
        return snapshot.rows.column("run_id").combine_chunks()

    def holds(self, experiment_id: str) -> bool:
        """Whether this cache holds the state of ``experiment_id`` (reading it is cheap)."""
        with self._lock:
            return experiment_id in self._snapshots

    def rows_to_build(self, experiment_ids: Sequence[str]) -> int:
        """Rows a view of ``experiment_ids`` would resolve from the table's files: those of the
        experiments neither held here nor saved beside the table (an estimate: a saved state
        can still turn out unusable)."""
        missing = [e for e in experiment_ids if not self.holds(e)
                   and not (self._saved is not None and self._saved.exists(e))]
        if not missing:
            return 0
        rows = self._handle.rows_per_partition("experiment_id")
        return sum(rows.get(e, 0) for e in missing)

    def cached_row(self, key: str, value: str) -> dict | None:
        """The current row whose ``key`` column is ``value``, if an experiment held here has
        one: that experiment is brought up to date first. None otherwise (read the table)."""
        with self._lock:
            held = list(self._snapshots.items())
        for experiment_id, snapshot in reversed(held):  # the most recently read first
            if not pc.any(pc.equal(snapshot.rows.column(key), value)).as_py():
                continue
            rows = self._snapshot(experiment_id).rows
            found = rows.filter(pc.equal(rows.column(key), value))
            return found.to_pylist()[0] if found.num_rows else None
        return None

    def forget(self) -> None:
        """Drop every cached experiment (the next read starts from the saved state or files)."""
        with self._lock:
            self._snapshots.clear()

    def remove_saved(self, experiment_id: str) -> None:
        """Forget an experiment here and on disk (its runs were removed for good)."""
        with self._loading_lock(experiment_id):
            with self._lock:
                self._snapshots.pop(experiment_id, None)
            if self._saved is not None and self._saved.enabled:
                self._saved.remove(experiment_id, table_version=self._handle.version())

    def _loading_lock(self, experiment_id: str) -> threading.Lock:
        with self._lock:
            return self._loading.setdefault(experiment_id, threading.Lock())

    def _schema(self) -> pa.Schema:
        return self._handle.spec.schema

    def _snapshot(self, experiment_id: str, *, together: frozenset[str] = frozenset()
                  ) -> Snapshot:
        prune = [("experiment_id", "=", experiment_id)]
        with self._loading_lock(experiment_id):
            for attempt in (1, 2):
                # Whether what is held or saved is current needs only the files' paths;
                # reading new files needs a read plan.
                version, paths = self._handle.data_paths(prune=prune)
                with self._lock:
                    held = self._snapshots.get(experiment_id)
                known = held or self._load_saved(experiment_id, version)
                if known is not None and known.version == version and known.files == paths:
                    return self._keep(experiment_id, known, together)
                version, files = self._handle.data_files(prune=prune)
                try:
                    snapshot, rebuilt = self._updated(known, version, files)
                    break
                except FileNotFoundError:
                    # Vacuumed between listing and reading: list again, once.
                    if attempt == 2:
                        raise
            unsaved = len(snapshot.files - snapshot.saved_files)
            if self._saved is not None and (rebuilt or unsaved >= _RESAVE_AFTER_FILES):
                run_order = self._run_order
                self._saved.save(experiment_id, SavedState(
                    snapshot.version, snapshot.files, _rows_of(snapshot),
                    run_order=(None if run_order is None
                               else lambda: run_order(experiment_id))))
                snapshot.saved_files = snapshot.files
            return self._keep(experiment_id, snapshot, together)

    def _keep(self, experiment_id: str, snapshot: Snapshot,
              together: frozenset[str]) -> Snapshot:
        """Hold ``snapshot`` as the most recent, dropping the least recent over the budget
        (never this one, nor the others of the view being read, ``together``)."""
        with self._lock:
            self._snapshots[experiment_id] = snapshot
            self._snapshots.move_to_end(experiment_id)
            held = sum(kept.nbytes for kept in self._snapshots.values())
            for other in list(self._snapshots):
                if held <= self._max_bytes:
                    break
                if other != experiment_id and other not in together:
                    held -= self._snapshots.pop(other).nbytes
        return snapshot

    def _load_saved(self, experiment_id: str, table_version: int) -> Snapshot | None:
        saved = self._saved.load(experiment_id) if self._saved is not None else None
        if saved is None:
            return None
        if saved.version > table_version:
            logger.warning(
                "Ignoring the saved search state of experiment %s in %s: it covers version %d "
                "but the table is at version %d (replaced or restored since); it is rebuilt.",
                experiment_id, self._handle.uri, saved.version, table_version,
            )
            return None
        return Snapshot(saved.version, saved.files, stored=saved.stored, saved_files=saved.files)

    def _updated(
        self, known: Snapshot | None, version: int, files: dict[str, Any]
    ) -> tuple[Snapshot, bool]:
        """The snapshot at ``version`` from ``known``, and whether it was rebuilt from scratch."""
        paths = frozenset(files)
        if known is None or not known.files <= paths:
            rows = self._resolve(self._handle.read_files(list(files.values())))
            return Snapshot(version, paths, rows), True
        added = [files[path] for path in paths - known.files]
        fresh = self._handle.read_files(added) if added else None
        if fresh is None or fresh.num_rows == 0:
            return known.at(version, paths), False
        touched = pc.unique(fresh.column("run_id"))
        if not known.decoded:
            return self._updated_apart(known, version, paths, fresh, touched), False
        in_touched = pc.is_in(known.rows.column("run_id"), value_set=touched)
        untouched = known.rows.filter(pc.invert(in_touched))
        merged = self._resolve(pa.concat_tables([known.rows.filter(in_touched), fresh]))
        rows = concat_tables([untouched, merged], self._schema())
        return Snapshot(version, paths, rows, saved_files=known.saved_files), False

    def _updated_apart(self, known: Snapshot, version: int, paths: frozenset[str],
                       fresh: pa.Table, touched: pa.Array) -> Snapshot:
        """``known`` (stored, not decoded) brought up to date with ``fresh`` rows without
        decoding it: the stored rows of the ``touched`` runs are left out of it, and their
        current rows kept apart (a new process's first search after others' commits reads
        as few rows as one without them)."""
        schema = self._schema()
        prior = [known.stored.of_runs(touched, schema.names)]
        kept = None
        if known.extra is not None:
            in_touched = pc.is_in(known.extra.column("run_id"), value_set=touched)
            prior.append(known.extra.filter(in_touched))
            kept = known.extra.filter(pc.invert(in_touched))
        merged = self._resolve(concat_tables([*prior, fresh], schema))
        extra = merged if kept is None else concat_tables([kept, merged], schema)
        return Snapshot(version, paths, stored=known.stored.without_runs(touched), extra=extra,
                        saved_files=known.saved_files)


def _rows_of(snapshot: Snapshot) -> pa.Table | Callable[[], pa.Table]:
    """The rows of ``snapshot`` to save: themselves, or how to decode them (on the saver)."""
    return snapshot.rows if snapshot.decoded else (lambda: snapshot.rows)


class StateView:
    """The state of one table for some experiments at one version each (immutable)."""

    def __init__(self, snapshots: list[Snapshot], schema: pa.Schema) -> None:
        self._snapshots = snapshots
        self._schema = schema

    def rows(self) -> pa.Table:
        """All current rows."""
        return concat_tables([snapshot.rows for snapshot in self._snapshots], self._schema)

    def rows_with_key(self, key: str) -> pa.Table:
        """The current rows whose ``key`` column equals ``key`` (params, tags, summaries)."""
        return concat_tables([snapshot.rows_with_key(key) for snapshot in self._snapshots],
                             self._schema)

    @property
    def snapshots(self) -> list[Snapshot]:
        """One snapshot per experiment, in the order the view was asked for."""
        return list(self._snapshots)

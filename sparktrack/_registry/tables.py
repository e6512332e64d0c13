"""The registry's state tables: their current rows, kept in memory, and serial commits.

Rows are never changed in place: every change appends a row whose ``updated_at`` is newer,
and the current state is the newest row of each key (:mod:`sparktrack._store.current_rules`).
Each table is mirrored in memory as that current state (:class:`TableMirror`) and brought up
to date from the Delta log before each operation: reading the few commits since the last look,
not the table. Changes are serial commits (:mod:`sparktrack._delta.serial`): a change decided
on version N of a table lands as version N + 1 or not at all, so no two processes can both
claim a version number or both overwrite the same row from the same state.

The events of the changes are committed by the event ledger's background writer
(:mod:`.event_ledger`); :attr:`RegistryTables.events` is the ``registry_events`` table as a
reader must see it, complete before each read (:meth:`RegistryTables.complete_history`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import pyarrow as pa

from sparktrack._delta import DeltaTableHandle
from sparktrack._delta.serial import SerialLog
from sparktrack._registry.event_ledger import EventLedger
from sparktrack._registry.event_ledger import checkpoint_path as ledger_checkpoint
from sparktrack._store.rows import next_version
from sparktrack._store.schemas import (
    MODEL_ALIASES,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    REGISTRY_EVENTS,
    TableSpec,
)

__all__ = ["RegistryTables", "TableMirror"]


def _as_read(columns: Sequence[str], rows: list[dict]) -> list[dict]:
    """``rows`` as reading them back from the table gives them: every column, tags as a list
    of (key, value) pairs."""
    return [
        {name: list(value.items()) if name == "tags" and isinstance(value, dict) else value
         for name in columns for value in (row.get(name),)}
        for row in rows
    ]


class TableMirror:
    """The current row of each key of one table, in step with the table's Delta log.

    ``on_row`` sees every row ever read or committed (the current ones and the replaced
    ones), for facts that outlive a row, such as the generations a model name has had.
    """

    def __init__(self, handle: DeltaTableHandle, keys: Sequence[str], ledger: EventLedger, *,
                 group_by: str, on_row: Callable[[dict], None] | None = None,
                 checkpoint_handle: DeltaTableHandle | None = None) -> None:
        """``group_by``: the column :meth:`rows_of` finds rows by (a model's versions, a
        model by its name) without looking at the others. ``checkpoint_handle``: the table
        opened for the ledger's background writer, which writes the checkpoints the commits
        fall due for (None: the commit writes them)."""
        self.handle = handle
        self.name = handle.spec.name
        self.log = SerialLog(handle, checkpoint_later=None if checkpoint_handle is None else (
            lambda _log: ledger.checkpoint_later(checkpoint_handle)))
        self.keys = tuple(keys)
        self._columns = tuple(handle.spec.schema.names)
        self.version: int | None = None  # None: not read yet
        self.current: dict[tuple, dict] = {}
        self._group_by = group_by
        self._groups: dict[object, dict[tuple, dict]] = {}  # group_by value -> current rows
        self._ledger = ledger
        self._on_row = on_row

    def refresh(self) -> None:
        """Apply the commits made since the last look (by any process); the changes among
        them go to the event ledger, which checks that their events arrive."""
        tail = None if self.version is None else self.log.since(self.version)
        if tail is None:
            version, rows = self.log.load()
            self.current, self._groups = {}, {}
            self._fold(rows.to_pylist())
            self._ledger.loaded(self.name, self.log, version)
        else:
            version = tail.version
            if tail.rows.num_rows:
                self._fold(tail.rows.to_pylist())
            self._ledger.saw(self.name, tail.commits)
        self.version = version

    def commit(self, rows: list[dict], *, metadata: dict[str, str] | None = None) -> bool:
        """Commit ``rows`` as the next version after the one last read; False if another
        process committed first (refresh, decide again, commit again).

        Each row's ``updated_at`` is stamped newer than the row it replaces, whatever the
        clocks of the processes that wrote them say: the newest row is the last committed.
        """
        stamped = []
        for row in rows:
            replaced = self.current.get(self._key(row))
            floor = replaced["updated_at"] + 1 if replaced else 0
            stamped.append({**row, "updated_at": max(next_version(), floor)})
        stamped = _as_read(self._columns, stamped)
        if not self.log.commit_next(-1 if self.version is None else self.version, stamped,
                                    metadata=metadata):
            return False
        self.version += 1
        self._fold(stamped)  # as committed, without reading the table back
        return True

    def rows(self, where: Callable[[dict], bool] | None = None) -> list[dict]:
        return [row for row in self.current.values() if where is None or where(row)]

    def rows_of(self, group: object) -> list[dict]:
        """The current rows whose ``group_by`` column is ``group``."""
        return list(self._groups.get(group, {}).values())

    def _key(self, row: dict) -> tuple:
        return tuple(row[key] for key in self.keys)

    def _fold(self, rows: Iterable[dict]) -> None:
        # Newest updated_at wins; a tie goes to the row read later (applying a commit twice,
        # as a reload racing a commit can, changes nothing).
        for row in rows:
            key = self._key(row)
            held = self.current.get(key)
            if held is None or row["updated_at"] >= held["updated_at"]:
                self.current[key] = row
                self._regroup(key, held, row)
            if self._on_row is not None:
                self._on_row(row)

    def _regroup(self, key: tuple, held: dict | None, row: dict) -> None:
        group = row[self._group_by]
        if held is not None and held[self._group_by] != group:  # renamed
            left = self._groups[held[self._group_by]]
            del left[key]
            if not left:
                del self._groups[held[self._group_by]]
        self._groups.setdefault(group, {})[key] = row


class HistoryTable(DeltaTableHandle):
    """The ``registry_events`` table, complete before each read: ``complete`` commits the
    events this process queued and those of the changes it has seen (see
    :meth:`RegistryTables.complete_history`)."""

    def __init__(self, *args, complete: Callable[[], None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._complete = complete

    def read(self, **options) -> pa.Table:
        self._complete()
        return super().read(**options)

    def read_versioned(self) -> tuple[int, pa.Table]:
        self._complete()
        return super().read_versioned()


class RegistryTables:
    """The four registry tables of one store root, the three state tables mirrored.

    Callers hold :attr:`lock` around an operation: the mirrors are shared by every client of
    the store in the process.
    """

    def __init__(self, root: str, *, storage_options: dict[str, str] | None,
                 commit_retries: int, event_grace_seconds: float = 2.0) -> None:
        def handle(spec: TableSpec) -> DeltaTableHandle:
            return DeltaTableHandle(root, spec, storage_options=storage_options,
                                    commit_retries=commit_retries)

        self.models = handle(REGISTERED_MODELS)
        self.versions = handle(MODEL_VERSIONS)
        self.aliases = handle(MODEL_ALIASES)
        self.events = HistoryTable(root, REGISTRY_EVENTS, storage_options=storage_options,
                                   commit_retries=commit_retries,
                                   complete=self.complete_history)
        # The ledger reads the events through a handle of its own, and its background writer
        # commits and checkpoints through others: a thread never shares a snapshot it updates.
        self.ledger = EventLedger(handle(REGISTRY_EVENTS), grace_seconds=event_grace_seconds,
                                  checkpoint_path=ledger_checkpoint(root),
                                  writer_events=handle(REGISTRY_EVENTS))
        self._generations: dict[str, int] = {}

        def mirror(table: DeltaTableHandle, keys: list[str], **options) -> TableMirror:
            return TableMirror(table, keys, self.ledger, checkpoint_handle=handle(table.spec),
                               **options)

        self.model_state = mirror(self.models, ["model_id"], group_by="name",
                                  on_row=self._saw_model)
        self.version_state = mirror(self.versions, ["model_id", "version"], group_by="model_id")
        self.alias_state = mirror(self.aliases, ["model_id", "alias"], group_by="model_id")
        self.lock = threading.RLock()

    def refresh(self) -> None:
        """Bring the three state mirrors up to date, and the events of what changed."""
        for mirror in (self.model_state, self.version_state, self.alias_state):
            mirror.refresh()
        self.ledger.settle()

    def complete_history(self) -> None:
        """Make ``registry_events`` hold the events of every change this process knows of:
        its own (queued for the background writer), those of writers gone or stalled past
        the grace period (repaired), and those live writers are committing (waited for
        briefly)."""
        with self.lock:
            self.refresh()
            self.ledger.await_writers()
            self.ledger.flush()

    def _saw_model(self, row: dict) -> None:
        name = row["name"]
        self._generations[name] = max(self._generations.get(name, 0), row["name_generation"])

    # -- reading (of the state last refreshed) --------------------------------------------
    def model_rows(self, *, include_deleted: bool = False) -> list[dict]:
        """The current row of every registered model (live ones unless ``include_deleted``)."""
        return self.model_state.rows(None if include_deleted else lambda r: not r["deleted"])

    def name_generations(self, name: str) -> int:
        """How many models have ever taken ``name`` (the generation the next one claims - 1)."""
        return self._generations.get(name, 0)

    def live_model(self, name: str) -> dict | None:
        """The current row of the live model named ``name``, if there is one."""
        return next((row for row in self.model_state.rows_of(name) if not row["deleted"]),
                    None)

    def version_rows(self, model_ids: list[str] | None = None) -> list[dict]:
        """The current row of every version (tombstones included) of the given models (all
        when None), by model then version."""
        rows = (self.version_state.rows() if model_ids is None else
                [row for model_id in set(model_ids)
                 for row in self.version_state.rows_of(model_id)])
        return sorted(rows, key=lambda r: (r["model_id"], r["version"]))

    def max_version(self, model_id: str) -> int:
        return max((r["version"] for r in self.version_state.rows_of(model_id)), default=0)

    def alias_rows(self, model_ids: list[str] | None = None) -> list[dict]:
        """The live aliases of the given models (all when None)."""
        rows = (self.alias_state.rows() if model_ids is None else
                [row for model_id in set(model_ids) for row in self.alias_state.rows_of(model_id)])
        return [row for row in rows if not row["deleted"]]

    def release(self) -> None:
        """Commit the queued events, then drop the open snapshots."""
        self.ledger.flush()
        for handle in (self.models, self.versions, self.aliases, self.events):
            handle.release()

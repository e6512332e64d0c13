"""The registry's state tables: their current rows, kept in memory, and serial commits.

Rows are never changed in place: every change appends a row whose ``updated_at`` is newer,
and the current state is the newest row of each key (:mod:`sparktrack._store.current_rules`).
Each table is mirrored in memory as that current state (:class:`TableMirror`) and brought up
to date from the Delta log before each operation: reading the few commits since the last look,
not the table. Changes are serial commits (:mod:`sparktrack._delta.serial`): a change decided
on version N of a table lands as version N + 1 or not at all, so no two processes can both
claim a version number or both overwrite the same row from the same state.
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


def _rows(spec: TableSpec, rows: list[dict]) -> pa.Table:
    rows = [{**row, "tags": list(row["tags"].items())} if isinstance(row.get("tags"), dict)
            else row for row in rows]
    return pa.Table.from_pylist(rows, schema=spec.schema)


class TableMirror:
    """The current row of each key of one table, in step with the table's Delta log.

    ``on_row`` sees every row ever read or committed (the current ones and the replaced
    ones), for facts that outlive a row, such as the generations a model name has had.
    """

    def __init__(self, handle: DeltaTableHandle, keys: Sequence[str], ledger: EventLedger, *,
                 on_row: Callable[[dict], None] | None = None) -> None:
        self.handle = handle
        self.name = handle.spec.name
        self.log = SerialLog(handle)
        self.keys = tuple(keys)
        self.version: int | None = None  # None: not read yet
        self.current: dict[tuple, dict] = {}
        self._ledger = ledger
        self._on_row = on_row

    def refresh(self) -> None:
        """Apply the commits made since the last look (by any process); the changes among
        them go to the event ledger, which checks that their events arrive."""
        tail = None if self.version is None else self.log.since(self.version)
        if tail is None:
            version, rows = self.log.load()
            self.current = {}
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
        table = _rows(self.handle.spec, stamped)
        if not self.log.commit_next(-1 if self.version is None else self.version, table,
                                    metadata=metadata):
            return False
        self.version += 1
        self._fold(table.to_pylist())
        return True

    def rows(self, where: Callable[[dict], bool] | None = None) -> list[dict]:
        return [row for row in self.current.values() if where is None or where(row)]

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
            if self._on_row is not None:
                self._on_row(row)


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
        self.events = handle(REGISTRY_EVENTS)
        self.ledger = EventLedger(self.events, grace_seconds=event_grace_seconds,
                                  checkpoint_path=ledger_checkpoint(root))
        self._generations: dict[str, int] = {}
        self.model_state = TableMirror(self.models, ["model_id"], self.ledger,
                                       on_row=self._saw_model)
        self.version_state = TableMirror(self.versions, ["model_id", "version"], self.ledger)
        self.alias_state = TableMirror(self.aliases, ["model_id", "alias"], self.ledger)
        self.lock = threading.RLock()

    def refresh(self) -> None:
        """Bring the three state mirrors up to date, and the events of what changed."""
        for mirror in (self.model_state, self.version_state, self.alias_state):
            mirror.refresh()
        self.ledger.settle()

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

    def version_rows(self, model_ids: list[str] | None = None) -> list[dict]:
        """The current row of every version (tombstones included) of the given models (all
        when None), by model then version."""
        wanted = None if model_ids is None else set(model_ids)
        rows = self.version_state.rows(
            None if wanted is None else lambda r: r["model_id"] in wanted)
        return sorted(rows, key=lambda r: (r["model_id"], r["version"]))

    def max_version(self, model_id: str) -> int:
        return max((r["version"] for r in self.version_state.rows(
            lambda r: r["model_id"] == model_id)), default=0)

    def alias_rows(self, model_ids: list[str] | None = None) -> list[dict]:
        """The live aliases of the given models (all when None)."""
        wanted = None if model_ids is None else set(model_ids)
        return self.alias_state.rows(
            lambda r: not r["deleted"] and (wanted is None or r["model_id"] in wanted))

    def release(self) -> None:
        for handle in (self.models, self.versions, self.aliases, self.events):
            handle.release()

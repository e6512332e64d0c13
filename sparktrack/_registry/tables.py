"""The registry's state tables: read the current rows, write new versions of rows.

Rows are never changed in place: every change appends a row whose ``updated_at`` is newer,
and the current state is resolved by the rules of :mod:`sparktrack._store.current_rules`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from sparktrack._delta import DeltaTableHandle
from sparktrack._store.current_rules import (
    current_model_aliases,
    current_model_versions,
    current_registered_models,
)
from sparktrack._store.rows import next_version
from sparktrack._store.schemas import (
    MODEL_ALIASES,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    REGISTRY_EVENTS,
    TableSpec,
)

__all__ = ["RegistryTables"]


def _rows(spec: TableSpec, rows: list[dict]) -> pa.Table:
    for row in rows:
        if isinstance(row.get("tags"), dict):
            row["tags"] = list(row["tags"].items())
    return pa.Table.from_pylist(rows, schema=spec.schema)


class RegistryTables:
    """The four registry tables of one store root."""

    def __init__(self, root: str, *, storage_options: dict[str, str] | None,
                 commit_retries: int) -> None:
        def handle(spec: TableSpec) -> DeltaTableHandle:
            return DeltaTableHandle(root, spec, storage_options=storage_options,
                                    commit_retries=commit_retries)

        self.models = handle(REGISTERED_MODELS)
        self.versions = handle(MODEL_VERSIONS)
        self.aliases = handle(MODEL_ALIASES)
        self.events = handle(REGISTRY_EVENTS)

    # -- reading ---------------------------------------------------------------------------
    def model_rows(self, *, include_deleted: bool = False) -> list[dict]:
        """The current row of every registered model (live ones unless ``include_deleted``)."""
        current = current_registered_models(self.models.read())
        if not include_deleted:
            current = current.filter(pc.invert(current.column("deleted")))
        return current.to_pylist()

    def name_generations(self, name: str) -> int:
        """How many models have ever taken ``name`` (the generation the next one claims - 1)."""
        rows = self.models.read(where=pds.field("name") == name, columns=["name_generation"])
        if rows.num_rows == 0:
            return 0
        return int(pc.max(rows.column("name_generation")).as_py())

    def version_rows(self, model_ids: list[str] | None = None) -> list[dict]:
        """The current row of every version (tombstones included) of the given models (all
        when None), by model then version."""
        if model_ids is not None and not model_ids:
            return []
        where = None if model_ids is None else _among(model_ids)
        current = current_model_versions(self.versions.read(where=where))
        current = current.sort_by([("model_id", "ascending"), ("version", "ascending")])
        return current.to_pylist()

    def max_version(self, model_id: str) -> int:
        rows = self.versions.read(where=pds.field("model_id") == model_id, columns=["version"])
        if rows.num_rows == 0:
            return 0
        return int(pc.max(rows.column("version")).as_py())

    def alias_rows(self, model_ids: list[str] | None = None) -> list[dict]:
        """The live aliases of the given models (all when None)."""
        if model_ids is not None and not model_ids:
            return []
        where = None if model_ids is None else _among(model_ids)
        return current_model_aliases(self.aliases.read(where=where)).to_pylist()

    # -- writing -----------------------------------------------------------------------------
    def write_models(self, rows: list[dict]) -> None:
        self.models.append(_rows(REGISTERED_MODELS, [_stamped(row) for row in rows]))

    def write_versions(self, rows: list[dict]) -> None:
        self.versions.append(_rows(MODEL_VERSIONS, [_stamped(row) for row in rows]))

    def write_aliases(self, rows: list[dict]) -> None:
        self.aliases.append(_rows(MODEL_ALIASES, [_stamped(row) for row in rows]))

    def model_table(self, rows: list[dict]) -> pa.Table:
        return _rows(REGISTERED_MODELS, [_stamped(row) for row in rows])

    def version_table(self, rows: list[dict]) -> pa.Table:
        return _rows(MODEL_VERSIONS, [_stamped(row) for row in rows])

    def release(self) -> None:
        for handle in (self.models, self.versions, self.aliases, self.events):
            handle.release()


def _among(model_ids: list[str]) -> pds.Expression:
    return pds.field("model_id").isin(pa.array(model_ids, pa.string()))


def _stamped(row: dict) -> dict:
    return {**row, "updated_at": next_version()}

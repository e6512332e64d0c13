"""Reading an MLflow database (SQLite or any SQLAlchemy URI) directly, table by table.

MLflow's own client would read a run at a time through its entities; reading the tables
(``mlflow/store/tracking/dbmodels/models.py`` and ``mlflow/store/model_registry/dbmodels``,
the same in MLflow 2.x and 3.x) with a few queries per batch of runs is what makes an import
of ten thousand runs take seconds. Columns an older schema lacks are read as NULL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa

from sparktrack.errors import InvalidInputError, MissingRequirementError
from sparktrack._transfer.source import (
    SourceExperiment,
    SourceModel,
    SourceRunData,
    SourceVersion,
    local_path,
    metric_table,
    run_table,
    status_name,
    text_table,
)
from sparktrack._validation import quoted

__all__ = ["SqlSource"]

# Ids per IN (...) list: below every database's limit on bound parameters.
_IDS_PER_QUERY = 500

_RUN_SELECT = (
    ("run_uuid", None), ("name", None), ("status", None), ("user_id", None),
    ("source_type", None), ("source_name", None), ("start_time", None), ("end_time", None),
    ("lifecycle_stage", "'active'"), ("deleted_time", None), ("artifact_uri", None),
)


class SqlSource:
    """An MLflow tracking database opened read-only through SQLAlchemy."""

    def __init__(self, uri: str) -> None:
        try:
            import sqlalchemy as sa
        except ImportError as exc:
            raise MissingRequirementError(
                "Importing from an MLflow database needs SQLAlchemy: pip install sqlalchemy "
                "(it comes with mlflow)."
            ) from exc
        self.uri = uri
        self._sa = sa
        if uri.lower().startswith("sqlite:"):
            _require_sqlite_file(uri)
        try:
            self._engine = sa.create_engine(uri)
            self._columns = {
                table: {c["name"] for c in sa.inspect(self._engine).get_columns(table)}
                for table in sa.inspect(self._engine).get_table_names()
            }
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise InvalidInputError(
                f"Cannot open the MLflow database {quoted(uri)}: {str(exc)[:200]}. Check the "
                "URI (as given to mlflow's --backend-store-uri) and that its driver is installed."
            ) from exc
        missing = {"experiments", "runs", "params", "metrics", "tags"} - self._columns.keys()
        if missing:
            raise InvalidInputError(
                f"{quoted(uri)} is not an MLflow tracking database: it has no table "
                f"{', '.join(sorted(missing))}. Give the URI MLflow was started with "
                "(--backend-store-uri)."
            )

    # -- queries ---------------------------------------------------------------------------------
    def _rows(self, sql: str, **params) -> list[tuple]:
        sa = self._sa
        statement = sa.text(sql)
        for name, value in params.items():
            if isinstance(value, (list, tuple)):
                statement = statement.bindparams(sa.bindparam(name, expanding=True))
        with self._engine.connect() as connection:
            return [tuple(row) for row in connection.execute(statement, params)]

    def _select(self, table: str, columns: Sequence[tuple[str, str | None]]) -> str:
        """A column list that reads NULL (or the given default) for columns the table lacks."""
        present = self._columns.get(table, set())
        return ", ".join(name if name in present else f"{default or 'NULL'} AS {name}"
                         for name, default in columns)

    def _has(self, table: str) -> bool:
        return table in self._columns

    # -- tracking --------------------------------------------------------------------------------
    def experiments(self) -> list[SourceExperiment]:
        tags: dict[str, dict[str, str]] = {}
        for experiment_id, key, value in self._rows(
            "SELECT experiment_id, key, value FROM experiment_tags"
        ) if self._has("experiment_tags") else []:
            tags.setdefault(str(experiment_id), {})[key] = value
        columns = self._select("experiments", [
            ("experiment_id", None), ("name", None), ("artifact_location", None),
            ("lifecycle_stage", "'active'"), ("creation_time", None), ("last_update_time", None),
        ])
        return [
            SourceExperiment(
                experiment_id=str(row[0]), name=row[1], artifact_location=row[2],
                lifecycle_stage=row[3] or "active", creation_time=row[4],
                last_update_time=row[5], tags=tags.get(str(row[0]), {}),
            )
            for row in self._rows(f"SELECT {columns} FROM experiments ORDER BY experiment_id")
        ]

    def runs(self, experiment_id: str) -> pa.Table:
        columns = self._select("runs", _RUN_SELECT)
        rows = self._rows(
            f"SELECT {columns} FROM runs WHERE experiment_id = :e "
            "ORDER BY start_time, run_uuid", e=int(experiment_id),
        )
        return run_table([(*row[:2], status_name(row[2]), *row[3:]) for row in rows])

    def run_data(self, experiment_id: str, run_ids: list[str]) -> SourceRunData:
        tags, params, metrics = [], [], []
        for ids in _chunks(run_ids, _IDS_PER_QUERY):
            tags += self._rows("SELECT run_uuid, key, value FROM tags WHERE run_uuid IN :ids",
                               ids=ids)
            params += self._rows(
                "SELECT run_uuid, key, value FROM params WHERE run_uuid IN :ids", ids=ids)
            nan = "is_nan" if "is_nan" in self._columns["metrics"] else "0"
            metrics += [
                # MLflow stores a NaN as 0 with is_nan set.
                (run_id, key, float("nan") if is_nan else value, timestamp, step or 0)
                for run_id, key, value, timestamp, step, is_nan in self._rows(
                    f"SELECT run_uuid, key, value, timestamp, step, {nan} FROM metrics "
                    "WHERE run_uuid IN :ids", ids=ids)
            ]
        return SourceRunData(tags=text_table(tags), params=text_table(params),
                             metrics=metric_table(metrics))

    def local_artifacts(self, experiment_id: str, run: dict) -> str | None:
        path = local_path(run.get("artifact_uri"))
        return path if path and os.path.isdir(path) else None

    # -- registry --------------------------------------------------------------------------------
    def models(self) -> list[SourceModel]:
        if not self._has("registered_models"):
            return []
        model_tags = self._grouped("registered_model_tags", "name, key, value", 1)
        version_tags = self._grouped("model_version_tags", "name, version, key, value", 2)
        aliases = self._grouped("registered_model_aliases", "name, alias, version", 1)
        versions: dict[str, list[SourceVersion]] = {}
        columns = self._select("model_versions", [
            ("name", None), ("version", None), ("creation_time", None),
            ("last_updated_time", None), ("description", None), ("user_id", None),
            ("current_stage", "'None'"), ("source", None), ("storage_location", None),
            ("run_id", None), ("run_link", None), ("status", "'READY'"),
        ])
        for row in self._rows(f"SELECT {columns} FROM model_versions ORDER BY name, version"):
            name, number = row[0], int(row[1])
            versions.setdefault(name, []).append(SourceVersion(
                version=number, creation_timestamp=row[2], last_updated_timestamp=row[3],
                description=row[4], user_id=row[5], current_stage=row[6] or "None",
                source=row[7], storage_location=row[8], run_id=row[9], run_link=row[10],
                status=row[11] or "READY",
                tags=dict(version_tags.get((name, number), [])),
            ))
        return [
            SourceModel(
                name=name, creation_timestamp=created, last_updated_timestamp=updated,
                description=description, tags=dict(model_tags.get((name,), [])),
                versions=versions.get(name, []),
                aliases={alias: int(version) for alias, version in aliases.get((name,), [])},
            )
            for name, created, updated, description in self._rows(
                "SELECT name, creation_time, last_updated_time, description "
                "FROM registered_models ORDER BY name")
        ]

    def _grouped(self, table: str, columns: str, key_width: int) -> dict[tuple, list[tuple]]:
        """Rows of ``table`` grouped by their first ``key_width`` columns."""
        grouped: dict[tuple, list[tuple]] = {}
        if not self._has(table):
            return grouped
        for row in self._rows(f"SELECT {columns} FROM {table}"):
            grouped.setdefault(tuple(row[:key_width]), []).append(row[key_width:])
        return grouped

    def close(self) -> None:
        self._engine.dispose()


def _require_sqlite_file(uri: str) -> None:
    # SQLite creates a missing database file on connect: an import would then find an empty
    # store and report nothing, instead of telling the user the path is wrong.
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    path = path.split("?", 1)[0]
    if path in ("", ":memory:") or not os.path.isfile(path):
        raise InvalidInputError(
            f"No MLflow database at {quoted(uri)}: the file {quoted(path)} does not exist. "
            "Give the path MLflow used, e.g. sqlite:///mlflow.db (relative to the current "
            "folder) or sqlite:////abs/path/mlflow.db."
        )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

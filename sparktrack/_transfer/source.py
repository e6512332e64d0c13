"""What an MLflow store holds, in the shape the importer reads, and which reader opens a URI.

Two readers produce it: :mod:`.sql_source` (an MLflow database: SQLite or any SQLAlchemy URI)
and :mod:`.mlruns_source` (the folder of MLflow's old file store). Runs and their data come as
Arrow tables so that thousands of runs move without a Python object per value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from sparktrack.errors import InvalidInputError
from sparktrack._validation import quoted

__all__ = [
    "METRIC_COLUMNS",
    "RUN_COLUMNS",
    "SourceExperiment",
    "SourceModel",
    "SourceRunData",
    "SourceVersion",
    "StoreSource",
    "TEXT_COLUMNS",
    "local_path",
    "metric_table",
    "open_source",
    "run_table",
    "status_name",
    "text_table",
]

# MLflow's run statuses as its file store writes them (``RunStatus`` enum numbers).
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}

RUN_COLUMNS = pa.schema([
    ("run_id", pa.string()), ("run_name", pa.string()), ("status", pa.string()),
    ("user_id", pa.string()), ("source_type", pa.string()), ("source_name", pa.string()),
    ("start_time", pa.int64()), ("end_time", pa.int64()), ("lifecycle_stage", pa.string()),
    ("deleted_time", pa.int64()), ("artifact_uri", pa.string()),
])
TEXT_COLUMNS = pa.schema([("run_id", pa.string()), ("key", pa.string()), ("value", pa.string())])
METRIC_COLUMNS = pa.schema([
    ("run_id", pa.string()), ("key", pa.string()), ("value", pa.float64()),
    ("timestamp", pa.int64()), ("step", pa.int64()),
])

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")


@dataclass(frozen=True, slots=True)
class SourceExperiment:
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str
    creation_time: int | None
    last_update_time: int | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceRunData:
    """Tags and params (``TEXT_COLUMNS``) and every metric point (``METRIC_COLUMNS``) of some
    runs."""

    tags: pa.Table
    params: pa.Table
    metrics: pa.Table


@dataclass(frozen=True, slots=True)
class SourceVersion:
    version: int
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    description: str | None
    user_id: str | None
    current_stage: str
    source: str | None
    storage_location: str | None
    run_id: str | None
    run_link: str | None
    status: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceModel:
    name: str
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    description: str | None
    tags: dict[str, str]
    versions: list[SourceVersion]
    aliases: dict[str, int]


class StoreSource(Protocol):
    """An MLflow store opened for reading."""

    uri: str

    def experiments(self) -> list[SourceExperiment]: ...

    def runs(self, experiment_id: str) -> pa.Table:
        """The runs of an experiment (``RUN_COLUMNS``), oldest first."""

    def run_data(self, experiment_id: str, run_ids: list[str]) -> SourceRunData: ...

    def local_artifacts(self, experiment_id: str, run: dict) -> str | None:
        """The local folder holding a run's artifacts, None when they are not on this disk."""

    def models(self) -> list[SourceModel]: ...

    def close(self) -> None: ...


def run_table(rows: list[tuple]) -> pa.Table:
    """Rows in ``RUN_COLUMNS`` order as a table."""
    return _table(rows, RUN_COLUMNS)


def _table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                    schema=schema)


def text_table(rows: list[tuple]) -> pa.Table:
    return _table(rows, TEXT_COLUMNS)


def metric_table(rows: list[tuple]) -> pa.Table:
    return _table(rows, METRIC_COLUMNS)


def status_name(status: object) -> str:
    """A run status as MLflow's name (its file store writes the enum's number)."""
    if isinstance(status, int):
        return STATUS_NAMES.get(status, "FINISHED")
    return str(status or "FINISHED").upper()


def local_path(uri: str | None) -> str | None:
    """The local path a ``file:`` URI or a plain path names; None for any other scheme."""
    if not uri:
        return None
    if uri.startswith("file://"):
        return uri[len("file://"):] or "/"
    if uri.startswith("file:"):
        return uri[len("file:"):]
    if "://" in uri or uri.split(":", 1)[0] in ("mlflow-artifacts", "dbfs", "runs", "models"):
        return None
    return uri


def open_source(uri: str) -> StoreSource:
    """Open the MLflow store at ``uri``: a database URI or an ``mlruns`` folder.

    Raises:
        InvalidInputError: the URI names neither (the message says what is accepted).
    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError(
            f"Invalid MLflow tracking URI {quoted(uri)}: give a database URI such as "
            "sqlite:///mlflow.db or an mlruns folder such as ./mlruns."
        )
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if scheme in _SQL_SCHEMES:
        from sparktrack._transfer.sql_source import SqlSource

        return SqlSource(uri)
    path = local_path(uri)
    if path is not None and len(scheme) != 1:  # "C:" is a drive, not a scheme
        from sparktrack._transfer.mlruns_source import MlrunsSource

        return MlrunsSource(os.path.abspath(os.path.expanduser(path)), uri=uri)
    raise InvalidInputError(
        f"Cannot import from {quoted(uri)}: sparktrack reads MLflow's database (sqlite:///path, "
        "postgresql://..., mysql://...) or an mlruns folder (a path or file:///path). For a "
        "tracking server (http://...), import from the database behind it (its "
        "--backend-store-uri)."
    )

"""The store's tables and their schemas: a public contract for dashboards and Delta readers.

Bump :data:`SCHEMA_VERSION` on any change and say what changed below. Every table is
append-only; where a thing can change, its current state is its newest row by ``updated_at``
(microseconds since the epoch, strictly increasing within a process).

Version history:
    1 -- first release.
    2 -- the ``inputs`` table: datasets recorded as inputs of runs.
    3 -- the model registry: ``registered_models``, ``model_versions``, ``model_aliases`` and
         the append-only ``registry_events`` (:data:`REGISTRY_TABLES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "EXPERIMENTS",
    "INPUTS",
    "METRICS",
    "METRIC_SUMMARIES",
    "MODEL_ALIASES",
    "MODEL_VERSIONS",
    "PARAMS",
    "REGISTERED_MODELS",
    "REGISTRY_EVENTS",
    "REGISTRY_TABLES",
    "RUNS",
    "RUNS_LATEST",
    "SCHEMA_VERSION",
    "TABLES",
    "TAGS",
    "TableSpec",
]

SCHEMA_VERSION = 3


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table's folder name under the store root, its schema and partition columns."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    description: str


_STR = pa.string()
_I64 = pa.int64()
_F64 = pa.float64()


def _schema(*columns: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=nullable) for name, kind, nullable in columns])


EXPERIMENTS = TableSpec(
    name="experiments",
    schema=_schema(
        ("experiment_id", _STR, False),
        ("name", _STR, False),
        ("artifact_location", _STR, False),
        ("lifecycle_stage", _STR, False),
        ("creation_time", _I64, False),
        ("last_update_time", _I64, False),
        ("tags", pa.map_(_STR, _STR), True),
        ("updated_at", _I64, False),
    ),
    partition_by=(),
    description="One row per version of an experiment; newest updated_at per experiment_id wins.",
)

RUNS = TableSpec(
    name="runs",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("run_name", _STR, True),
        ("parent_run_id", _STR, True),
        ("status", _STR, False),
        ("user_id", _STR, True),
        ("source_type", _STR, True),
        ("source_name", _STR, True),
        ("git_commit", _STR, True),
        ("git_branch", _STR, True),
        ("git_repo_url", _STR, True),
        ("start_time", _I64, False),
        ("end_time", _I64, True),
        ("lifecycle_stage", _STR, False),
        ("deleted_time", _I64, True),
        ("artifact_uri", _STR, False),
        ("updated_at", _I64, False),
    ),
    partition_by=("experiment_id",),
    description="One row per version of a run's info; newest updated_at per run_id wins.",
)

PARAMS = TableSpec(
    name="params",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("key", _STR, False),
        ("value", _STR, False),
        ("logged_at", _I64, False),
    ),
    partition_by=("experiment_id",),
    description="Write-once params; the first row per (run_id, key) is the value.",
)

METRICS = TableSpec(
    name="metrics",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("key", _STR, False),
        ("value", _F64, False),
        ("timestamp", _I64, False),
        ("step", _I64, False),
    ),
    partition_by=("experiment_id",),
    description="Every metric point ever logged (the history).",
)

TAGS = TableSpec(
    name="tags",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("key", _STR, False),
        ("value", _STR, True),
        ("deleted", pa.bool_(), False),
        ("updated_at", _I64, False),
    ),
    partition_by=("experiment_id",),
    description="Run tags; newest updated_at per (run_id, key) wins; deleted=true removes it.",
)

METRIC_SUMMARIES = TableSpec(
    name="metric_summaries",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("key", _STR, False),
        ("latest_value", _F64, False),
        ("latest_step", _I64, False),
        ("latest_timestamp", _I64, False),
        ("min_value", _F64, True),
        ("max_value", _F64, True),
        ("count", _I64, False),
        ("updated_at", _I64, False),
    ),
    partition_by=("experiment_id",),
    description=(
        "Partial summaries of metric points, one row per (run_id, key) per commit; merge rows "
        "per (run_id, key): latest by greatest (step, timestamp, value), min of min, max of max, "
        "sum of count. Search reads these, never the history."
    ),
)

INPUTS = TableSpec(
    name="inputs",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("name", _STR, False),
        ("digest", _STR, False),
        ("source_type", _STR, False),
        ("source", _STR, False),
        ("schema", _STR, True),
        ("profile", _STR, True),
        ("context", _STR, True),
        ("tags", pa.map_(_STR, _STR), True),
        ("logged_at", _I64, False),
    ),
    partition_by=("experiment_id",),
    description=(
        "Datasets used by runs (MLflow's run inputs); the first row per (run_id, name, digest) "
        "by logged_at is the input. source, schema and profile are JSON; context is the value "
        "of the input tag mlflow.data.context, also found in tags."
    ),
)

_METRIC_MAP = pa.map_(_STR, _F64)
_TEXT_MAP = pa.map_(_STR, _STR)

RUNS_LATEST = TableSpec(
    name="runs_latest",
    schema=_schema(
        ("run_id", _STR, False),
        ("experiment_id", _STR, False),
        ("run_name", _STR, True),
        ("parent_run_id", _STR, True),
        ("user_id", _STR, True),
        ("status", _STR, False),
        ("lifecycle_stage", _STR, False),
        ("start_time", pa.timestamp("us", tz="UTC"), False),
        ("end_time", pa.timestamp("us", tz="UTC"), True),
        ("artifact_uri", _STR, False),
        ("metrics", _METRIC_MAP, True),
        ("metrics_min", _METRIC_MAP, True),
        ("metrics_max", _METRIC_MAP, True),
        ("params", _TEXT_MAP, True),
        ("tags", _TEXT_MAP, True),
    ),
    partition_by=("experiment_id",),
    description="Materialized: one row per run in the Databricks mlflow-experiment shape.",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (EXPERIMENTS, RUNS, PARAMS, METRICS, TAGS, METRIC_SUMMARIES, INPUTS)
}


# -- the model registry (small tables: unpartitioned) ---------------------------------------
# A registered model has an internal ``model_id`` that lasts for its life: a rename keeps it,
# and a model deleted then created again under the same name gets a new one (its versions
# start again at 1, as in MLflow). ``name`` on every row is the model's name when the row was
# written; a rename writes new rows of the model, its versions and its aliases.

REGISTERED_MODELS = TableSpec(
    name="registered_models",
    schema=_schema(
        ("model_id", _STR, False),
        ("name", _STR, False),
        ("name_generation", _I64, False),
        ("creation_timestamp", _I64, False),
        ("last_updated_timestamp", _I64, False),
        ("description", _STR, True),
        ("user_id", _STR, True),
        ("tags", pa.map_(_STR, _STR), True),
        ("deleted", pa.bool_(), False),
        ("updated_at", _I64, False),
    ),
    partition_by=(),
    description=(
        "One row per version of a registered model; newest updated_at per model_id wins; "
        "deleted=true removes it. (name, name_generation) is unique: the n-th model to take a "
        "name claims generation n."
    ),
)

MODEL_VERSIONS = TableSpec(
    name="model_versions",
    schema=_schema(
        ("model_id", _STR, False),
        ("name", _STR, False),
        ("version", _I64, False),
        ("creation_timestamp", _I64, False),
        ("last_updated_timestamp", _I64, False),
        ("description", _STR, True),
        ("user_id", _STR, True),
        ("current_stage", _STR, False),
        ("source", _STR, True),
        ("storage_location", _STR, True),
        ("run_id", _STR, True),
        ("run_link", _STR, True),
        ("status", _STR, False),
        ("tags", pa.map_(_STR, _STR), True),
        ("deleted", pa.bool_(), False),
        ("updated_at", _I64, False),
    ),
    partition_by=(),
    description=(
        "One row per version of a model version; newest updated_at per (model_id, version) "
        "wins. (model_id, version) is unique among first rows: versions are allocated by a "
        "conflict-checked MERGE. A deleted version keeps a tombstone (deleted=true, stage "
        "Deleted_Internal) so that its number is never reused."
    ),
)

MODEL_ALIASES = TableSpec(
    name="model_aliases",
    schema=_schema(
        ("model_id", _STR, False),
        ("name", _STR, False),
        ("alias", _STR, False),
        ("version", _I64, True),
        ("deleted", pa.bool_(), False),
        ("updated_at", _I64, False),
    ),
    partition_by=(),
    description="Aliases; newest updated_at per (model_id, alias) wins; deleted=true removes it.",
)

REGISTRY_EVENTS = TableSpec(
    name="registry_events",
    schema=_schema(
        ("event_id", _STR, False),
        ("timestamp", _I64, False),
        ("event", _STR, False),
        ("model_id", _STR, False),
        ("name", _STR, False),
        ("version", _I64, True),
        ("user_id", _STR, True),
        ("stage", _STR, True),
        ("previous_stage", _STR, True),
        ("alias", _STR, True),
        ("previous_version", _I64, True),
        ("key", _STR, True),
        ("value", _STR, True),
    ),
    partition_by=(),
    description=(
        "Append-only history of the registry: one row per change (event names the change; "
        "stage/previous_stage for transitions, alias/version/previous_version for aliases, "
        "key/value for tags, value for descriptions and new names). timestamp is milliseconds; "
        "event_id orders the events of one process (those of one call share a timestamp)."
    ),
)

REGISTRY_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (REGISTERED_MODELS, MODEL_VERSIONS, MODEL_ALIASES, REGISTRY_EVENTS)
}

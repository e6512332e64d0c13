"""Every table of a store as a view, so that dashboards are plain SQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparktrack.errors import InvalidInputError
from sparktrack.spark._datasource import SOURCE_NAME, register
from sparktrack.spark._reader import OUTPUT_SCHEMAS
from sparktrack._delta import join_uri
from sparktrack._delta.snapshots import is_delta_table
from sparktrack._store.schemas import REGISTRY_TABLES, RUNS_LATEST, TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["delta_configured", "register_tables"]


def delta_configured(spark: SparkSession) -> bool:
    """Whether the session has Delta Lake's catalog and SQL extension (delta-spark) set up."""
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    catalog = spark.conf.get("spark.sql.catalog.spark_catalog", "") or ""
    return "DeltaSparkSessionExtension" in extensions and "DeltaCatalog" in catalog


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def register_tables(
    spark: SparkSession,
    uri: str | None = None,
    *,
    database: str | None = None,
    prefix: str = "",
    include_deleted: bool = False,
) -> list[str]:
    """Make each table of a store queryable by name in SQL; return the names.

    Without ``database``: temporary views ``<prefix>runs``, ``<prefix>metrics``,
    ``<prefix>params``, ``<prefix>tags``, ``<prefix>experiments``,
    ``<prefix>metric_summaries``, ``<prefix>inputs`` and the model registry's
    ``<prefix>registered_models``, ``<prefix>model_versions``, ``<prefix>model_aliases`` and
    ``<prefix>registry_events`` over the ``sparktrack`` data source (current state, deleted
    runs and registry entries left out unless ``include_deleted``).

    With ``database`` (needs a session with Delta Lake configured): external catalog tables
    ``database.<prefix><table>`` on the raw Delta tables (the append-only history) and on
    ``runs_latest`` when the maintenance job has materialized it.

    Args:
        uri: the store; defaults to the tracking URI (:func:`sparktrack.get_tracking_uri`).
    """
    from sparktrack import get_tracking_uri
    from sparktrack._store import normalize_root

    root = normalize_root(uri or get_tracking_uri())
    if database is not None:
        return _catalog_tables(spark, root, database, prefix)
    register(spark)
    names = []
    for table in sorted(OUTPUT_SCHEMAS):
        view = f"{prefix}{table}"
        (
            spark.read.format(SOURCE_NAME)
            .option("table", table)
            .option("include_deleted", str(include_deleted).lower())
            .load(root)
            .createOrReplaceTempView(view)
        )
        names.append(view)
    return names


def _catalog_tables(spark: SparkSession, root: str, database: str, prefix: str) -> list[str]:
    if not delta_configured(spark):
        raise InvalidInputError(
            f"register_tables(database={database!r}) creates Delta catalog tables, but this "
            "session has no Delta Lake configured (spark.sql.extensions / spark_catalog). "
            "Leave database out to get temporary views over the sparktrack data source."
        )
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(database)}")
    names = []
    for table in [*sorted(TABLES), *sorted(REGISTRY_TABLES), RUNS_LATEST.name]:
        location = join_uri(root, table)
        if not is_delta_table(location):
            continue
        name = f"{_quote(database)}.{_quote(prefix + table)}"
        location_literal = "'" + location.replace("\\", "\\\\").replace("'", "\\'") + "'"
        spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION {location_literal}")
        names.append(f"{database}.{prefix}{table}")
    return names

"""Store maintenance: compaction, checkpoints, vacuum and the materialized ``runs_latest``.

Safe while other processes log. Every table is append-only, and each step only changes the
physical layout: compaction commits ``remove`` + ``add`` actions marked ``dataChange=false``
(the same rows in fewer files), a checkpoint summarizes the log, vacuum deletes files that
left the table longer than the retention ago (only those: never an uncommitted file a writer
is about to commit), and ``runs_latest`` is replaced by one overwrite commit. A commit that
loses a race against a writer is retried on a fresh snapshot.

One operation per method, as in delta-rs (``dt.optimize.compact()``, ``dt.vacuum()``)::

    store = Maintenance("./sparktrack-store")
    store.compact()
    store.checkpoint()
    store.vacuum(retention_hours=168)
    store.materialize_runs_latest()
    store.run()                      # all four, in that order; run(steps=("vacuum",)) for some

Not to be confused with deleting runs and ``gc`` (the client's ``delete_run``, ``gc``), which
change which runs a store holds. No Spark needed: ``jobs/maintain.py`` (and
``sparktrack maintain``) run this from a shell, cron or ``spark-submit``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sparktrack._delta import DeltaTableHandle, ops
from sparktrack.errors import InvalidInputError
from sparktrack._store import normalize_root
from sparktrack._store.latest import runs_latest
from sparktrack._store.schemas import (
    METRIC_SUMMARIES,
    PARAMS,
    RUNS,
    RUNS_LATEST,
    REGISTRY_TABLES,
    TABLES,
    TAGS,
)
from sparktrack._store.summary_repair import settle_summaries

__all__ = [
    "DEFAULT_RETENTION_HOURS",
    "STEPS",
    "Maintenance",
    "MaintenanceReport",
    "checkpoint",
    "compact",
    "materialize_runs_latest",
    "vacuum",
]

# The tracking tables and the registry's: a registry change commits one small file, so its
# tables need compaction as much as the tracking tables do.
_MAINTAINED = {**TABLES, **REGISTRY_TABLES}

DEFAULT_RETENTION_HOURS = 168
"""Vacuum keeps files removed less than 7 days ago (Delta's default), for time travel."""

STEPS = ("compact", "checkpoint", "vacuum", "materialize")
"""The steps of :meth:`Maintenance.run`, in the order they run."""


@dataclass(slots=True)
class MaintenanceReport:
    """What one :meth:`Maintenance.run` call did, per table."""

    compacted: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    vacuumed: dict[str, int] = field(default_factory=dict)
    runs_latest_rows: int | None = None
    seconds: float = 0.0


class Maintenance:
    """The maintenance operations of one store.

    Args:
        uri: the store (local folder or object-store URI).
        tables: the tables that compaction, checkpoints and vacuum work on (default: all the
            store's tables).
        storage_options: credentials and options for object stores, as for the client.

    Raises:
        InvalidInputError: a name in ``tables`` is not a table of the store.
    """

    def __init__(
        self,
        uri: str,
        *,
        tables: Iterable[str] | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.root = normalize_root(uri)
        self.storage_options = storage_options
        names = list(tables) if tables is not None else sorted(_MAINTAINED)
        unknown = [name for name in names if name not in _MAINTAINED]
        if unknown:
            raise InvalidInputError(
                f"Unknown table(s) {', '.join(map(repr, unknown))}; the store's tables are "
                f"{', '.join(sorted(_MAINTAINED))}."
            )
        self._tables = names

    def _handles(self) -> list[DeltaTableHandle]:
        return [DeltaTableHandle(self.root, _MAINTAINED[name], storage_options=self.storage_options)
                for name in self._tables]

    def compact(self, *, target_size: int | None = None) -> dict[str, dict[str, Any]]:
        """Rewrite small files of each table into bigger ones (``optimize.compact()``).

        Returns deltalake's metrics per table (``numFilesAdded``, ``numFilesRemoved``, ...).
        """
        results = {}
        for handle in self._handles():
            metrics = ops.compact(handle, target_size=target_size)
            if metrics is not None:
                results[handle.spec.name] = metrics
        return results

    def checkpoint(self) -> dict[str, int]:
        """Write a checkpoint of each table's log and drop expired log files; table -> version."""
        versions = {}
        for handle in self._handles():
            version = ops.checkpoint(handle)
            if version is not None:
                versions[handle.spec.name] = version
        return versions

    def vacuum(self, *, retention_hours: float = DEFAULT_RETENTION_HOURS) -> dict[str, int]:
        """Delete files that left each table more than ``retention_hours`` ago; table -> count.

        Only files the log marks as removed are deleted (delta-rs "lite" vacuum), so a file a
        writer has written but not yet committed is never touched. Time travel to versions
        older than the retention stops working for the vacuumed files.
        """
        if retention_hours < 0:
            raise InvalidInputError(f"retention_hours must be >= 0, not {retention_hours}.")
        removed = {}
        for handle in self._handles():
            if handle.version() is not None:
                removed[handle.spec.name] = ops.vacuum(handle, retention_hours=retention_hours)
        return removed

    def materialize_runs_latest(self) -> int:
        """Replace ``<store>/runs_latest`` with one row per run (deleted runs included, with
        ``lifecycle_stage``); return the number of rows.

        The table has the ``runs_latest`` schema (Databricks ``mlflow-experiment`` shape) and
        is partitioned by experiment_id, so any Delta reader (``spark.read.format("delta")``,
        BI tools, ``deltalake``) can use it without sparktrack.
        """
        settle_summaries(self.root, storage_options=self.storage_options)
        raw = {}
        # Runs first: a run's params/tags/metrics are committed after its row, so reading them
        # later never leaves a run without its data.
        for spec in (RUNS, PARAMS, TAGS, METRIC_SUMMARIES):
            raw[spec.name] = DeltaTableHandle(
                self.root, spec, storage_options=self.storage_options
            ).read()
        rows = runs_latest(raw[RUNS.name], raw[PARAMS.name], raw[TAGS.name],
                           raw[METRIC_SUMMARIES.name], store_root=self.root, include_deleted=True)
        ops.overwrite(
            DeltaTableHandle(self.root, RUNS_LATEST, storage_options=self.storage_options), rows
        )
        return rows.num_rows

    def run(
        self,
        *,
        steps: Iterable[str] = STEPS,
        retention_hours: float = DEFAULT_RETENTION_HOURS,
    ) -> MaintenanceReport:
        """Run the given ``steps`` (default: all of :data:`STEPS`), always in that order.

        Raises:
            InvalidInputError: an unknown step (named), before anything runs.
        """
        wanted = set(steps)
        unknown = sorted(wanted - set(STEPS))
        if unknown:
            raise InvalidInputError(
                f"Unknown maintenance step(s) {', '.join(map(repr, unknown))}; the steps are "
                f"{', '.join(STEPS)}."
            )
        started = time.perf_counter()
        report = MaintenanceReport()
        if "compact" in wanted:
            report.compacted = self.compact()
        if "checkpoint" in wanted:
            report.checkpoints = self.checkpoint()
        if "vacuum" in wanted:
            report.vacuumed = self.vacuum(retention_hours=retention_hours)
        if "materialize" in wanted:
            report.runs_latest_rows = self.materialize_runs_latest()
        report.seconds = time.perf_counter() - started
        return report


# One-step shortcuts: ``compact(uri)`` is ``Maintenance(uri).compact()``.
def compact(
    uri: str,
    *,
    tables: Iterable[str] | None = None,
    target_size: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """:meth:`Maintenance.compact` of the store at ``uri``."""
    return Maintenance(uri, tables=tables, storage_options=storage_options).compact(
        target_size=target_size
    )


def checkpoint(
    uri: str,
    *,
    tables: Iterable[str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, int]:
    """:meth:`Maintenance.checkpoint` of the store at ``uri``."""
    return Maintenance(uri, tables=tables, storage_options=storage_options).checkpoint()


def vacuum(
    uri: str,
    *,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
    tables: Iterable[str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, int]:
    """:meth:`Maintenance.vacuum` of the store at ``uri``."""
    return Maintenance(uri, tables=tables, storage_options=storage_options).vacuum(
        retention_hours=retention_hours
    )


def materialize_runs_latest(uri: str, *, storage_options: dict[str, str] | None = None) -> int:
    """:meth:`Maintenance.materialize_runs_latest` of the store at ``uri``."""
    return Maintenance(uri, storage_options=storage_options).materialize_runs_latest()

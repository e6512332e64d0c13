"""Store maintenance: compaction, checkpoints, vacuum and the materialized ``runs_latest``.

Safe while other processes log. Every table is append-only, and each step only changes the
physical layout: compaction commits ``remove`` + ``add`` actions marked ``dataChange=false``
(the same rows in fewer files), a checkpoint summarizes the log, vacuum deletes files that
left the table longer than the retention ago (only those: never an uncommitted file a writer
is about to commit), and ``runs_latest`` is replaced by one overwrite commit. A commit that
loses a race against a writer is retried on a fresh snapshot.

No Spark needed: ``jobs/maintain.py`` (and ``sparktrack maintain``) run this from a shell,
cron or ``spark-submit``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sparktrack.errors import InvalidInputError, StoreError
from sparktrack.store import normalize_root
from sparktrack.store.delta import (
    _ENGINE_ERRORS,
    DeltaTableHandle,
    _is_permanent,
    _store_error,
    join_uri,
)
from sparktrack.store.latest import runs_latest
from sparktrack.store.summary_repair import settle_summaries
from sparktrack.store.schemas import (
    METRIC_SUMMARIES,
    PARAMS,
    RUNS,
    RUNS_LATEST,
    TABLES,
    TAGS,
)

__all__ = [
    "DEFAULT_RETENTION_HOURS",
    "MaintenanceReport",
    "checkpoint",
    "compact",
    "maintain",
    "materialize_runs_latest",
    "vacuum",
]

DEFAULT_RETENTION_HOURS = 168
"""Vacuum keeps files removed less than 7 days ago (Delta's default), for time travel."""

_RETRIES = 8


@dataclass(slots=True)
class MaintenanceReport:
    """What one :func:`maintain` call did, per table."""

    compacted: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    vacuumed: dict[str, int] = field(default_factory=dict)
    runs_latest_rows: int | None = None
    seconds: float = 0.0


def _handles(root: str, tables: Iterable[str] | None,
             storage_options: dict[str, str] | None) -> list[DeltaTableHandle]:
    names = list(tables) if tables is not None else sorted(TABLES)
    unknown = [name for name in names if name not in TABLES]
    if unknown:
        raise InvalidInputError(
            f"Unknown table(s) {', '.join(map(repr, unknown))}; the store's tables are "
            f"{', '.join(sorted(TABLES))}."
        )
    return [DeltaTableHandle(normalize_root(root), TABLES[name], storage_options=storage_options)
            for name in names]


def _retrying(action, what: str, uri: str):
    """Run ``action`` until it commits (a writer may win a race; each attempt takes a fresh
    snapshot). A store it cannot read or write (permissions, a broken log, a corrupt file)
    fails at once: StoreError, cause first, naming ``uri``."""
    from deltalake.exceptions import CommitFailedError

    for attempt in range(_RETRIES + 1):
        try:
            return action()
        except StoreError:
            raise
        except _ENGINE_ERRORS as exc:
            retryable = isinstance(exc, CommitFailedError) or (
                isinstance(exc, OSError) and not _is_permanent(exc)
            )
            if not retryable or attempt == _RETRIES:
                error = _store_error(what, uri, exc)
                raise StoreError(f"{error} (after {attempt + 1} attempt(s))") from exc
            time.sleep(min(2.0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")


def compact(
    uri: str,
    *,
    tables: Iterable[str] | None = None,
    target_size: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Rewrite small files of each table into bigger ones (``optimize.compact()``).

    Returns deltalake's metrics per table (``numFilesAdded``, ``numFilesRemoved``, ...).
    """
    results = {}
    for handle in _handles(uri, tables, storage_options):
        def run(handle=handle):
            table = handle.snapshot()
            if table is None:
                return None
            return table.optimize.compact(target_size=target_size)

        metrics = _retrying(run, "compacting Delta table", handle.uri)
        if metrics is not None:
            results[handle.spec.name] = metrics
    return results


def checkpoint(
    uri: str,
    *,
    tables: Iterable[str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, int]:
    """Write a checkpoint of each table's log and drop expired log files; table -> version."""
    versions = {}
    for handle in _handles(uri, tables, storage_options):
        table = handle.snapshot()
        if table is None:
            continue
        _retrying(table.create_checkpoint, "checkpointing Delta table", handle.uri)
        _retrying(table.cleanup_metadata, "cleaning up the log of Delta table", handle.uri)
        versions[handle.spec.name] = table.version()
    return versions


def vacuum(
    uri: str,
    *,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
    tables: Iterable[str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> dict[str, int]:
    """Delete files that left each table more than ``retention_hours`` ago; table -> count.

    Only files the log marks as removed are deleted (delta-rs "lite" vacuum), so a file a
    writer has written but not yet committed is never touched. Time travel to versions older
    than the retention stops working for the vacuumed files.
    """
    if retention_hours < 0:
        raise InvalidInputError(f"retention_hours must be >= 0, not {retention_hours}.")
    removed = {}
    for handle in _handles(uri, tables, storage_options):
        table = handle.snapshot()
        if table is None:
            continue
        files = _retrying(
            lambda table=table: table.vacuum(
                retention_hours=int(retention_hours),
                dry_run=False,
                enforce_retention_duration=False,
                full=False,
            ),
            "vacuuming Delta table", handle.uri,
        )
        removed[handle.spec.name] = len(files)
    return removed


def materialize_runs_latest(
    uri: str, *, storage_options: dict[str, str] | None = None
) -> int:
    """Replace ``<store>/runs_latest`` with one row per run (deleted runs included, with
    ``lifecycle_stage``); return the number of rows.

    The table has the ``runs_latest`` schema (Databricks ``mlflow-experiment`` shape) and is
    partitioned by experiment_id, so any Delta reader (``spark.read.format("delta")``, BI
    tools, ``deltalake``) can use it without sparktrack.
    """
    from deltalake import write_deltalake

    root = normalize_root(uri)
    settle_summaries(root, storage_options=storage_options)
    raw = {}
    # Runs first: a run's params/tags/metrics are committed after its row, so reading them
    # later never leaves a run without its data.
    for spec in (RUNS, PARAMS, TAGS, METRIC_SUMMARIES):
        raw[spec.name] = DeltaTableHandle(root, spec, storage_options=storage_options).read()
    rows = runs_latest(raw[RUNS.name], raw[PARAMS.name], raw[TAGS.name],
                       raw[METRIC_SUMMARIES.name], store_root=root, include_deleted=True)
    target = join_uri(root, RUNS_LATEST.name)

    def write() -> None:
        write_deltalake(
            target,
            rows,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(RUNS_LATEST.partition_by),
            storage_options=storage_options,
            name=RUNS_LATEST.name,
            description=RUNS_LATEST.description,
        )

    _retrying(write, "writing Delta table", target)
    return rows.num_rows


def maintain(
    uri: str,
    *,
    do_compact: bool = True,
    do_checkpoint: bool = True,
    do_vacuum: bool = True,
    do_materialize: bool = True,
    retention_hours: float = DEFAULT_RETENTION_HOURS,
    tables: Iterable[str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> MaintenanceReport:
    """Run every maintenance step on a store (each can be switched off)."""
    started = time.perf_counter()
    tables = list(tables) if tables is not None else None
    report = MaintenanceReport()
    if do_compact:
        report.compacted = compact(uri, tables=tables, storage_options=storage_options)
    if do_checkpoint:
        report.checkpoints = checkpoint(uri, tables=tables, storage_options=storage_options)
    if do_vacuum:
        report.vacuumed = vacuum(uri, retention_hours=retention_hours, tables=tables,
                                 storage_options=storage_options)
    if do_materialize:
        report.runs_latest_rows = materialize_runs_latest(uri, storage_options=storage_options)
    report.seconds = time.perf_counter() - started
    return report
